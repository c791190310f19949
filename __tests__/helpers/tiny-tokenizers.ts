// Tiny vocabularies built in the open, so tests can state the exact ids they expect.
import type { TokenizerConfig, TokenizerJson } from "../../lib/tokenizer";
import { byteChars, byteLevelTokenizerJson, CHATML } from "../../tools/tiny-model";
import { g, Typed } from "./gguf-writer";

export { byteChars };

export const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
export { CHATML };

const MERGES: [string, string][] = [
  ["h", "e"], ["l", "l"], ["he", "ll"], ["hell", "o"], ["\u0120", "w"], ["o", "r"], ["\u0120w", "or"],
  ["\u0120wor", "l"], ["\u0120worl", "d"], ["\u0120", "t"], ["\u0120t", "he"], ["\u0120", "\u0120"], ["1", "2"],
];

/** Tokens in id order: the 256 byte characters, one per merge, then the special tokens. */
export function tinyTokens(): string[] {
  return [...byteChars(), ...MERGES.map(([a, b]) => a + b), ...SPECIALS];
}

export function tinyTokenizerJson(): TokenizerJson {
  return byteLevelTokenizerJson(tinyTokens(), MERGES, SPECIALS) as unknown as TokenizerJson;
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
