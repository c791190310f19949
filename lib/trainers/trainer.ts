// The training loop every CLaRa stage shares: seeded order, gradient accumulation, the lr
// schedule, periodic evaluation and checkpoints, resume with identical results, Ctrl-C /
// AbortSignal handling and non-finite-loss stops. Stages supply their examples and batches.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";
import { Random, subSeed } from "../data/random";
import { readCheckpoint, readOptimizerState, removeStaleCheckpointTemps, type Stage } from "../io/checkpoint";
import type { NativeOptimizerState, NativeStageBatch, NativeStepResult } from "../native";
import { nativeModel } from "../model/model";
import type { ClaraModel } from "../clara/clara-model";
import { DEFAULTS } from "../clara/config";
import { recordedLoopSettings, settingsDiffering, type LoopConfig, type LoopSettings } from "./stage-config";

/** A run's options: the loop's settings (resolved by lib/trainers/stage-config.ts) and where it writes and reports. */
export interface TrainOptions extends LoopSettings {
  /** Checkpoint file to write (its optimizer state goes beside it as <name>.optim-<hash>.npz). */
  out: string;
  /**
   * Micro-batches run at once, each on a CPU stream (thread) of its own: 2 (default) or 1,
   * which holds one micro-batch's activations instead of two. The updates are the same.
   */
  lanes?: 1 | 2;
  /** Continue from `out`'s unfinished checkpoint and optimizer state. */
  resume?: boolean;
  /** Stops after the current update; a resumable checkpoint is written first. */
  signal?: AbortSignal;
  /**
   * Train data-parallel over MLX's distributed backend ("ring", "mpi", "jaccl", "nccl", "any"):
   * each rank takes its slice of every global batch. Defaults to $CLARA_DISTRIBUTED, which
   * `clara-train launch` sets.
   */
  distributed?: string;
  /** More settings to record in the checkpoint (and to compare on resume), e.g. a CLI's inputs. */
  recordConfig?: Record<string, unknown>;
  onEvent?: (event: TrainEvent) => void;
  /**
   * Awaited at every evaluation point (every evalEvery updates and at the end), after the
   * held-out loss and before the checkpoint: measures beyond the loss, such as a bench's
   * held-out answer scores for a learning curve.
   */
  probe?: (step: number) => Promise<void>;
}

export type TrainEvent =
  | { type: "start"; stage: Stage; step: number; totalSteps: number; examples: number; evalExamples: number; trainable: { parameters: number; tensors: number } }
  | {
      type: "step";
      stage: Stage;
      step: number;
      totalSteps: number;
      loss: number;
      parts: Record<string, number>;
      lr: number;
      gradNorm: number;
      /** Tokens the update processed: compressor inputs (documents, queries) and generator prompts. */
      tokens: number;
      /** Tokens the loss supervised (answers). */
      supervisedTokens: number;
      tokensPerSecond: number;
      stepSeconds: number;
      /** Part of stepSeconds spent averaging gradients across ranks. */
      allreduceSeconds: number;
      elapsedSeconds: number;
      etaSeconds: number;
      memory: { active: number; peak: number };
    }
  | { type: "eval"; stage: Stage; step: number; loss: number; parts: Record<string, number>; examples: number }
  | { type: "checkpoint"; stage: Stage; step: number; path: string; complete: boolean }
  | { type: "end"; stage: Stage; step: number; interrupted: boolean; checkpoint: string };

export interface TrainSummary {
  stage: Stage;
  steps: number;
  interrupted: boolean;
  checkpoint: string;
  history: Array<{ step: number; loss: number; parts: Record<string, number>; lr: number }>;
  evals: Array<{ step: number; loss: number; parts: Record<string, number> }>;
}

/** What a stage provides to the shared loop. */
export interface StagePlan<R> {
  stage: Stage;
  nativeStage: "stage12" | "stage3";
  /** Documents per prompt (the generator's k). */
  k: number;
  /** Stage-3 temperature of the top-k (DEFAULTS.tau when absent). */
  tau?: number;
  train: R[];
  eval: R[];
  /** Adapter names and parameter names the optimizer updates. */
  trainable: string[];
  /**
   * One micro-batch from examples. `keys` identify the examples for caching their tokens:
   * training-set positions, or -1 - i for held-out example i.
   */
  batch(examples: R[], keys: number[]): NativeStageBatch;
  /** The stage's own settings recorded in the checkpoint (beside the loop's). */
  config: Record<string, unknown>;
}

/** Splits records into train and held-out parts, deterministically for a seed (evalSplit in [0, 1), checked by resolveStageConfig). */
export function splitRecords<R>(records: R[], evalSplit: number, seed: number): { train: R[]; eval: R[] } {
  const order = new Random(subSeed(seed, "eval-split")).shuffle(records.map((_, i) => i));
  const nEval = Math.min(records.length - 1, Math.round(records.length * evalSplit));
  const held = new Set(order.slice(0, nEval));
  return { train: records.filter((_, i) => !held.has(i)), eval: records.filter((_, i) => held.has(i)) };
}

/** Trains `plan` with the loop's settings `o` (resolved and checked: resolveStageConfig); `options` say where it writes and reports. */
export async function runStage<R>(clara: ClaraModel, plan: StagePlan<R>, o: LoopConfig, options: TrainOptions): Promise<TrainSummary> {
  if (plan.train.length === 0) throw new ClaraError("E_DATA_FIELD", `no ${plan.stage} training records`, { field: "records" });
  const batchSize = Math.min(o.batchSize, plan.train.length);
  const stepsPerEpoch = Math.max(1, Math.floor(plan.train.length / batchSize));
  const totalSteps = Math.max(1, Math.min(o.maxSteps ?? Infinity, Math.ceil(o.epochs * stepsPerEpoch)));
  const warmupSteps = Math.ceil(o.warmupRatio * totalSteps);
  const config = { ...options.recordConfig, ...plan.config, ...recordedLoopSettings(o), batchSize, totalSteps };
  const history: TrainSummary["history"] = [];
  const evals: TrainSummary["evals"] = [];
  // Weights go back before the optimizer is made (setting parameters discards a trainer).
  const resumed = options.resume ? await restoreWeights(clara, options.out, plan.stage, config, history, evals) : null;
  const distributed = options.distributed ?? process.env.CLARA_DISTRIBUTED ?? undefined;
  const trainable = await clara.model.createTrainer({
    distributed: distributed || undefined,
    trainable: plan.trainable,
    lr: o.lr,
    schedule: o.schedule,
    minLrRatio: o.minLrRatio,
    warmupSteps: o.schedule === "constant" ? 0 : warmupSteps,
    totalSteps,
    maxGradNorm: o.maxGradNorm,
    lanes: o.lanes,
    gradCheckpoint: o.gradCheckpoint,
    weightDecay: o.weightDecay,
    beta1: DEFAULTS.adamw.beta1,
    beta2: DEFAULTS.adamw.beta2,
    eps: DEFAULTS.adamw.eps,
  });
  const { rank, worldSize } = trainable;
  const perRank = batchSize / worldSize;
  if (!Number.isInteger(perRank) || perRank % o.microBatchSize !== 0) {
    throw new ClaraError(
      "E_INVALID_ARGUMENT",
      `the global batch (${batchSize}) must divide by the number of ranks (${worldSize}) into slices that divide by microBatchSize (${o.microBatchSize})`,
      { field: "batchSize" },
    );
  }
  const leader = rank === 0;
  let step = 0;
  if (resumed) {
    await nativeModel(clara.model).setOptimizerState(resumed.optimizer);
    step = resumed.step;
  }
  fs.mkdirSync(path.dirname(path.resolve(options.out)), { recursive: true });
  // Temp files of earlier writes that were killed (ours by name, of processes gone) go now.
  removeStaleCheckpointTemps(options.out);
  // Only rank 0 reports and writes; every rank computes.
  const emit = (e: TrainEvent) => {
    if (leader) options.onEvent?.(e);
  };
  emit({ type: "start", stage: plan.stage, step, totalSteps, examples: plan.train.length, evalExamples: plan.eval.length, trainable });

  const orderFor = (epoch: number) => new Random(subSeed(o.seed, `epoch-${epoch}`)).shuffle(plan.train.map((_, i) => i));
  const spec = stageSpec(clara, plan, o.mseWeight);
  let lastSave = performance.now();
  const save = async (complete: boolean) => {
    lastSave = performance.now();
    if (!leader) return;
    await clara.save(options.out, { stage: plan.stage, step, complete, config, progress: { history, evals } }, await clara.model.optimizerState());
    emit({ type: "checkpoint", stage: plan.stage, step, path: options.out, complete });
  };
  const evaluate = async () => {
    await heldOutLoss();
    if (options.probe) await options.probe(step);
  };
  const heldOutLoss = async () => {
    if (plan.eval.length === 0) return;
    // Each rank evaluates every worldSize-th example; the sums are reduced across ranks.
    const mine: Array<[R, number]> = [];
    for (let i = rank; i < plan.eval.length; i += worldSize) mine.push([plan.eval[i], -1 - i]);
    const { loss, parts } = await summedLosses(clara, plan, spec, mine);
    const names = Object.keys(parts).sort();
    const local = [loss, ...names.map((k) => parts[k])];
    const reduced = worldSize === 1 ? local : await nativeModel(clara.model).meanOverRanks(local);
    const [total, ...sums] = reduced.map((v) => (v * worldSize) / plan.eval.length);
    const mean = Object.fromEntries(names.map((k, i) => [k, sums[i]]));
    evals.push({ step, loss: total, parts: mean });
    emit({ type: "eval", stage: plan.stage, step, loss: total, parts: mean, examples: plan.eval.length });
  };
  // Ranks stop together: a stop request on any rank stops all after the same update.
  const stopRequested = async () => {
    const local = options.signal?.aborted ? 1 : 0;
    return worldSize === 1 ? local === 1 : (await nativeModel(clara.model).meanOverRanks([local]))[0] > 0;
  };

  // Until the run ends, nothing else may make a trainer or set weights on this model.
  const release = clara.model.holdForTraining(plan.stage);
  try {
    const started = performance.now();
    const firstStep = step;
    let interrupted = false;
    while (step < totalSteps) {
      if (await stopRequested()) {
        interrupted = true;
        break;
      }
      const epoch = Math.floor(step / stepsPerEpoch);
      const order = orderFor(epoch);
      const offset = (step % stepsPerEpoch) * batchSize;
      const indices = order.slice(offset, offset + batchSize).slice(rank * perRank, (rank + 1) * perRank);
      const microBatches: NativeStageBatch[] = [];
      for (let m = 0; m < indices.length; m += o.microBatchSize) {
        const idx = indices.slice(m, m + o.microBatchSize);
        microBatches.push(plan.batch(idx.map((i) => plan.train[i]), idx));
      }
      const t0 = performance.now();
      let r: NativeStepResult;
      try {
        r = await nativeModel(clara.model).trainStep({
          loss: plan.nativeStage,
          microBatches,
          spec,
          seed: o.seed,
          microOffset: (rank * perRank) / o.microBatchSize,
        });
      } catch (err) {
        if (err instanceof ClaraError && err.code === "E_NONFINITE") {
          throw new ClaraError(
            "E_NONFINITE",
            `${plan.stage} stopped at update ${step + 1}: ${err.message}. The last good checkpoint (${options.out}, if any) is untouched; ` +
              "lower --lr or check the data.",
            { cause: err },
          );
        }
        throw err;
      }
      step = r.step;
      const stepSeconds = (performance.now() - t0) / 1000;
      const local = microBatches.reduce((a, b) => a + processedTokens(b), 0);
      // One process has nothing to reduce: no native call.
      const processed = worldSize === 1 ? local : (await nativeModel(clara.model).meanOverRanks([local]))[0] * worldSize;
      const elapsedSeconds = (performance.now() - started) / 1000;
      history.push({ step, loss: r.loss, parts: r.parts, lr: r.lr });
      emit({
        type: "step",
        stage: plan.stage,
        step,
        totalSteps,
        loss: r.loss,
        parts: r.parts,
        lr: r.lr,
        gradNorm: r.gradNorm,
        tokens: processed,
        supervisedTokens: r.tokens,
        tokensPerSecond: processed / stepSeconds,
        stepSeconds,
        allreduceSeconds: r.allreduceSeconds,
        elapsedSeconds,
        etaSeconds: (elapsedSeconds / (step - firstStep)) * (totalSteps - step),
        memory: r.memory,
      });
      if (o.evalEvery > 0 && step % o.evalEvery === 0 && step < totalSteps) await evaluate();
      const byCount = o.checkpointEvery > 0 && step % o.checkpointEvery === 0;
      const byTime = o.checkpointMinutes > 0 && (performance.now() - lastSave) / 60_000 >= o.checkpointMinutes;
      if ((byCount || byTime) && step < totalSteps) await save(false);
    }
    if (!interrupted) await evaluate();
    await save(!interrupted);
    emit({ type: "end", stage: plan.stage, step, interrupted, checkpoint: options.out });
    return { stage: plan.stage, steps: step, interrupted, checkpoint: options.out, history, evals };
  } finally {
    release();
  }
}

const EVAL_CHUNK = 32;

/** The native spec of a stage's loss. */
export function stageSpec<R>(clara: ClaraModel, plan: StagePlan<R>, mseWeight: number) {
  return { ...clara.spec(plan.k), tau: plan.tau ?? DEFAULTS.tau, mseWeight };
}

/** Sums of the loss and of each part over `examples` ([record, cache key]), each record its own batch, no optimizer involved. */
export async function summedLosses<R>(
  clara: ClaraModel,
  plan: StagePlan<R>,
  spec: ReturnType<typeof stageSpec>,
  examples: ReadonlyArray<readonly [R, number]>,
): Promise<{ loss: number; parts: Record<string, number> }> {
  let loss = 0;
  const parts: Record<string, number> = {};
  // A crossing per chunk, not per record; the chunk bounds the batches held at once.
  for (let i = 0; i < examples.length; i += EVAL_CHUNK) {
    const chunk = examples.slice(i, i + EVAL_CHUNK);
    const batches = chunk.map(([record, key]) => plan.batch([record], [key]));
    for (const r of await nativeModel(clara.model).evalLosses({ loss: plan.nativeStage, batches, spec })) {
      loss += r.loss;
      for (const [k, v] of Object.entries(r.parts)) parts[k] = (parts[k] ?? 0) + v;
    }
  }
  return { loss, parts };
}

/** Real (non-padding) tokens in a micro-batch, over every sequence it runs through the model. */
export function processedTokens(b: NativeStageBatch): number {
  let n = 0;
  for (const part of [b.docs, b.query, b.candidates, b.prompt]) {
    if (!part) continue;
    const valid = part.keyValid?.data;
    if (!valid) n += part.ids.data.length;
    else for (let i = 0; i < valid.length; i++) n += valid[i] ? 1 : 0;
  }
  return n;
}

/** Puts back the weights and history of an unfinished run of the same config; returns its optimizer state. */
async function restoreWeights(
  clara: ClaraModel,
  file: string,
  stage: Stage,
  config: Record<string, unknown>,
  history: TrainSummary["history"],
  evals: TrainSummary["evals"],
): Promise<{ step: number; optimizer: NativeOptimizerState }> {
  const { entries, metadata } = readCheckpoint(file);
  if (metadata.stage !== stage) {
    throw new ClaraError("E_CHECKPOINT_MISMATCH", `${file} is a ${metadata.stage} checkpoint, not ${stage}`, { file, field: "stage" });
  }
  const differs = settingsDiffering(config, metadata.config);
  if (differs.length > 0) {
    throw new ClaraError(
      "E_CHECKPOINT_MISMATCH",
      `cannot resume ${file}: the configuration differs in ${differs.join(", ")}; rerun with the original options or without --resume`,
      { file, field: differs[0] },
    );
  }
  if (metadata.complete) {
    throw new ClaraError("E_CHECKPOINT", `${file} is a finished run; there is nothing to resume`, { file, field: "complete" });
  }
  const state = readOptimizerState(file, metadata);
  await clara.model.setParameters(entries, metadata.adapters);
  const progress = (metadata.progress ?? {}) as { history?: TrainSummary["history"]; evals?: TrainSummary["evals"] };
  history.push(...(progress.history ?? []));
  evals.push(...(progress.evals ?? []));
  return { step: metadata.step, optimizer: state };
}
