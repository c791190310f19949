// The settings of every clara-train command: one table that gives the command-line flags
// (kebab-case), the keys of --config files (camelCase; kebab-case is accepted too), their types
// and which commands read them. Flags override the config file; the config file overrides the
// defaults (lib/clara/config.ts DEFAULTS, filled in by resolveStageConfig; stage-settings.ts
// fills the CLI's own: paths and display).

import { ClaraError } from "../../lib";

export type Kind = "string" | "number" | "int" | "bool" | readonly string[];
export type CommandName = "stage1" | "stage2" | "stage3" | "pipeline" | "demo" | "make-data" | "doctor";

export interface SettingSpec {
  kind: Kind;
  describe: string;
  /** Help text for particular commands, where it differs. */
  help?: Partial<Record<CommandName, string>>;
  group: string;
  /** Commands that take it as a flag (pipeline/demo also take stage settings as --stageN.<key>). */
  commands: readonly CommandName[];
  alias?: string;
}

const TRAIN = ["stage1", "stage2", "stage3"] as const;
const TRAIN_AND_PLAN = ["stage1", "stage2", "stage3", "pipeline", "demo"] as const;

export const SETTINGS: Record<string, SettingSpec> = {
  // what to train and where
  model: { group: "Data and output:", kind: "string", describe: "base model: a Hugging Face folder or a .gguf file (stages 2-3: the checkpoint's unless given)", help: { stage1: "base model: a Hugging Face folder or a .gguf file (default models/SmolLM2-135M-Instruct.Q4_1.gguf)" }, commands: TRAIN_AND_PLAN },
  data: { group: "Data and output:", kind: "string", describe: "training records (JSON Lines)", commands: TRAIN },
  evalData: { group: "Data and output:", kind: "string", describe: "held-out records (JSON Lines); otherwise --eval-split of --data is held out", commands: TRAIN },
  limit: { group: "Data and output:", kind: "int", describe: "use only the first N records of --data", help: { "make-data": "stop after N derived records" }, commands: [...TRAIN, "make-data"] },
  evalLimit: { group: "Data and output:", kind: "int", describe: "use only the first N records of --eval-data", commands: TRAIN },
  out: { group: "Data and output:", kind: "string", describe: "checkpoint to write", help: { "make-data": "with --example: the folder to write (default example)", stage1: "checkpoint to write (default checkpoints/stage1/compressor.npz)", stage2: "checkpoint to write (default checkpoints/stage2/generator.npz)", stage3: "checkpoint to write (default checkpoints/stage3/full_system.npz)" }, commands: [...TRAIN, "make-data"] },
  from: { group: "Data and output:", kind: "string", describe: "the checkpoint to start from", help: { "make-data": "the stage-1 records to derive from", stage2: "the stage-1 checkpoint to start from (default checkpoints/stage1/compressor.npz)", stage3: "the stage-2 checkpoint to start from (default checkpoints/stage2/generator.npz)" }, commands: ["stage2", "stage3", "make-data"] },
  results: { group: "Data and output:", kind: "string", describe: "folder for loss curves (PNG), training summaries and the report", commands: TRAIN_AND_PLAN },
  // the CLaRa shape
  compressionRate: { group: "CLaRa:", kind: "int", describe: "ρ: document tokens per memory token (stage 1 sets it; stages 2-3 check it against the checkpoint)", commands: TRAIN_AND_PLAN },
  docMaxLength: { group: "CLaRa:", kind: "int", describe: "document length in tokens; longer documents are truncated (with a warning)", commands: TRAIN_AND_PLAN },
  k: { group: "CLaRa:", kind: "int", describe: "documents per prompt", help: { stage2: "documents per record (every record must have k)", stage3: "documents the retriever selects per question (top-k)", "make-data": "documents per stage-2 record (default 5)" }, commands: ["stage2", "stage3", "make-data"] },
  candidates: { group: "CLaRa:", kind: "int", describe: "keep N candidates per question (the positives and the first others)", help: { "make-data": "candidate documents per stage-3 record (default 20)" }, commands: ["stage3", "make-data"] },
  tau: { group: "CLaRa:", kind: "number", describe: "stage 3: temperature of the differentiable top-k", commands: ["stage3"] },
  mseWeight: { group: "CLaRa:", kind: "number", describe: "stages 1-2: weight of the memory/document mean-state MSE (the reference's 0.1)", commands: ["stage1", "stage2"] },
  memoryInput: { group: "CLaRa:", kind: ["raw", "standardised"], describe: "stage 1: compressed vectors enter the generator as they are (raw, the reference) or standardised to the input embeddings' statistics; later stages keep the checkpoint's", commands: ["stage1"] },
  maxLength: { group: "CLaRa:", kind: "int", describe: "generator sequence limit in tokens", commands: TRAIN },
  quantize: { group: "CLaRa:", kind: ["4", "8", "source", "float"], describe: "stage 1: base precision — 4 or 8 bits (QLoRA), the file's own (source), or float; later stages keep the checkpoint's", commands: ["stage1"] },
  groupSize: { group: "CLaRa:", kind: "int", describe: "with --quantize 4|8: affine group size 32, 64 (default) or 128", commands: ["stage1"] },
  loraRank: { group: "CLaRa:", kind: "int", describe: "LoRA rank r (stage 1; later stages keep the checkpoint's)", commands: ["stage1"] },
  loraAlpha: { group: "CLaRa:", kind: "number", describe: "LoRA α", commands: ["stage1"] },
  loraDropout: { group: "CLaRa:", kind: "number", describe: "LoRA dropout", commands: ["stage1"] },
  keepGenerator: { group: "CLaRa:", kind: "bool", describe: "stage 2: keep stage 1's generator adapter instead of a fresh one", commands: ["stage2"] },
  trainMemoryTokens: { group: "CLaRa:", kind: "bool", describe: "stage 2: train the memory-token embeddings too", commands: ["stage2"] },
  queryReasonerInit: { group: "CLaRa:", kind: ["compressor", "fresh"], describe: "stage 3: start the query reasoner as a copy of the compressor, or as a fresh adapter", commands: ["stage3"] },
  // optimisation
  lr: { group: "Optimisation:", kind: "number", describe: "peak learning rate", commands: TRAIN },
  schedule: { group: "Optimisation:", kind: ["cosine", "constant"], describe: "learning-rate schedule", commands: TRAIN },
  warmupRatio: { group: "Optimisation:", kind: "number", describe: "fraction of the updates spent warming up", commands: TRAIN },
  minLrRatio: { group: "Optimisation:", kind: "number", describe: "cosine floor as a fraction of --lr", commands: TRAIN },
  batchSize: { group: "Optimisation:", kind: "int", describe: "examples per optimizer update", commands: TRAIN, alias: "batch" },
  microBatchSize: { group: "Optimisation:", kind: "int", describe: "examples per forward/backward pass (gradients are accumulated)", commands: TRAIN },
  lanes: { group: "Optimisation:", kind: "int", describe: "micro-batches run at once on their own CPU threads: 2, or 1 for half the activation memory", commands: TRAIN },
  gradCheckpoint: {
    group: "Optimisation:",
    kind: "bool",
    describe: "recompute each layer in the backward pass: activations of one layer instead of all, same updates, less memory, slower steps (SmolLM2 stage 1: peak 10.1 -> 6.0 GB, 1.5x the time)",
    commands: TRAIN,
  },
  accumulation: { group: "Optimisation:", kind: "int", describe: "gradient-accumulation passes per update (micro-batch = batch / accumulation)", commands: TRAIN },
  epochs: { group: "Optimisation:", kind: "number", describe: "passes over the training records", commands: TRAIN },
  maxSteps: { group: "Optimisation:", kind: "int", describe: "stop after this many updates", commands: TRAIN },
  maxGradNorm: { group: "Optimisation:", kind: "number", describe: "gradient clipping norm", commands: TRAIN },
  weightDecay: { group: "Optimisation:", kind: "number", describe: "AdamW weight decay", commands: TRAIN },
  seed: { group: "Optimisation:", kind: "int", describe: "seed of the data order, the split and the adapters", commands: [...TRAIN_AND_PLAN, "make-data"] },
  evalSplit: { group: "Optimisation:", kind: "number", describe: "fraction of --data held out for evaluation (0 to 1)", commands: TRAIN },
  evalEvery: { group: "Optimisation:", kind: "int", describe: "evaluate every N updates (0: only at the end)", commands: TRAIN },
  checkpointEvery: { group: "Optimisation:", kind: "int", describe: "write a resumable checkpoint every N updates (0: only at the end)", commands: TRAIN },
  checkpointMinutes: { group: "Optimisation:", kind: "number", describe: "also write a resumable checkpoint every N minutes of training (0: off)", commands: TRAIN },
  // output
  plots: { group: "Display:", kind: "bool", describe: "write loss curves as PNG (--no-plots to skip)", commands: TRAIN_AND_PLAN },
  logEvery: { group: "Display:", kind: "int", describe: "without a terminal: a log line every N updates (default: about 20 lines per stage)", commands: TRAIN_AND_PLAN },
  // pipeline
  force: {
    group: "Pipeline:",
    kind: "bool",
    describe: "retrain stages even when their checkpoint is complete and matches",
    help: { stage1: "start over when --out holds an unfinished run (refused otherwise: --resume continues it)", stage2: "start over when --out holds an unfinished run (refused otherwise: --resume continues it)", stage3: "start over when --out holds an unfinished run (refused otherwise: --resume continues it)" },
    commands: ["pipeline", "demo", ...TRAIN],
  },
  pdf: { group: "Evaluation:", kind: "string", describe: "evaluation: the PDF (default knowledge_data/2511.18659v2.pdf, else knowledge_data/sample_paper.pdf)", commands: ["pipeline", "demo"] },
  qaFile: { group: "Evaluation:", kind: "string", describe: "evaluation: question/answer pairs about the PDF (JSON Lines)", commands: ["pipeline", "demo"] },
  maxQuestions: { group: "Evaluation:", kind: "int", describe: "evaluation: at most N questions", commands: ["pipeline", "demo"] },
  maxNewTokens: { group: "Evaluation:", kind: "int", describe: "evaluation: answer length in tokens (default 64)", commands: ["pipeline", "demo"] },
  maxCompressionChunks: { group: "Evaluation:", kind: "int", describe: "evaluation: chunks reconstructed in the compression-quality scenario", commands: ["pipeline", "demo"] },
  skipEval: { group: "Evaluation:", kind: "bool", describe: "stop after stage 3", commands: ["pipeline", "demo"] },
  // make-data
  instruction: { group: "Data and output:", kind: "string", describe: "make-data: write stage-2 records here", commands: ["make-data"] },
  endToEnd: { group: "Data and output:", kind: "string", describe: "make-data: write stage-3 records here", commands: ["make-data"] },
  questionsPerDoc: { group: "Data and output:", kind: "int", describe: "make-data: at most N questions per document", commands: ["make-data"] },
  example: { group: "Data and output:", kind: "bool", describe: "make-data: regenerate the example data (example/) instead", commands: ["make-data"] },
};

/** Config-file sections: settings for one command or stage (they override the top level). */
export const SECTIONS = ["stage1", "stage2", "stage3", "eval", "makeData"] as const;
export type Section = (typeof SECTIONS)[number];

/** Settings an eval section may hold. */
export const EVAL_KEYS = ["pdf", "qaFile", "maxQuestions", "maxNewTokens", "maxCompressionChunks", "k", "skipEval"] as const;

/** Settings that only change what is shown or where results go, never the trained weights. */
// Settings that change how a run is shown or scheduled, not the weights it trains.
export const PRESENTATION_KEYS = new Set(["results", "plots", "logEvery", "force", "checkpointMinutes", "gradCheckpoint"]);

export function camel(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function settingsFor(command: CommandName): string[] {
  return Object.keys(SETTINGS).filter((k) => SETTINGS[k].commands.includes(command));
}

export type Settings = Record<string, unknown>;

/** Where a value came from, for error messages. */
export interface Origin {
  file?: string;
  line?: number;
  /** How to name the setting: "--lr" for a flag, "stage1.lr" for a config key. */
  name: string;
}

/** Checks a value against its kind; returns it normalised (numbers from numeric strings in config files). */
export function checkValue(key: string, value: unknown, origin: Origin): unknown {
  const spec = SETTINGS[key];
  const fail = (expected: string) =>
    new ClaraError("E_INVALID_ARGUMENT", `must be ${expected}, got ${describeValue(value)}`, {
      file: origin.file,
      line: origin.line,
      field: origin.name,
    });
  const kind = spec.kind;
  if (Array.isArray(kind)) {
    if (typeof value !== "string" || !kind.includes(value)) throw fail(`one of ${kind.join(", ")}`);
    return value;
  }
  switch (kind) {
    case "string":
      if (typeof value === "number") return String(value);
      if (typeof value !== "string" || value === "") throw fail("a non-empty string");
      return value;
    case "bool":
      if (typeof value !== "boolean") throw fail("true or false");
      return value;
    case "number":
    case "int": {
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isFinite(n)) throw fail(kind === "int" ? "an integer" : "a number");
      if (kind === "int" && !Number.isInteger(n)) throw fail("an integer");
      return n;
    }
  }
  return value;
}

function describeValue(v: unknown): string {
  if (typeof v === "number" && Number.isNaN(v)) return "something that is not a number";
  if (typeof v === "string") return JSON.stringify(v);
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (v !== null && typeof v === "object") return "a mapping";
  return String(v);
}
