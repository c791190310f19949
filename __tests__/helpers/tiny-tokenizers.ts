// Tiny vocabularies built in the open, so tests can state the exact ids they expect.
import type { TokenizerConfig, TokenizerJson } from "../../lib/tokenizer";
import { g, Typed } from "./gguf-writer";

/** GPT-2's byte -> printable character table (index = byte). */
export function byteChars(): string[] {
  const printable = (a: string, b: string) => Array.from({ length: b.charCodeAt(0) - a.charCodeAt(0) + 1 }, (_, i) => a.charCodeAt(0) + i);
  const direct = new Set([...printable("!", "~"), ...printable("\u00a1", "\u00ac"), ...printable("\u00ae", "\u00ff")]);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(direct.has(b) ? b : next++));
}

export const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
export const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const MERGES: [string, string][] = [
  ["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["\u0120", "w"], ["o", "r"], ["\u0120w", "or"],
  ["\u0120wor", "l"], ["\u0120worl", "d"], ["\u0120", "t"], ["\u0120t", "he"], ["\u0120", "\u0120"], ["1", "2"],
];

/** Tokens in id order: the 256 byte characters, one per merge, then the special tokens. */
export function tinyTokens(): string[] {
  return [...byteChars(), ...MERGES.map(([a, b]) => a + b), ...SPECIALS];
}

export function tinyTokenizerJson(): TokenizerJson {
  const tokens = tinyTokens();
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    added_tokens: SPECIALS.map((content) => ({
      id: tokens.indexOf(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((t, i) => [t, i])),
      merges: MERGES,
    },
  };
}

export function tinyConfig(): TokenizerConfig {
  return { add_bos_token: true, bos_token: "<|endoftext|>", eos_token: "<|im_end|>", chat_template: CHATML };
}

/** The same vocabulary as GGUF metadata of a byte-level ("gpt2") model. */
export function tinyGgufMetadata(pre = "smollm"): [string, Typed][] {
  const tokens = tinyTokens();
  return [
    ["general.architecture", g.str("llama")],
    ["tokenizer.ggml.model", g.str("gpt2")],
    ["tokenizer.ggml.pre", g.str(pre)],
    ["tokenizer.ggml.tokens", g.arr("STRING", tokens)],
    ["tokenizer.ggml.token_type", g.arr("INT32", tokens.map((t) => (SPECIALS.includes(t) ? 3 : 1)))],
    ["tokenizer.ggml.merges", g.arr("STRING", MERGES.map(([a, b]) => `${a} ${b}`))],
    ["tokenizer.ggml.bos_token_id", g.u32(tokens.indexOf("<|im_start|>"))],
    ["tokenizer.ggml.eos_token_id", g.u32(tokens.indexOf("<|im_end|>"))],
    ["tokenizer.ggml.add_bos_token", g.bool(false)],
    ["tokenizer.chat_template", g.str(CHATML)],
  ];
}

const SPM_PIECES = ["\u2581h", "ll", "\u2581he", "\u2581hell", "\u2581hello", "or", "\u2581w", "\u2581wor", "\u2581worl", "\u2581world"];
const SPM_CHARS = ["\u2581", "h", "e", "l", "o", "w", "r", "d"];

/** A SentencePiece ("llama") vocabulary: control tokens, byte tokens, characters, merged pieces. */
export function tinySpmTokens(): string[] {
  const bytes = Array.from({ length: 256 }, (_, b) => `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  return ["<unk>", "<s>", "</s>", ...bytes, ...SPM_CHARS, ...SPM_PIECES];
}

export function tinySpmGgufMetadata(): [string, Typed][] {
  const tokens = tinySpmTokens();
  const pieceRank = (t: string) => SPM_PIECES.indexOf(t);
  return [
    ["tokenizer.ggml.model", g.str("llama")],
    ["tokenizer.ggml.tokens", g.arr("STRING", tokens)],
    // SentencePiece BPE scores a merged piece by how early it was learned.
    ["tokenizer.ggml.scores", g.arr("FLOAT32", tokens.map((t) => (pieceRank(t) >= 0 ? -pieceRank(t) : -1000)))],
    ["tokenizer.ggml.token_type", g.arr("INT32", tokens.map((t, i) => (i === 0 ? 2 : i < 3 ? 3 : t.startsWith("<0x") ? 6 : 1)))],
  ];
}
