// The parts of Hugging Face's tokenizer.json and tokenizer_config.json that this package reads
// or writes; everything else passes through untouched.

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** An added token that matches whole in raw text (not after normalization), like llama.cpp's. */
export function addedToken(id: number, content: string, special: boolean): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

export interface TokenizerJson {
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: { type?: string } & Record<string, unknown>;
  [key: string]: unknown;
}

/** A special token as tokenizer_config.json spells it: the text, or an AddedToken object. */
export type ConfigToken = string | { content: string } | null | undefined;

export interface TokenizerConfig {
  add_bos_token?: boolean;
  add_eos_token?: boolean;
  bos_token?: ConfigToken;
  eos_token?: ConfigToken;
  unk_token?: ConfigToken;
  pad_token?: ConfigToken;
  chat_template?: string | { name: string; template: string }[];
  clean_up_tokenization_spaces?: boolean;
  [key: string]: unknown;
}

export interface TokenizerFiles {
  tokenizerJson: TokenizerJson;
  tokenizerConfig: TokenizerConfig;
}
