// How a base model's projection weights are held: float, the file's own quantization, or MLX
// affine groups chosen at load (QLoRA, as mlx-lm trains on 4-bit bases). Defaulted and checked
// here only; native/model/weights.cpp carries it out. Embeddings, the head, norms, adapters and
// memory-token rows always stay in the compute dtype.

import { ClaraError, invalidArgument } from "../errors";

/**
 * - "float": dequantize everything to the compute dtype (GGUF's default: BLAS's fast path on a CPU,
 *   and llama.cpp's own dequantized values, bit for bit).
 * - "source": keep the file's quantized projections as they are: GGUF Q4_0/Q4_1/Q8_0 blocks map
 *   exactly onto MLX affine groups of 32; an MLX-quantized folder's groups (its default).
 * - { bits, groupSize }: every projection in affine groups (groupSize 64 by default, as mlx-lm).
 */
export type QuantizeOption = "float" | "source" | { bits: 4 | 8; groupSize?: 32 | 64 | 128 };

/** What native receives. */
export interface Quantization {
  mode: "float" | "source" | "affine";
  bits: number;
  groupSize: number;
}

/** An MLX-quantized folder's config.json "quantization" entry. */
export interface SourceQuantization {
  bits: number;
  groupSize: number;
}

export const DEFAULT_GROUP_SIZE = 64;

/** The option as native takes it; `source` describes an MLX-quantized folder (absent otherwise). */
export function resolveQuantization(option: QuantizeOption | undefined, format: "gguf" | "safetensors", source?: SourceQuantization): Quantization {
  // A quantized folder's float form may not fit the memory it was quantized for: kept as shipped.
  const chosen = option ?? (format === "safetensors" && source ? "source" : "float");
  if (chosen === "float" || chosen === "source") return { mode: chosen, bits: 0, groupSize: 0 };
  if (typeof chosen !== "object" || chosen === null || !(chosen.bits === 4 || chosen.bits === 8)) {
    throw invalidArgument("quantize", '"float", "source" or { bits: 4 | 8, groupSize?: 32 | 64 | 128 }', option);
  }
  const groupSize = chosen.groupSize ?? DEFAULT_GROUP_SIZE;
  if (![32, 64, 128].includes(groupSize)) throw invalidArgument("quantize.groupSize", "32, 64 or 128", chosen.groupSize);
  return { mode: "affine", bits: chosen.bits, groupSize };
}

/** A resolved quantization as the option that gives it again (a checkpoint reloads on the base it trained on). */
export function quantizeOptionOf(q: Quantization): QuantizeOption {
  return q.mode === "affine" ? { bits: q.bits as 4 | 8, groupSize: q.groupSize as 32 | 64 | 128 } : q.mode;
}

/** The CLI's spelling (--quantize 4|8|source|float, --group-size N) as an option. */
export function parseQuantizeFlag(value: string | undefined, groupSize?: number): QuantizeOption | undefined {
  if (value === undefined) return undefined;
  if (value === "float" || value === "source") return value;
  if (value === "4" || value === "8") return { bits: Number(value) as 4 | 8, groupSize: groupSize as 32 | 64 | 128 | undefined };
  throw new ClaraError("E_INVALID_ARGUMENT", `--quantize must be 4, 8, source or float, got '${value}'`, { field: "quantize" });
}

/**
 * config.json's "quantization" as mlx_lm.convert writes it: { group_size, bits }.
 */
export function sourceQuantizationFromHf(json: Record<string, unknown>, file: string): SourceQuantization | undefined {
  const q = json.quantization;
  if (q === undefined || q === null) return undefined;
  const bad = (why: string) => new ClaraError("E_MODEL_CONFIG", `${file}: "quantization" ${why}`, { file, field: "quantization" });
  if (typeof q !== "object") throw bad("must be an object { group_size, bits }");
  const { group_size: groupSize, bits, mode, ...rest } = q as Record<string, unknown>;
  if (mode !== undefined && mode !== "affine") throw bad(`mode '${String(mode)}' is not supported (only affine)`);
  if (!Number.isInteger(groupSize) || !Number.isInteger(bits)) throw bad("needs integer group_size and bits");
  // Per-layer entries: `false` (left in float: its weight has no scales and loads as float) is
  // fine; other bits or group sizes per layer (mlx-lm's mixed recipes) are not supported.
  const mixed = Object.entries(rest).filter(([, v]) => v !== false);
  if (mixed.length > 0) {
    const names = mixed.map(([k]) => k);
    throw bad(`has per-layer settings (${names.slice(0, 3).join(", ")}${names.length > 3 ? ", …" : ""}); only one group size and bit width for the whole model is supported`);
  }
  return { bits: bits as number, groupSize: groupSize as number };
}
