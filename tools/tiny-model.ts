// Writes a small random Llama model as a Hugging Face folder (config.json, model.safetensors,
// tokenizer.json with a byte-level BPE learned from a corpus, tokenizer_config.json with a
// ChatML template). Tests and benchmarks build their models with it; nothing is downloaded.

import * as fs from "node:fs";
import * as path from "node:path";
import { Random } from "../lib/data/random";
import { writeFileAtomic } from "../lib/io/atomic";
import { Tokenizer } from "../lib/model";

export interface TinyModelOptions {
  hiddenSize?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  intermediateSize?: number;
  /** BPE merges learned from the corpus (the vocabulary is 256 bytes + merges + 3 specials). */
  merges?: number;
  tieEmbeddings?: boolean;
  seed?: number;
  /** Standard deviation of the random weights. */
  initStd?: number;
  /** Standard deviation of the embedding (and untied output head) rows; default `initStd`. */
  embedStd?: number;
  /**
   * Share (0 to 1) of each embedding row drawn from the corpus rather than from noise: a fixed
   * random projection of the token's positive pointwise mutual information with the tokens up to
   * two places either side. Words used alike (colours, trades, years) then start close together,
   * as in a pretrained model, and the noise share keeps every token distinct. Default 0.
   */
  contextEmbeddings?: number;
}

const SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
export const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte -> printable character table (index = byte). */
export function byteChars(): string[] {
  const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
  const direct = new Set([...range(0x21, 0x7e), ...range(0xa1, 0xac), ...range(0xae, 0xff)]);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(direct.has(b) ? b : next++));
}

/** A byte-level BPE learned greedily from `corpus` (most frequent pair first, ties by text). */
export function learnMerges(corpus: readonly string[], count: number): [string, string][] {
  const chars = byteChars();
  const encoder = new TextEncoder();
  const freq = new Map<string, number>();
  for (const text of corpus) {
    for (const word of text.match(GPT2_SPLIT) ?? []) freq.set(word, (freq.get(word) ?? 0) + 1);
  }
  const words = [...freq].map(([w, f]) => ({ symbols: [...encoder.encode(w)].map((b) => chars[b]), f }));
  const merges: [string, string][] = [];
  while (merges.length < count) {
    const pairs = new Map<string, number>();
    for (const { symbols, f } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = symbols[i] + "\u0000" + symbols[i + 1];
        pairs.set(key, (pairs.get(key) ?? 0) + f);
      }
    }
    let best = "";
    let bestCount = 1; // a pair seen once is not worth a token
    for (const [k, c] of pairs) if (c > bestCount || (c === bestCount && best !== "" && k < best)) [best, bestCount] = [k, c];
    if (best === "") break;
    const [a, b] = best.split("\u0000");
    merges.push([a, b]);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.symbols[i]);
      }
      w.symbols = out;
    }
  }
  return merges;
}

/** A byte-level BPE tokenizer.json: `tokens` in id order, the `specials` among them as added tokens. */
export function byteLevelTokenizerJson(tokens: string[], merges: [string, string][], specials: readonly string[]) {
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({
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
      merges,
    },
  };
}

function tokenizerFiles(merges: [string, string][]) {
  const seen = new Set<string>();
  const tokens: string[] = [];
  for (const t of [...byteChars(), ...merges.map(([a, b]) => a + b)]) {
    if (!seen.has(t)) tokens.push(t), seen.add(t);
  }
  tokens.push(...SPECIALS);
  const tokenizer = byteLevelTokenizerJson(tokens, merges, SPECIALS);
  const config = { bos_token: "<|im_start|>", eos_token: "<|im_end|>", pad_token: "<|endoftext|>", add_bos_token: false, chat_template: CHATML };
  return { tokenizer, config, vocabSize: tokens.length };
}

/** safetensors: u64 header length, a JSON header of dtype/shape/offsets, then the raw bytes. */
function safetensors(tensors: Map<string, { shape: number[]; data: Float32Array }>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const t of tensors.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes the model folder and returns its config. */
export function writeTinyModel(dir: string, corpus: readonly string[], options: TinyModelOptions = {}) {
  const H = options.hiddenSize ?? 64;
  const layers = options.layers ?? 2;
  const heads = options.heads ?? 4;
  const kvHeads = options.kvHeads ?? 2;
  const inter = options.intermediateSize ?? 4 * H;
  const std = options.initStd ?? 0.05;
  const tie = options.tieEmbeddings ?? true;
  const rng = new Random(options.seed ?? 0);
  const { tokenizer, config: tokConfig, vocabSize } = tokenizerFiles(learnMerges(corpus, options.merges ?? 1000));
  const D = H / heads;
  const normal = (n: number, sd = std) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u = Math.max(rng.float(), 1e-12);
      const r = Math.sqrt(-2 * Math.log(u)) * sd;
      const th = 2 * Math.PI * rng.float();
      a[i] = r * Math.cos(th);
      if (i + 1 < n) a[i + 1] = r * Math.sin(th);
    }
    return a;
  };
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  const embedStd = options.embedStd ?? std;
  const add = (name: string, shape: number[], data?: Float32Array) =>
    tensors.set(name, { shape, data: data ?? normal(shape.reduce((a, b) => a * b, 1)) });
  add("model.embed_tokens.weight", [vocabSize, H], normal(vocabSize * H, embedStd));
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    add(p + "self_attn.q_proj.weight", [heads * D, H]);
    add(p + "self_attn.k_proj.weight", [kvHeads * D, H]);
    add(p + "self_attn.v_proj.weight", [kvHeads * D, H]);
    add(p + "self_attn.o_proj.weight", [H, heads * D]);
    add(p + "mlp.gate_proj.weight", [inter, H]);
    add(p + "mlp.up_proj.weight", [inter, H]);
    add(p + "mlp.down_proj.weight", [H, inter]);
    add(p + "input_layernorm.weight", [H], new Float32Array(H).fill(1));
    add(p + "post_attention_layernorm.weight", [H], new Float32Array(H).fill(1));
  }
  add("model.norm.weight", [H], new Float32Array(H).fill(1));
  if (!tie) add("lm_head.weight", [vocabSize, H], normal(vocabSize * H, embedStd));
  const config = {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    hidden_size: H,
    intermediate_size: inter,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    vocab_size: vocabSize,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: tie,
    max_position_embeddings: 4096,
    bos_token_id: tokenizer.model.vocab["<|im_start|>"],
    eos_token_id: tokenizer.model.vocab["<|im_end|>"],
  };
  fs.mkdirSync(dir, { recursive: true });
  const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 1));
  writeFileAtomic(path.join(dir, "config.json"), text(config));
  writeFileAtomic(path.join(dir, "tokenizer.json"), text(tokenizer));
  writeFileAtomic(path.join(dir, "tokenizer_config.json"), text(tokConfig));
  const share = options.contextEmbeddings ?? 0;
  if (share > 0) {
    const tok = Tokenizer.fromHfDir(dir);
    mixContextEmbeddings(tensors.get("model.embed_tokens.weight")!.data, H, corpus.map((t) => tok.encode(t)), share, (options.seed ?? 0) + 1);
  }
  writeFileAtomic(path.join(dir, "model.safetensors"), safetensors(tensors));
  return config;
}

/**
 * rows[t] <- share·|rows[t]|·unit(P·ppmi[t]) + sqrt(1 - share²)·rows[t], where ppmi[t] holds the
 * positive PMI of token t with each (offset, token) context within ±2 places and P is a fixed
 * random projection to H dimensions. Tokens never seen in `sequences` keep their random rows.
 */
function mixContextEmbeddings(rows: Float32Array, H: number, sequences: number[][], share: number, seed: number) {
  const V = rows.length / H;
  const WINDOW = 2;
  const counts = new Map<number, Map<number, number>>();
  const tokenTotal = new Float64Array(V);
  const contextTotal = new Map<number, number>();
  let total = 0;
  for (const ids of sequences) {
    for (let i = 0; i < ids.length; i++) {
      for (let d = -WINDOW; d <= WINDOW; d++) {
        if (d === 0 || i + d < 0 || i + d >= ids.length) continue;
        const context = (d < 0 ? d + WINDOW : d + WINDOW - 1) * V + ids[i + d];
        let m = counts.get(ids[i]);
        if (!m) counts.set(ids[i], (m = new Map()));
        m.set(context, (m.get(context) ?? 0) + 1);
        contextTotal.set(context, (contextTotal.get(context) ?? 0) + 1);
        tokenTotal[ids[i]]++;
        total++;
      }
    }
  }
  const rng = new Random(seed);
  const projection = new Float32Array(2 * WINDOW * V * H);
  for (let i = 0; i < projection.length; i++) projection[i] = 2 * rng.float() - 1;
  for (const [t, m] of counts) {
    const v = new Float64Array(H);
    for (const [context, c] of m) {
      const pmi = Math.log((c * total) / (tokenTotal[t] * contextTotal.get(context)!));
      if (pmi > 0) for (let h = 0; h < H; h++) v[h] += pmi * projection[context * H + h];
    }
    const row = rows.subarray(t * H, (t + 1) * H);
    const rowNorm = Math.hypot(...row);
    const vNorm = Math.hypot(...v);
    if (vNorm === 0) continue;
    for (let h = 0; h < H; h++) row[h] = share * rowNorm * (v[h] / vNorm) + Math.sqrt(1 - share * share) * row[h];
  }
}
