// Model hyperparameters from a Hugging Face config.json or from GGUF metadata, in the HF
// field names that native/model/config.h uses. This is the only place that reads them.

import { ClaraError } from "../errors";
import type { GgufValue } from "../io/gguf";

export type ModelType = "llama" | "mistral" | "qwen2" | "qwen3";

export interface RopeScaling {
  type: "default" | "linear" | "llama3";
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

export interface ModelConfig {
  model_type: ModelType;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  vocab_size: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling?: RopeScaling;
  tie_word_embeddings: boolean;
  /** Biases on q/k/v, on o, and on the MLP projections (resolved per architecture). */
  qkv_bias: boolean;
  o_bias: boolean;
  mlp_bias: boolean;
  qk_norm: boolean;
  max_position_embeddings?: number;
}

const SUPPORTED: readonly ModelType[] = ["llama", "mistral", "qwen2", "qwen3"];

function configError(file: string, field: string, message: string): ClaraError {
  return new ClaraError("E_MODEL_CONFIG", `${file}: ${field} ${message}`, { file, field });
}

function positiveInt(src: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = src[key] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
    throw configError(file, key, `must be a positive integer (got ${JSON.stringify(v)})`);
  }
  return v;
}

function positiveNumber(src: Record<string, unknown>, key: string, file: string, fallback: number): number {
  const v = src[key] ?? fallback;
  if (typeof v !== "number" || !(v > 0)) throw configError(file, key, `must be a positive number (got ${JSON.stringify(v)})`);
  return v;
}

function ropeScalingFrom(raw: unknown, file: string): RopeScaling | undefined {
  if (raw === null || raw === undefined) return undefined;
  if (typeof raw !== "object") throw configError(file, "rope_scaling", "must be an object or null");
  const r = raw as Record<string, unknown>;
  const type = String(r.rope_type ?? r.type ?? "default");
  if (type === "default") return undefined;
  if (type !== "linear" && type !== "llama3") {
    throw configError(file, "rope_scaling.rope_type", `'${type}' is not supported (linear, llama3)`);
  }
  return {
    type,
    factor: positiveNumber(r, "factor", file, 1),
    low_freq_factor: r.low_freq_factor as number | undefined,
    high_freq_factor: r.high_freq_factor as number | undefined,
    original_max_position_embeddings: r.original_max_position_embeddings as number | undefined,
  };
}

/** From a parsed config.json. `file` names the file in errors. */
export function configFromHf(json: unknown, file: string): ModelConfig {
  if (typeof json !== "object" || json === null) throw configError(file, "(root)", "must be a JSON object");
  const c = json as Record<string, unknown>;
  const type = c.model_type as ModelType;
  if (!SUPPORTED.includes(type)) {
    throw configError(file, "model_type", `'${String(c.model_type)}' is not a supported Llama-family type (${SUPPORTED.join(", ")})`);
  }
  const heads = positiveInt(c, "num_attention_heads", file);
  const hidden = positiveInt(c, "hidden_size", file);
  return {
    model_type: type,
    hidden_size: hidden,
    intermediate_size: positiveInt(c, "intermediate_size", file),
    num_hidden_layers: positiveInt(c, "num_hidden_layers", file),
    num_attention_heads: heads,
    num_key_value_heads: positiveInt(c, "num_key_value_heads", file, heads),
    head_dim: positiveInt(c, "head_dim", file, Math.floor(hidden / heads)),
    vocab_size: positiveInt(c, "vocab_size", file),
    rms_norm_eps: positiveNumber(c, "rms_norm_eps", file, 1e-6),
    rope_theta: positiveNumber(c, "rope_theta", file, 10000),
    rope_scaling: ropeScalingFrom(c.rope_scaling, file),
    tie_word_embeddings: Boolean(c.tie_word_embeddings ?? false),
    // Qwen2 always has q/k/v biases and none on o; Llama/Mistral/Qwen3's attention_bias covers
    // q/k/v/o (transformers' modeling code); Llama's mlp_bias covers the MLP.
    qkv_bias: type === "qwen2" ? true : Boolean(c.attention_bias ?? false),
    o_bias: type === "qwen2" ? false : Boolean(c.attention_bias ?? false),
    mlp_bias: Boolean(c.mlp_bias ?? false),
    qk_norm: type === "qwen3",
    max_position_embeddings: c.max_position_embeddings as number | undefined,
  };
}

export type GgufMetadata = Map<string, GgufValue>;

function ggufNumber(meta: GgufMetadata, key: string, file: string, fallback?: number): number {
  const v = meta.get(key) ?? fallback;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isFinite(n)) throw configError(file, key, "is missing from the GGUF metadata");
  return n;
}

/** From GGUF metadata; `tensorNames` tells whether the file has its own output (lm_head) matrix. */
export function configFromGguf(meta: GgufMetadata, tensorNames: readonly string[], file: string): {
  config: ModelConfig;
  ropePermuted: boolean;
} {
  const arch = String(meta.get("general.architecture") ?? "");
  const types: Record<string, ModelType> = { llama: "llama", mistral: "mistral", qwen2: "qwen2", qwen3: "qwen3" };
  const type = types[arch];
  if (!type) throw configError(file, "general.architecture", `'${arch}' is not a supported Llama-family architecture`);
  const k = (s: string) => `${arch}.${s}`;
  const heads = ggufNumber(meta, k("attention.head_count"), file);
  const hidden = ggufNumber(meta, k("embedding_length"), file);
  const tokens = meta.get("tokenizer.ggml.tokens");
  const vocab = ggufNumber(meta, k("vocab_size"), file, Array.isArray(tokens) ? tokens.length : undefined);
  const scalingType = meta.get(k("rope.scaling.type"));
  const config: ModelConfig = {
    model_type: type,
    hidden_size: hidden,
    intermediate_size: ggufNumber(meta, k("feed_forward_length"), file),
    num_hidden_layers: ggufNumber(meta, k("block_count"), file),
    num_attention_heads: heads,
    num_key_value_heads: ggufNumber(meta, k("attention.head_count_kv"), file, heads),
    head_dim: ggufNumber(meta, k("attention.key_length"), file, Math.floor(hidden / heads)),
    vocab_size: vocab,
    rms_norm_eps: ggufNumber(meta, k("attention.layer_norm_rms_epsilon"), file, 1e-5),
    rope_theta: ggufNumber(meta, k("rope.freq_base"), file, 10000),
    rope_scaling:
      scalingType === "linear"
        ? { type: "linear", factor: ggufNumber(meta, k("rope.scaling.factor"), file) }
        : undefined,
    tie_word_embeddings: !tensorNames.includes("output.weight"),
    qkv_bias: tensorNames.includes("blk.0.attn_q.bias"),
    o_bias: tensorNames.includes("blk.0.attn_output.bias"),
    mlp_bias: tensorNames.includes("blk.0.ffn_up.bias"),
    qk_norm: tensorNames.includes("blk.0.attn_q_norm.weight"),
    max_position_embeddings: meta.has(k("context_length")) ? ggufNumber(meta, k("context_length"), file) : undefined,
  };
  // llama.cpp's converter permutes q/k rows of Llama-architecture models only.
  return { config, ropePermuted: arch === "llama" || arch === "mistral" };
}
