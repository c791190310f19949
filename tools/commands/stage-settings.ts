// A stage command's settings, parsed as mlx_lm's lora.py parses its arguments: the flags and
// --config keys (merged by resolve.ts, each of its kind) split into the CLI's own (the data files,
// the paths, the display) and the stage's, which resolveStageConfig (lib/trainers/stage-config.ts)
// defaults and checks as it does for the API. Beside them, the flat record of the run that
// <name>.config.json and the checkpoint keep, unchanged from earlier versions.

import { ClaraError } from "../../lib";
import { parseQuantizeFlag } from "../../lib/model/quantization";
import { resolveStageConfig, type StageConfig, type StageSettings } from "../../lib/trainers/stage-config";
import { kebab, PRESENTATION_KEYS, type Settings } from "./settings";

export type StageName = "stage1" | "stage2" | "stage3";
export const STAGES: readonly StageName[] = ["stage1", "stage2", "stage3"];

/** The plan's default paths. */
export const PLAN_PATHS: Record<StageName, string> = {
  stage1: "checkpoints/stage1/compressor.npz",
  stage2: "checkpoints/stage2/generator.npz",
  stage3: "checkpoints/stage3/full_system.npz",
};
export const DEFAULT_MODEL = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
export const DEFAULT_RESULTS = "results";

/** The settings only the CLI has: what to read, where to write, what to show. */
export interface StageRun {
  data: string;
  evalData?: string;
  /** Only the first N records of --data / --eval-data. */
  limit?: number;
  evalLimit?: number;
  /** Stage 3: keep N candidates per question. */
  candidates?: number;
  out: string;
  results: string;
  plots: boolean;
  logEvery?: number;
  force: boolean;
  /** The base model: stage 1's (default DEFAULT_MODEL); for stages 2-3 the checkpoint's unless given. */
  model?: string;
  /** Stages 2-3: the checkpoint to start from (default: the previous stage's plan path). */
  from?: string;
}

/** A stage command's settings: the CLI's own, the stage's (resolved) and their flat record. */
export interface StageCommandSettings {
  run: StageRun;
  config: StageConfig;
  /**
   * The settings as <name>.config.json and the checkpoint have always recorded them (flat, named
   * as the flags): what was given, with the defaults listed in effectiveSettings filled in.
   */
  effective: Settings;
}

/** How the CLI names a setting in errors: its flag (lora.rank → --lora-rank). */
export function flagOf(key: string): string {
  return `--${kebab(key.replace(/\.([a-z])/g, (_, c: string) => c.toUpperCase()))}`;
}

/** The merged flags and config keys of a stage command, parsed, defaulted and checked. */
export function stageCommandSettings(stage: StageName, given: Settings): StageCommandSettings {
  const { run, settings } = parseStageSettings(stage, given);
  const config = resolveStageConfig(stage, settings, { name: flagOf });
  return { run, config, effective: effectiveSettings(given, run, config) };
}

type NumericKey = { [K in keyof StageSettings]-?: NonNullable<StageSettings[K]> extends number ? K : never }[keyof StageSettings];
const NUMERIC: readonly NumericKey[] = [
  "batchSize", "microBatchSize", "accumulation", "lanes", "epochs", "maxSteps", "lr", "warmupRatio", "minLrRatio", "maxGradNorm", "weightDecay",
  "seed", "evalSplit", "evalEvery", "checkpointEvery", "checkpointMinutes", "mseWeight", "maxLength", "compressionRate", "docMaxLength", "k", "tau",
];

/** Splits the flat settings (each of its kind: settings.ts checkValue) into the CLI's own and the stage's, as the trainers take them. */
export function parseStageSettings(stage: StageName, given: Settings): { run: StageRun; settings: StageSettings } {
  const num = (key: string) => {
    const v = given[key];
    return typeof v === "number" ? v : undefined;
  };
  const str = (key: string) => {
    const v = given[key];
    return typeof v === "string" ? v : undefined;
  };
  const bool = (key: string) => {
    const v = given[key];
    return typeof v === "boolean" ? v : undefined;
  };
  const oneOf = <T extends string>(key: string, values: readonly T[]) => values.find((x) => x === given[key]);
  const data = str("data");
  if (data === undefined) {
    throw new ClaraError("E_INVALID_ARGUMENT", `${stage} needs training records: --data <file.jsonl> (e.g. ${exampleData(stage)}), or "data:" in the --config file`, { field: "--data" });
  }
  const run: StageRun = {
    data,
    evalData: str("evalData"),
    limit: num("limit"),
    evalLimit: num("evalLimit"),
    candidates: num("candidates"),
    out: str("out") ?? PLAN_PATHS[stage],
    results: str("results") ?? DEFAULT_RESULTS,
    plots: bool("plots") ?? true,
    logEvery: num("logEvery"),
    force: bool("force") ?? false,
    model: str("model") ?? (stage === "stage1" ? DEFAULT_MODEL : undefined),
    from: stage === "stage1" ? undefined : (str("from") ?? (stage === "stage2" ? PLAN_PATHS.stage1 : PLAN_PATHS.stage2)),
  };
  for (const key of ["limit", "evalLimit", "candidates"] as const) {
    const n = run[key];
    if (n !== undefined && !(n >= 1)) throw new ClaraError("E_INVALID_ARGUMENT", `must be at least 1, got ${n}`, { field: flagOf(key) });
  }
  const settings: StageSettings = {
    schedule: oneOf("schedule", ["cosine", "constant"]),
    lora: { rank: num("loraRank"), alpha: num("loraAlpha"), dropout: num("loraDropout") },
    memoryInput: oneOf("memoryInput", ["raw", "standardised"]),
    quantize: parseQuantizeFlag(str("quantize"), num("groupSize")),
    gradCheckpoint: bool("gradCheckpoint"),
    keepGenerator: bool("keepGenerator"),
    trainMemoryTokens: bool("trainMemoryTokens"),
    queryReasonerInit: oneOf("queryReasonerInit", ["compressor", "fresh"]),
  };
  for (const key of NUMERIC) settings[key] = num(key);
  return { run, settings };
}

/**
 * The flat record of a run: the settings given, with these filled in from the run and the
 * resolved settings. The lists are what runs have always recorded (and hashed: the pipeline skips
 * a stage whose hash matches, and resume compares the record), so the rest (lanes, mseWeight,
 * memoryInput, maxSteps, …) is recorded only when given. Keep them as they are.
 */
const RECORDED_DEFAULTS = {
  stage1: ["out", "results", "plots", "model", "compressionRate", "docMaxLength", "loraRank", "loraAlpha", "loraDropout"],
  stage2: ["out", "results", "plots", "from", "k", "keepGenerator", "trainMemoryTokens"],
  stage3: ["out", "results", "plots", "from", "k", "tau", "queryReasonerInit"],
  loop: ["lr", "schedule", "batchSize", "microBatchSize", "epochs", "seed", "evalSplit", "evalEvery", "checkpointEvery", "checkpointMinutes", "warmupRatio", "minLrRatio", "maxGradNorm", "weightDecay", "maxLength"],
};

function effectiveSettings(given: Settings, run: StageRun, c: StageConfig): Settings {
  const lora = c.stage === "stage1" ? { loraRank: c.lora.rank, loraAlpha: c.lora.alpha, loraDropout: c.lora.dropout } : {};
  const values: Settings = { ...run, ...c, ...lora };
  const e: Settings = { ...given };
  delete e.accumulation; // recorded as the micro-batch size it gives
  for (const key of [...RECORDED_DEFAULTS[c.stage], ...RECORDED_DEFAULTS.loop]) e[key] ??= values[key];
  return e;
}

function exampleData(stage: StageName): string {
  return { stage1: "example/pretrain.jsonl", stage2: "example/instruction.jsonl", stage3: "example/end_to_end.jsonl" }[stage];
}

/** The settings that define the trained weights (what resume and skip compare). */
export function trainingSettings(e: Settings): Settings {
  const out: Settings = {};
  for (const key of Object.keys(e).sort()) if (!PRESENTATION_KEYS.has(key) && e[key] !== undefined) out[key] = e[key];
  return out;
}

