// A GGUF holds no tokenizer.json: it stores the vocabulary under llama.cpp's `tokenizer.ggml.*`
// keys. This rebuilds the tokenizer.json (and tokenizer_config.json) that tokenizes the way
// llama.cpp does (src/llama-vocab.cpp), which is the reference for what a GGUF means.
// transformers' own GGUF converter is not: it drops the digit split of "smollm" and prepends
// the SentencePiece space only at the start of the text, where llama.cpp also does it after
// every special token.

import { ClaraError } from "../errors";
import { GgufValue, metaArray, metaBool, metaInt, metaString } from "../io/gguf";
import { addedToken, type AddedTokenJson, type TokenizerConfig, type TokenizerFiles, type TokenizerJson } from "./types";

const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

// llama.cpp's GPT-2 split. HF's ByteLevel(use_regex) applies the same pattern plus a final `|\s+`,
// which only re-captures whitespace this one leaves as a gap, and a gap is a piece of its own too.
const GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
// llama.cpp's spelling of Llama 3's `(?i:'s|...)`: inline flag groups need Node >= 23 in JS.
const LLAMA3 =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}" +
  "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 = LLAMA3.replace("\\p{N}{1,3}", "\\p{N}");

interface PreTokenizerSpec {
  /** llama.cpp's regex_exprs: each one splits every piece the previous ones left, keeping the gaps. */
  regexes: string[];
  ignoreMerges?: boolean;
  addBos?: boolean;
}

const DIGITS_THEN_GPT2: PreTokenizerSpec = { regexes: ["\\p{N}", GPT2] };
const LLAMA3_SPEC: PreTokenizerSpec = { regexes: [LLAMA3], ignoreMerges: true, addBos: true };

/** `tokenizer.ggml.pre` values, grouped as llama.cpp's llm_tokenizer_bpe groups them. */
const PRE_TOKENIZERS: Record<string, PreTokenizerSpec> = {
  default: { regexes: ["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"] },
  "gpt-2": { regexes: [GPT2] },
  "phi-2": { regexes: [GPT2] },
  mpt: { regexes: [GPT2] },
  olmo: { regexes: [GPT2] },
  smollm: DIGITS_THEN_GPT2,
  starcoder: DIGITS_THEN_GPT2,
  refact: DIGITS_THEN_GPT2,
  "command-r": DIGITS_THEN_GPT2,
  codeshell: DIGITS_THEN_GPT2,
  exaone: DIGITS_THEN_GPT2,
  "minerva-7b": DIGITS_THEN_GPT2,
  "llama-bpe": LLAMA3_SPEC,
  llama3: LLAMA3_SPEC,
  "llama-v3": LLAMA3_SPEC,
  falcon3: LLAMA3_SPEC,
  dbrx: { regexes: [LLAMA3] },
  "smaug-bpe": { regexes: [LLAMA3] },
  qwen2: { regexes: [QWEN2] },
  stablelm2: { regexes: [QWEN2] },
  megrez: { regexes: [QWEN2] },
};

export const SUPPORTED_GGUF_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_TOKENIZERS);

export function tokenizerFilesFromGguf(meta: Map<string, GgufValue>, file?: string): TokenizerFiles {
  const label = file ?? "the GGUF metadata";
  const fail = (message: string) => new ClaraError("E_TOKENIZER", `${label}: ${message}`, { file });
  const model = metaString(meta, "tokenizer.ggml.model", file);
  if (model !== "gpt2" && model !== "llama") {
    throw fail(
      model === undefined
        ? "no tokenizer.ggml.model key, so the file carries no tokenizer; load one with Tokenizer.fromHfDir"
        : `tokenizer.ggml.model '${model}' is not supported yet ` +
          `(supported: 'gpt2' byte-level BPE, 'llama' SentencePiece BPE)`,
    );
  }
  const tokens = metaArray(meta, "tokenizer.ggml.tokens", "string", file);
  if (!tokens || tokens.length === 0) throw fail("tokenizer.ggml.tokens is missing or empty");
  const types = metaArray(meta, "tokenizer.ggml.token_type", "number", file);
  if (types && types.length !== tokens.length) {
    throw fail(`tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
  }

  // llama.cpp names empty tokens so that each id keeps a distinct text.
  const texts = tokens.map((t, i) => (t === "" ? `[EMPTY_${i}]` : t));
  const vocab = new Map<string, number>();
  texts.forEach((t, i) => {
    if (vocab.has(t)) throw fail(`token ${JSON.stringify(t)} appears twice (ids ${vocab.get(t)} and ${i})`);
    vocab.set(t, i);
  });

  const spm = model === "llama";
  const id = (key: string, fallback?: number) => {
    const v = metaInt(meta, `tokenizer.ggml.${key}`, file);
    return v !== undefined && v >= 0 && v < texts.length ? v : fallback;
  };
  // SentencePiece ids are fixed by convention; a BPE vocabulary has no default.
  const bos = id("bos_token_id", spm ? 1 : undefined);
  const eos = id("eos_token_id", spm ? 2 : undefined);
  const unk = id("unknown_token_id", spm ? 0 : undefined);
  const pad = id("padding_token_id");

  // Token types say what is special; only files without them fall back to the named ids.
  const untyped = new Set(types ? [] : [bos, eos, unk]);
  const added: AddedTokenJson[] = [];
  texts.forEach((content, i) => {
    const type = types?.[i];
    const special = type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.UNKNOWN || untyped.has(i);
    // llama.cpp matches user-defined tokens whole in the text too, but they are not special.
    if (special || type === TOKEN_TYPE.USER_DEFINED) added.push(addedToken(i, content, special));
  });

  const vocabJson = Object.fromEntries(vocab); // fromEntries: a "__proto__" token stays a plain key
  let pre: PreTokenizerSpec | undefined;
  let tokenizerJson: TokenizerJson;
  if (spm) {
    const scores = metaArray(meta, "tokenizer.ggml.scores", "number", file);
    if (!scores || scores.length !== texts.length) {
      throw fail("a 'llama' (SentencePiece) vocabulary needs tokenizer.ggml.scores, one per token");
    }
    const prefix = metaBool(meta, "tokenizer.ggml.add_space_prefix", file) ?? true;
    tokenizerJson = sentencePieceJson(texts, vocabJson, scores, unk === undefined ? null : texts[unk], prefix, added);
  } else {
    const preName = metaString(meta, "tokenizer.ggml.pre", file) ?? "default"; // llama.cpp's fallback
    pre = PRE_TOKENIZERS[preName];
    if (!pre) {
      throw fail(
        `tokenizer.ggml.pre '${preName}' is not supported yet (supported: ${SUPPORTED_GGUF_PRE_TOKENIZERS.join(", ")})`,
      );
    }
    const merges = metaArray(meta, "tokenizer.ggml.merges", "string", file);
    if (!merges) throw fail("a 'gpt2' (byte-level BPE) vocabulary needs tokenizer.ggml.merges");
    tokenizerJson = byteLevelJson(vocabJson, vocab, merges, pre, added);
  }

  const name = (i: number | undefined) => (i === undefined ? null : texts[i]);
  const tokenizerConfig: TokenizerConfig = {
    tokenizer_class: "PreTrainedTokenizerFast",
    add_bos_token: metaBool(meta, "tokenizer.ggml.add_bos_token", file) ?? (spm || pre?.addBos === true),
    add_eos_token: metaBool(meta, "tokenizer.ggml.add_eos_token", file) ?? false,
    bos_token: name(bos),
    eos_token: name(eos),
    unk_token: name(unk),
    pad_token: name(pad),
    clean_up_tokenization_spaces: false,
  };
  const template = metaString(meta, "tokenizer.chat_template", file);
  if (template !== undefined) tokenizerConfig.chat_template = template;
  return { tokenizerJson, tokenizerConfig };
}

function bpeModel(vocab: Record<string, number>, merges: [string, string][], extra: object) {
  return {
    type: "BPE",
    dropout: null,
    unk_token: null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
    ...extra,
    vocab,
    merges,
  };
}

function byteLevelJson(
  vocabJson: Record<string, number>,
  vocab: Map<string, number>,
  stored: string[],
  pre: PreTokenizerSpec,
  added: AddedTokenJson[],
): TokenizerJson {
  // llama.cpp cuts a merge at the first space after its first character. HF refuses merges whose
  // parts or result are not in the vocabulary; converted files have none, hand-made ones may.
  const merges: [string, string][] = [];
  for (const m of stored) {
    const cut = m.indexOf(" ", 1);
    if (cut < 0) continue;
    const a = m.slice(0, cut);
    const b = m.slice(cut + 1);
    if (vocab.has(a) && vocab.has(b) && vocab.has(a + b)) merges.push([a, b]);
  }
  const byteLevel = (useRegex: boolean) => ({
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: useRegex,
  });
  const endsWithGpt2 = pre.regexes[pre.regexes.length - 1] === GPT2;
  const splits = (endsWithGpt2 ? pre.regexes.slice(0, -1) : pre.regexes).map((regex) => ({
    type: "Split",
    pattern: { Regex: regex },
    behavior: "Isolated",
    invert: false,
  }));
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: "Sequence", pretokenizers: [...splits, byteLevel(endsWithGpt2)] },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpeModel(vocabJson, merges, { ignore_merges: pre.ignoreMerges === true }),
  };
}

function sentencePieceJson(
  texts: string[],
  vocabJson: Record<string, number>,
  scores: number[],
  unk: string | null,
  addSpacePrefix: boolean,
  added: AddedTokenJson[],
): TokenizerJson {
  const replace = (from: string, to: string) => ({ type: "Replace", pattern: { String: from }, content: to });
  // A normalizer (not Metaspace) so the prefix goes before every stretch of text between special
  // tokens: llama.cpp's SPM tokenizer adds it after each special token, not only at the start.
  const spaceToMeta = replace(" ", "\u2581");
  const normalizer = addSpacePrefix
    ? { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "\u2581" }, spaceToMeta] }
    : spaceToMeta;
  const decoders: object[] = [replace("\u2581", " "), { type: "ByteFallback" }, { type: "Fuse" }];
  if (addSpacePrefix) decoders.push({ type: "Strip", content: " ", start: 1, stop: 0 });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Sequence", decoders },
    model: bpeModel(vocabJson, mergesFromScores(texts, scores), { unk_token: unk, fuse_unk: true, byte_fallback: true }),
  };
}

/**
 * SentencePiece BPE merges any two neighbours that form a token, best-scoring token first. As
 * ranked merges that is every split of every token into two tokens, ordered by the token's
 * score; ties are ordered as transformers' generate_merges orders them.
 */
function mergesFromScores(texts: string[], scores: number[]): [string, string][] {
  const ids = new Map(texts.map((t, i) => [t, i]));
  const found: { a: string; b: string; score: number; lenA: number; lenB: number; seq: number }[] = [];
  texts.forEach((text, i) => {
    const chars = Array.from(text); // code points, as Python's str indexing
    const local: { a: string; b: string; ia: number; ib: number; cut: number }[] = [];
    for (let cut = 1; cut < chars.length; cut++) {
      const a = chars.slice(0, cut).join("");
      const b = chars.slice(cut).join("");
      const ia = ids.get(a);
      const ib = ids.get(b);
      if (ia !== undefined && ib !== undefined) local.push({ a, b, ia, ib, cut });
    }
    local.sort((x, y) => x.ia - y.ia || x.ib - y.ib);
    for (const { a, b, cut } of local) {
      found.push({ a, b, score: scores[i], lenA: cut, lenB: chars.length - cut, seq: found.length });
    }
  });
  found.sort((x, y) => y.score - x.score || y.lenA - x.lenA || y.lenB - x.lenB || x.seq - y.seq);
  return found.map(({ a, b }) => [a, b]);
}
