// CLaRa's hyperparameters and their defaults (spec §2.5): the one table. A stage's settings
// take theirs from here in lib/trainers/stage-config.ts (resolveStageConfig), the only place
// that fills and checks them; native code takes every value explicitly.

import { ClaraError, invalidArgument } from "../errors";

/** Bumped whenever a template string or token layout changes; stored in every checkpoint. */
export const TEMPLATE_VERSION = 1;

export interface ClaraShape {
  /** ρ: the document length divided by the number of memory tokens. */
  compressionRate: number;
  /** Document length in tokens the compressor reads (the rate is nominal against it). */
  docMaxLength: number;
}

export type MemoryInput = "raw" | "standardised";

/**
 * How stage 3 starts a query reasoner when the checkpoint has none: a copy of the compressor (the
 * reference's default), or a fresh LoRA adapter, so the query starts as the base model encodes it
 * (the reference's other path; the paper compares the two in Table 15).
 */
export type QueryReasonerInit = "compressor" | "fresh";

export type Schedule = "cosine" | "constant";

export interface LoraOptions {
  rank: number;
  alpha: number;
  dropout: number;
}

export const DEFAULTS = {
  compressionRate: 32,
  docMaxLength: 256,
  lora: { rank: 16, alpha: 32, dropout: 0.1 } as LoraOptions,
  mseWeight: 0.1,
  /**
   * How compressed vectors enter the generator: "raw" as the reference (the compressor's
   * final-norm states), or "standardised" to the input embeddings' per-dimension statistics
   * (native/clara/memory_input.h; docs/training-recipe.md).
   */
  memoryInput: "raw" as MemoryInput,
  /** Documents whose compressed vectors calibrate the "standardised" map. */
  memoryInputCalibrationDocs: 64,
  tau: 0.02,
  /** Maximum generator sequence length: stages 1–2 and stage 3 (the reference's max_len). */
  maxLength: { stage1: 2048, stage2: 2048, stage3: 1024 },
  /** Documents per prompt: stage 1 reads one; stages 2–3 fill five slots (generation_top_k). */
  k: { stage1: 1, stage2: 5, stage3: 5 },
  lr: { stage1: 1e-4, stage2: 1e-4, stage3: 5e-6 },
  schedule: { stage1: "cosine", stage2: "cosine", stage3: "constant" } as const,
  batchSize: { stage1: 128, stage2: 128, stage3: 32 },
  /** Examples per forward/backward pass: batchSize / microBatchSize passes are accumulated. */
  microBatchSize: 1,
  /** Micro-batches evaluated at once, each on a CPU stream of its own (1 holds half the activations). */
  lanes: 2 as 1 | 2,
  /** Recompute each decoder layer in the backward pass instead of keeping its activations. */
  gradCheckpoint: false,
  minLrRatio: 0.1,
  warmupRatio: 0.03,
  maxGradNorm: 1.0,
  adamw: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 },
  seed: 42,
  epochs: 1,
  /** Fraction of the training records held out for evaluation when no held-out records are given. */
  evalSplit: 0,
  /** Evaluate / write a resumable checkpoint every N updates (0: only at the end). */
  evalEvery: 0,
  checkpointEvery: 0,
  /** Minutes of training between resumable checkpoints (besides checkpointEvery), so a kill loses little. */
  checkpointMinutes: 10,
  /** Stage 2: keep stage 1's generator adapter (false: a fresh one, spec §7 Q1); train the memory-token rows too. */
  keepGenerator: false,
  trainMemoryTokens: false,
  /** Stage 3: a query reasoner the checkpoint lacks starts as a copy of the compressor (the reference's default) or "fresh". */
  queryReasonerInit: "compressor" as QueryReasonerInit,
  /** Greedy answer lengths of the reference's evaluation: stages 1–2 and stage 3. */
  maxNewTokens: { stage12: 128, stage3: 64 },
};

/** n = ⌊docMaxLength / ρ⌋ memory tokens per document, the reference's floor (spec §1.4, M:339). */
export function memoryTokenCount(shape: ClaraShape): number {
  const { compressionRate: rho, docMaxLength } = shape;
  if (!Number.isInteger(docMaxLength) || docMaxLength < 1) throw invalidArgument("docMaxLength", "a positive integer", docMaxLength);
  if (!Number.isInteger(rho) || rho < 1) throw invalidArgument("compressionRate", "a positive integer", rho);
  if (rho > docMaxLength) {
    throw new ClaraError(
      "E_INVALID_ARGUMENT",
      `compressionRate ${rho} is larger than docMaxLength ${docMaxLength}: no memory token is left (n = ⌊docMaxLength / compressionRate⌋)`,
      { field: "compressionRate" },
    );
  }
  return Math.floor(docMaxLength / rho);
}
