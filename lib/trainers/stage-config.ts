// A stage's settings in one typed place. resolveStageConfig fills every default from DEFAULTS
// (lib/clara/config.ts, the one table) and makes every check of a setting, once; each failure is
// an E_INVALID_ARGUMENT naming its field. The trainers resolve their options here, the CLI hands
// over what it parsed from its flags and --config file (as mlx_lm's lora.py does), and the
// settings a checkpoint records for resume are chosen and compared here. What is checked
// against data (documents per record, k ≤ N) or against a starting checkpoint (ρ, document
// length) is checked by the two functions after it, used by the trainers and the CLI alike.

import { ClaraError } from "../errors";
import type { Stage } from "../io/checkpoint";
import type { QuantizeOption } from "../model/quantization";
import { DEFAULTS, memoryTokenCount, type ClaraShape, type LoraOptions, type MemoryInput, type QueryReasonerInit, type Schedule } from "../clara/config";

/** Settings of the loop every stage shares; an absent one takes its default. */
export interface LoopSettings {
  /** Examples per optimizer update. */
  batchSize?: number;
  /** Examples per forward/backward pass; batchSize / microBatchSize passes are accumulated. */
  microBatchSize?: number;
  /** Gradient-accumulation passes per update, instead of microBatchSize (= batchSize / accumulation). */
  accumulation?: number;
  /**
   * Micro-batches run at once, each on a CPU stream (thread) of its own: 2 (default) or 1,
   * which holds one micro-batch's activations instead of two. The updates are the same.
   */
  lanes?: number;
  /** Recompute each decoder layer in the backward pass: less activation memory, more compute, same updates. */
  gradCheckpoint?: boolean;
  epochs?: number;
  /** Caps the number of optimizer updates. */
  maxSteps?: number;
  lr?: number;
  schedule?: Schedule;
  warmupRatio?: number;
  minLrRatio?: number;
  maxGradNorm?: number;
  weightDecay?: number;
  seed?: number;
  /** Fraction of the records held out for evaluation (when no evalRecords are given). */
  evalSplit?: number;
  /** Evaluate every N updates (0: only at the end). */
  evalEvery?: number;
  /** Write a (resumable) checkpoint every N updates (0: only at the end). */
  checkpointEvery?: number;
  /** Also write one when this many minutes passed since the last (0: off; default DEFAULTS.checkpointMinutes). */
  checkpointMinutes?: number;
  /**
   * Weight of the stage-1/2 MSE between the mean memory-token and mean document-token states
   * (default DEFAULTS.mseWeight, the reference's 0.1). In short runs it can collapse every memory
   * slot onto the document mean before the generator learns to read them (docs/training-recipe.md).
   */
  mseWeight?: number;
  /** Generator sequence limit in tokens (the reference's max_len). */
  maxLength?: number;
  /** ρ and the document length: stage 1 builds with them; stages 2-3 take their checkpoint's, which given ones must match. */
  compressionRate?: number;
  docMaxLength?: number;
}

export interface Stage1Settings extends LoopSettings {
  lora?: Partial<LoraOptions>;
  memoryInput?: MemoryInput;
  /** How the base's projection weights are held (checked where the model loads: lib/model/quantization.ts). */
  quantize?: QuantizeOption;
}

export interface Stage2Settings extends LoopSettings {
  /** Documents per record (the trainers take the records' own count when absent). */
  k?: number;
  keepGenerator?: boolean;
  trainMemoryTokens?: boolean;
}

export interface Stage3Settings extends LoopSettings {
  /** Documents the retriever selects per question (top-k). */
  k?: number;
  /** Temperature of the differentiable top-k. */
  tau?: number;
  queryReasonerInit?: QueryReasonerInit;
}

/** The settings of any stage: those of another stage are ignored. */
export type StageSettings = Stage1Settings & Stage2Settings & Stage3Settings;

/** The loop's settings, every default filled in and checked. */
export interface LoopConfig {
  batchSize: number;
  microBatchSize: number;
  lanes: 1 | 2;
  gradCheckpoint: boolean;
  epochs: number;
  maxSteps?: number;
  lr: number;
  schedule: Schedule;
  warmupRatio: number;
  minLrRatio: number;
  maxGradNorm: number;
  weightDecay: number;
  seed: number;
  evalSplit: number;
  evalEvery: number;
  checkpointEvery: number;
  checkpointMinutes: number;
  mseWeight: number;
  maxLength: number;
}

export interface Stage1Config extends LoopConfig {
  stage: "stage1";
  compressionRate: number;
  docMaxLength: number;
  lora: LoraOptions;
  memoryInput: MemoryInput;
  quantize?: QuantizeOption;
}

export interface Stage2Config extends LoopConfig {
  stage: "stage2";
  /** The starting checkpoint's (undefined until a trainer has it: then any). */
  compressionRate?: number;
  docMaxLength?: number;
  k: number;
  keepGenerator: boolean;
  trainMemoryTokens: boolean;
}

export interface Stage3Config extends LoopConfig {
  stage: "stage3";
  compressionRate?: number;
  docMaxLength?: number;
  k: number;
  tau: number;
  queryReasonerInit: QueryReasonerInit;
}

export type StageConfig = Stage1Config | Stage2Config | Stage3Config;

/**
 * How errors name a setting. Without it a message starts with the setting's key ("lr must be
 * greater than 0, got 0", field "lr"); with it (the CLI: "--lr") the field carries the name and
 * the message does not repeat it, as the CLI prints the field in front.
 */
export interface Naming {
  name?: (key: string) => string;
}

const SCHEDULES: readonly Schedule[] = ["cosine", "constant"];
const MEMORY_INPUTS: readonly MemoryInput[] = ["raw", "standardised"];
const QUERY_REASONER_INITS: readonly QueryReasonerInit[] = ["compressor", "fresh"];

/** The settings of `stage` with every default filled in, each checked once. */
export function resolveStageConfig(stage: "stage1", settings: Stage1Settings, naming?: Naming): Stage1Config;
export function resolveStageConfig(stage: "stage2", settings: Stage2Settings, naming?: Naming): Stage2Config;
export function resolveStageConfig(stage: "stage3", settings: Stage3Settings, naming?: Naming): Stage3Config;
export function resolveStageConfig(stage: Stage, settings: StageSettings, naming?: Naming): StageConfig;
export function resolveStageConfig(stage: Stage, s: StageSettings, naming: Naming = {}): StageConfig {
  if (stage !== "stage1" && stage !== "stage2" && stage !== "stage3") throw new ClaraError("E_INVALID_ARGUMENT", `stage must be stage1, stage2 or stage3, got ${String(stage)}`, { field: "stage" });
  const c = new Checks(naming);
  const batchSize = c.int("batchSize", s.batchSize ?? DEFAULTS.batchSize[stage], 1);
  const microBatchSize = microBatch(c, batchSize, s);
  if (microBatchSize > batchSize) throw c.fail("microBatchSize", `must be at most ${c.ref("batchSize")} (${batchSize}), got ${microBatchSize}`);
  const loop: LoopConfig = {
    batchSize,
    microBatchSize,
    lanes: c.lanes(s.lanes ?? DEFAULTS.lanes),
    gradCheckpoint: c.bool("gradCheckpoint", s.gradCheckpoint ?? DEFAULTS.gradCheckpoint),
    epochs: c.number("epochs", s.epochs ?? DEFAULTS.epochs, { above: 0 }),
    maxSteps: s.maxSteps === undefined ? undefined : c.int("maxSteps", s.maxSteps, 1),
    lr: c.number("lr", s.lr ?? DEFAULTS.lr[stage], { above: 0 }),
    schedule: c.oneOf("schedule", s.schedule ?? DEFAULTS.schedule[stage], SCHEDULES),
    warmupRatio: c.number("warmupRatio", s.warmupRatio ?? DEFAULTS.warmupRatio, { min: 0 }),
    minLrRatio: c.number("minLrRatio", s.minLrRatio ?? DEFAULTS.minLrRatio, { min: 0, max: 1 }),
    maxGradNorm: c.number("maxGradNorm", s.maxGradNorm ?? DEFAULTS.maxGradNorm, { above: 0 }),
    weightDecay: c.number("weightDecay", s.weightDecay ?? DEFAULTS.adamw.weightDecay, { min: 0 }),
    seed: c.int("seed", s.seed ?? DEFAULTS.seed, 0),
    evalSplit: c.number("evalSplit", s.evalSplit ?? DEFAULTS.evalSplit, { min: 0, below: 1 }),
    evalEvery: c.int("evalEvery", s.evalEvery ?? DEFAULTS.evalEvery, 0),
    checkpointEvery: c.int("checkpointEvery", s.checkpointEvery ?? DEFAULTS.checkpointEvery, 0),
    checkpointMinutes: c.number("checkpointMinutes", s.checkpointMinutes ?? DEFAULTS.checkpointMinutes, { min: 0 }),
    mseWeight: c.number("mseWeight", s.mseWeight ?? DEFAULTS.mseWeight, { min: 0 }),
    maxLength: c.int("maxLength", s.maxLength ?? DEFAULTS.maxLength[stage], 1),
  };
  if (stage === "stage1") {
    const compressionRate = c.int("compressionRate", s.compressionRate ?? DEFAULTS.compressionRate, 1);
    const docMaxLength = c.int("docMaxLength", s.docMaxLength ?? DEFAULTS.docMaxLength, 1);
    checkMemoryTokens(c, compressionRate, docMaxLength);
    return {
      stage,
      ...loop,
      compressionRate,
      docMaxLength,
      lora: {
        rank: c.int("lora.rank", s.lora?.rank ?? DEFAULTS.lora.rank, 1),
        alpha: c.number("lora.alpha", s.lora?.alpha ?? DEFAULTS.lora.alpha, { above: 0 }),
        dropout: c.number("lora.dropout", s.lora?.dropout ?? DEFAULTS.lora.dropout, { min: 0, below: 1 }),
      },
      memoryInput: c.oneOf("memoryInput", s.memoryInput ?? DEFAULTS.memoryInput, MEMORY_INPUTS),
      quantize: s.quantize,
    };
  }
  // Stages 2-3: the checkpoint's shape; given values are checked here and against it later.
  const shape = {
    compressionRate: s.compressionRate === undefined ? undefined : c.int("compressionRate", s.compressionRate, 1),
    docMaxLength: s.docMaxLength === undefined ? undefined : c.int("docMaxLength", s.docMaxLength, 1),
  };
  if (shape.compressionRate !== undefined && shape.docMaxLength !== undefined) checkMemoryTokens(c, shape.compressionRate, shape.docMaxLength);
  const k = c.int("k", s.k ?? DEFAULTS.k[stage], 1);
  if (stage === "stage2") {
    return {
      stage,
      ...loop,
      ...shape,
      k,
      keepGenerator: c.bool("keepGenerator", s.keepGenerator ?? DEFAULTS.keepGenerator),
      trainMemoryTokens: c.bool("trainMemoryTokens", s.trainMemoryTokens ?? DEFAULTS.trainMemoryTokens),
    };
  }
  return {
    stage,
    ...loop,
    ...shape,
    k,
    tau: c.number("tau", s.tau ?? DEFAULTS.tau, { above: 0 }),
    queryReasonerInit: c.oneOf("queryReasonerInit", s.queryReasonerInit ?? DEFAULTS.queryReasonerInit, QUERY_REASONER_INITS),
  };
}

/** microBatchSize, or batchSize / accumulation (which must divide it, and agree with a microBatchSize given too). */
function microBatch(c: Checks, batchSize: number, s: LoopSettings): number {
  if (s.accumulation === undefined) return c.int("microBatchSize", s.microBatchSize ?? DEFAULTS.microBatchSize, 1);
  const accumulation = c.int("accumulation", s.accumulation, 1);
  const micro = batchSize / accumulation;
  if (!Number.isInteger(micro)) throw c.fail("accumulation", `${c.ref("accumulation")} ${accumulation} must divide ${c.ref("batchSize")} ${batchSize}`, false);
  if (s.microBatchSize !== undefined && s.microBatchSize !== micro) {
    throw c.fail(
      "microBatchSize",
      `${c.ref("microBatchSize")} ${s.microBatchSize} disagrees with ${c.ref("batchSize")} / ${c.ref("accumulation")} = ${micro}; give one of them`,
      false,
    );
  }
  return micro;
}

/** ρ and the document length leave at least one memory token (n = ⌊docMaxLength / ρ⌋). */
function checkMemoryTokens(c: Checks, compressionRate: number, docMaxLength: number): void {
  try {
    memoryTokenCount({ compressionRate, docMaxLength });
  } catch (err) {
    throw c.fail("compressionRate", `${(err as Error).message}; e.g. ${c.ref("docMaxLength")} 256 ${c.ref("compressionRate")} 32`, false);
  }
}

class Checks {
  constructor(private readonly naming: Naming) {}

  /** How messages name another setting. */
  ref(key: string): string {
    return this.naming.name ? this.naming.name(key) : key;
  }

  /** `text` says what is wrong with `key`; `subject` false when the text names it already. */
  fail(key: string, text: string, subject = true): ClaraError {
    const named = subject && !this.naming.name ? `${key} ${text}` : text;
    return new ClaraError("E_INVALID_ARGUMENT", named, { field: this.ref(key) });
  }

  number(key: string, v: unknown, range: { min?: number; above?: number; max?: number; below?: number }): number {
    if (typeof v !== "number" || !Number.isFinite(v)) throw this.fail(key, `must be a number, got ${shown(v)}`);
    const expected =
      range.min === 0 && range.below === 1
        ? "in [0, 1)"
        : range.min === 0 && range.max === 1
          ? "in [0, 1]"
          : range.above === 0
            ? "greater than 0"
            : range.min === 0
              ? "0 or more"
              : `at least ${range.min}`;
    const ok =
      (range.min === undefined || v >= range.min) &&
      (range.above === undefined || v > range.above) &&
      (range.max === undefined || v <= range.max) &&
      (range.below === undefined || v < range.below);
    if (!ok) throw this.fail(key, `must be ${expected}, got ${v}`);
    return v;
  }

  int(key: string, v: unknown, min: 0 | 1): number {
    if (typeof v === "number" && Number.isFinite(v) && !Number.isInteger(v)) throw this.fail(key, `must be an integer, got ${v}`);
    return this.number(key, v, { min });
  }

  lanes(v: unknown): 1 | 2 {
    if (v === 1 || v === 2) return v;
    throw this.fail("lanes", `must be 1 or 2, got ${shown(v)}`);
  }

  bool(key: string, v: unknown): boolean {
    if (typeof v !== "boolean") throw this.fail(key, `must be true or false, got ${shown(v)}`);
    return v;
  }

  oneOf<T extends string>(key: string, v: unknown, values: readonly T[]): T {
    const found = values.find((x) => x === v);
    if (found === undefined) throw this.fail(key, `must be one of ${values.join(", ")}, got ${shown(v)}`);
    return found;
  }
}

function shown(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

// ---------------------------------------------------------------------------------------
// Checks against the data and the starting checkpoint

/**
 * Stage-2/3 records against the settings: every stage-2 record has k documents; every stage-3
 * record has as many candidates as the first (N), and k ≤ N. `file` names where they came from.
 */
export function checkStageRecords(
  config: StageConfig,
  records: ReadonlyArray<{ docs: readonly string[]; line?: number }>,
  where: Naming & { file?: string } = {},
): void {
  if (config.stage === "stage1" || records.length === 0) return;
  const ref = (key: string) => (where.name ? where.name(key) : key);
  const { file } = where;
  if (config.stage === "stage2") {
    for (const r of records) {
      if (r.docs.length !== config.k) {
        throw new ClaraError("E_DATA_FIELD", `has ${r.docs.length} documents; every stage-2 record needs k = ${config.k}`, { file, line: r.line, field: "docs" });
      }
    }
    return;
  }
  const n = records[0].docs.length;
  for (const r of records) {
    if (r.docs.length !== n) {
      const trim = where.name ? ` (or pass ${ref("candidates")} N to keep N of each)` : "";
      throw new ClaraError("E_DATA_FIELD", `has ${r.docs.length} candidate documents but the first record has ${n}; every stage-3 record needs the same number${trim}`, {
        file,
        line: r.line,
        field: "docs",
      });
    }
  }
  if (config.k > n) {
    throw new ClaraError("E_INVALID_ARGUMENT", `k = ${config.k} is larger than the ${n} candidates per question${file ? ` in ${file}` : ""}; lower ${ref("k")}`, { field: ref("k") });
  }
}

/**
 * Stages 2-3 continue their checkpoint's ρ and document length: given ones must be the same.
 * `from` names the checkpoint file and its stage where known.
 */
export function checkStartingShape(settings: { compressionRate?: number; docMaxLength?: number }, have: ClaraShape, from: Naming & { file?: string; stage?: Stage } = {}): void {
  for (const key of ["compressionRate", "docMaxLength"] as const) {
    const want = settings[key];
    if (want === undefined || want === have[key]) continue;
    const flag = from.name ? from.name(key) : key;
    const retrain = from.stage ? `, or retrain ${from.stage} with ${flag} ${want}` : "";
    throw new ClaraError("E_CHECKPOINT_MISMATCH", `${from.file ?? "the checkpoint"} was trained with ${key} ${have[key]}, not ${want}; pass ${flag} ${have[key]} (or leave it out)${retrain}`, {
      file: from.file,
      field: `clara.${key}`,
    });
  }
}

// ---------------------------------------------------------------------------------------
// What a checkpoint records, and resume's comparison

/**
 * The loop's settings a checkpoint records (and resume compares), in the order checkpoints have
 * always held them. Lanes and checkpoint timing change how the work is scheduled, not the
 * updates: a run may resume with others. The held-out split and the sequence limit are recorded
 * by the CLI's settings and the stage's own record (StagePlan.config).
 */
export function recordedLoopSettings(c: LoopConfig): Record<string, unknown> {
  return {
    batchSize: c.batchSize,
    microBatchSize: c.microBatchSize,
    epochs: c.epochs,
    lr: c.lr,
    schedule: c.schedule,
    warmupRatio: c.warmupRatio,
    minLrRatio: c.minLrRatio,
    maxGradNorm: c.maxGradNorm,
    weightDecay: c.weightDecay,
    seed: c.seed,
    evalEvery: c.evalEvery,
    checkpointEvery: c.checkpointEvery,
    mseWeight: c.mseWeight,
    maxSteps: c.maxSteps,
  };
}

/**
 * Settings that checkpoints written before they existed do not record, with the value those runs
 * used: such a checkpoint resumes when the setting is left at that value.
 */
const SETTINGS_ADDED_LATER: Record<string, unknown> = {
  mseWeight: DEFAULTS.mseWeight,
  quantization: { mode: "float", bits: 0, groupSize: 0 },
  memoryInput: "raw",
};

/** The keys of `now` whose value is not the one a checkpoint recorded (or, for a setting it predates, the value those runs used). */
export function settingsDiffering(now: Record<string, unknown>, recorded: Record<string, unknown> | undefined): string[] {
  const was = (k: string) => (recorded && k in recorded ? recorded[k] : SETTINGS_ADDED_LATER[k]);
  return Object.keys(now).filter((k) => JSON.stringify(now[k]) !== JSON.stringify(was(k)));
}
