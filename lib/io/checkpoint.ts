// CLaRa checkpoints: one .npz holding the trained tensors under readable flat names
// ("model.layers.0.self_attn.q_proj.lora.compressor.a", "clara.mem_embeddings", …) and a JSON
// metadata entry; the optimizer state for exact resume sits beside it in <name>.optim.npz.
// Both are written atomically; numpy.load and mlx.core.load open them.

import * as fs from "node:fs";
import { ClaraError } from "../errors";
import type { NamedTensor, NativeAdapterInfo, NativeOptimizerState } from "../native";
import { readNpz, writeNpz } from "./npz";
import { tensor, type Tensor } from "../tensor";

export const CHECKPOINT_FORMAT = "clara-mlx-checkpoint";
export const METADATA_KEY = "__metadata__";

export type Stage = "stage1" | "stage2" | "stage3";

export interface CheckpointMetadata {
  format: typeof CHECKPOINT_FORMAT;
  version: 1;
  stage: Stage;
  /** Optimizer updates done when this was written. */
  step: number;
  /** False for checkpoints written mid-run (interruption, periodic saves). */
  complete: boolean;
  base: { source: string; fingerprint: string; modelType: string };
  clara: { compressionRate: number; docMaxLength: number; nMem: number; templateVersion: number };
  adapters: NativeAdapterInfo[];
  /** The effective training configuration (for matching on resume or skip). */
  config?: Record<string, unknown>;
  /** Where training stands: consumed examples, RNG seeds, loss history. */
  progress?: Record<string, unknown>;
  createdAt: string;
}

/** JSON stored as a uint8 array: an .npz entry that numpy and mlx.core.load both read. */
export function jsonTensor(value: unknown): Tensor {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  return tensor("uint8", [bytes.length], bytes);
}

export function readJsonTensor(t: Tensor | undefined, file: string): unknown {
  if (!t || t.dtype !== "uint8") {
    throw new ClaraError("E_CHECKPOINT", `${file} has no ${METADATA_KEY} entry; it was not written by @clara/mlx`, {
      file,
      field: METADATA_KEY,
    });
  }
  try {
    return JSON.parse(new TextDecoder().decode(t.data as Uint8Array));
  } catch (err) {
    throw new ClaraError("E_CHECKPOINT", `${file}: ${METADATA_KEY} is not valid JSON`, { file, field: METADATA_KEY, cause: err });
  }
}

export function optimizerFile(checkpoint: string): string {
  return checkpoint.replace(/\.npz$/, "") + ".optim.npz";
}

export function writeCheckpoint(file: string, entries: NamedTensor[], metadata: CheckpointMetadata): void {
  const map = new Map<string, Tensor>(entries);
  map.set(METADATA_KEY, jsonTensor(metadata));
  writeNpz(file, map);
}

export function readCheckpoint(file: string): { entries: NamedTensor[]; metadata: CheckpointMetadata } {
  if (!fs.existsSync(file)) {
    throw new ClaraError("E_CHECKPOINT", `${file} does not exist; train the previous stage first or pass --from <checkpoint>`, { file });
  }
  const map = readNpz(file);
  const metadata = readJsonTensor(map.get(METADATA_KEY), file) as CheckpointMetadata;
  if (metadata?.format !== CHECKPOINT_FORMAT) {
    throw new ClaraError("E_CHECKPOINT", `${file} is not a @clara/mlx checkpoint (format ${String(metadata?.format)})`, {
      file,
      field: "format",
    });
  }
  map.delete(METADATA_KEY);
  return { entries: [...map], metadata };
}

export function writeOptimizerState(checkpoint: string, state: NativeOptimizerState, extra: Record<string, unknown> = {}): void {
  const map = new Map<string, Tensor>();
  for (const [name, t] of state.m) map.set(`m/${name}`, t);
  for (const [name, t] of state.v) map.set(`v/${name}`, t);
  map.set(METADATA_KEY, jsonTensor({ step: state.step, names: state.m.map(([n]) => n), ...extra }));
  writeNpz(optimizerFile(checkpoint), map);
}

export function readOptimizerState(checkpoint: string): { state: NativeOptimizerState; extra: Record<string, unknown> } {
  const file = optimizerFile(checkpoint);
  if (!fs.existsSync(file)) {
    throw new ClaraError("E_CHECKPOINT", `${file} is missing: it holds the optimizer state needed to resume`, { file });
  }
  const map = readNpz(file);
  const meta = readJsonTensor(map.get(METADATA_KEY), file) as { step: number; names: string[] } & Record<string, unknown>;
  const pick = (prefix: string): NamedTensor[] =>
    meta.names.map((n) => {
      const t = map.get(`${prefix}/${n}`);
      if (!t) throw new ClaraError("E_CHECKPOINT", `${file} lacks ${prefix}/${n}`, { file, entry: `${prefix}/${n}` });
      return [n, t];
    });
  const { step, names: _names, ...extra } = meta;
  return { state: { step, m: pick("m"), v: pick("v") }, extra };
}
