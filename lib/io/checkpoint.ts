// CLaRa checkpoints: one .npz holding the trained tensors under readable flat names
// ("model.layers.0.self_attn.q_proj.lora.compressor.a", "clara.mem_embeddings", …) and a JSON
// metadata entry; numpy.load and mlx.core.load open it. The optimizer state for exact resume sits
// beside it in <name>.optim-<hash>.npz, named by content. A training checkpoint is one atomic
// unit: the optimizer file is written first under its new name, then the checkpoint, whose
// metadata names that file and its SHA-256, replaces the old one by one rename (the commit);
// only then is the previous optimizer file removed. A kill at any moment leaves the old or the
// new checkpoint, each with the optimizer state it names.

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";
import type { NamedTensor, NativeAdapterInfo, NativeOptimizerState } from "../native";
import type { Quantization } from "../model/quantization";
import type { MemoryInput } from "../clara/config";
import { writeFileAtomic, removeStaleTemps } from "./atomic";
import { decodeNpz, encodeNpz, readNpz, writeNpz } from "./npz";
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
  /** quantization: how the base's projections were held in training (absent: float, as before it was recorded). */
  base: { source: string; fingerprint: string; modelType: string; quantization?: Quantization };
  /** memoryInput: absent in checkpoints written before it existed ("raw"); its map is among the tensors. */
  clara: { compressionRate: number; docMaxLength: number; nMem: number; templateVersion: number; memoryInput?: MemoryInput };
  adapters: NativeAdapterInfo[];
  /** The effective training configuration (for matching on resume or skip). */
  config?: Record<string, unknown>;
  /** Where training stands: consumed examples, RNG seeds, loss history. */
  progress?: Record<string, unknown>;
  /** The optimizer state of this checkpoint: a file beside it (by name) and its SHA-256. */
  optimizer?: { file: string; sha256: string };
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

/** The optimizer file of checkpoints written before optimizer files were named by content. */
function legacyOptimizerFile(checkpoint: string): string {
  return checkpoint.replace(/\.npz$/, "") + ".optim.npz";
}

/** Whether a file name in the checkpoint's folder is one of its optimizer files (current, stale or legacy). */
function isOptimizerFileOf(checkpoint: string, name: string): boolean {
  const stem = path.basename(checkpoint).replace(/\.npz$/, "");
  return name === `${stem}.optim.npz` || (name.startsWith(`${stem}.optim-`) && name.endsWith(".npz"));
}

/** The optimizer files that belong to `checkpoint` by name (current, stale and legacy). */
export function optimizerFiles(checkpoint: string): string[] {
  const dir = path.dirname(checkpoint);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => isOptimizerFileOf(checkpoint, f))
    .map((f) => path.join(dir, f));
}

/** Removes temp files of killed writes of this checkpoint and of its optimizer files. */
export function removeStaleCheckpointTemps(checkpoint: string): void {
  removeStaleTemps(path.dirname(checkpoint), (target) => target === path.basename(checkpoint) || isOptimizerFileOf(checkpoint, target));
}

/** The optimizer file a checkpoint names (or the legacy <name>.optim.npz for older ones). */
export function optimizerFile(checkpoint: string, metadata?: CheckpointMetadata): string {
  return metadata?.optimizer ? path.join(path.dirname(checkpoint), metadata.optimizer.file) : legacyOptimizerFile(checkpoint);
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

function encodeOptimizerState(state: NativeOptimizerState): Uint8Array {
  const map = new Map<string, Tensor>();
  for (const [name, t] of state.m) map.set(`m/${name}`, t);
  for (const [name, t] of state.v) map.set(`v/${name}`, t);
  map.set(METADATA_KEY, jsonTensor({ step: state.step, names: state.m.map(([n]) => n) }));
  return encodeNpz(map);
}

/**
 * Writes a checkpoint with its optimizer state as one atomic unit (see the top of this file),
 * then removes the optimizer files no longer named by it, and stale temp files of earlier
 * writes that were killed.
 */
export function writeTrainingCheckpoint(file: string, entries: NamedTensor[], metadata: CheckpointMetadata, state: NativeOptimizerState): void {
  const bytes = encodeOptimizerState(state);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const optimizer = `${path.basename(file).replace(/\.npz$/, "")}.optim-${sha256.slice(0, 16)}.npz`;
  writeFileAtomic(path.join(path.dirname(file), optimizer), bytes);
  writeCheckpoint(file, entries, { ...metadata, optimizer: { file: optimizer, sha256 } });
  for (const f of optimizerFiles(file)) if (path.basename(f) !== optimizer) fs.rmSync(f, { force: true });
  removeStaleCheckpointTemps(file);
}

/** The optimizer state a checkpoint names, checked against its recorded hash and step. */
export function readOptimizerState(checkpoint: string, metadata: CheckpointMetadata): NativeOptimizerState {
  const file = optimizerFile(checkpoint, metadata);
  if (!fs.existsSync(file)) {
    throw new ClaraError("E_CHECKPOINT", `${file} is missing: it holds the optimizer state needed to resume ${checkpoint}`, { file });
  }
  const bytes = new Uint8Array(fs.readFileSync(file));
  if (metadata.optimizer && createHash("sha256").update(bytes).digest("hex") !== metadata.optimizer.sha256) {
    throw new ClaraError("E_CHECKPOINT", `${file} is not the optimizer state ${checkpoint} was saved with (SHA-256 differs)`, { file });
  }
  const map = decodeNpz(bytes, file);
  const meta = readJsonTensor(map.get(METADATA_KEY), file) as { step: number; names: string[] };
  const pick = (prefix: string): NamedTensor[] =>
    meta.names.map((n) => {
      const t = map.get(`${prefix}/${n}`);
      if (!t) throw new ClaraError("E_CHECKPOINT", `${file} lacks ${prefix}/${n}`, { file, entry: `${prefix}/${n}` });
      return [n, t];
    });
  if (meta.step !== metadata.step) {
    throw new ClaraError("E_CHECKPOINT", `${checkpoint} and its optimizer state disagree on the step (${metadata.step} vs ${meta.step})`, { file });
  }
  return { step: meta.step, m: pick("m"), v: pick("v") };
}
