// `clara-train stage1|stage2|stage3`: one CLaRa stage from validated settings. Everything a
// user can get wrong is checked before the model loads (settings, output folders, every data
// record, the starting checkpoint); then the trainer runs with a progress display, Ctrl-C
// stops it after the current update with a resumable checkpoint, and a non-finite loss stops
// it with the last good checkpoint untouched. The effective configuration is saved beside the
// checkpoint (<name>.config.json) and inside it (metadata.config), the loss curve and a summary
// go to the results folder.

import { parseQuantizeFlag } from "../../lib/model/quantization";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  ClaraError,
  readCheckpoint,
  readEndToEndRecords,
  readInstructionRecords,
  readPretrainRecords,
  Stage1Trainer,
  Stage2Trainer,
  Stage3Trainer,
  type CheckpointMetadata,
  type ClaraModel,
  type EndToEndRecord,
  type InstructionRecord,
  type PretrainRecord,
  type QueryReasonerInit,
  type StageOptions,
  type TrainEvent,
  type TrainSummary,
} from "../../lib";
import { CLARA_DEFAULTS as DEFAULTS, type MemoryInput } from "../../lib/model";
import { memoryTokenCount } from "../../lib/clara/config";
import { trimCandidates } from "../../lib/data/records";
import { writeFileAtomic } from "../../lib/io/atomic";
import { locateModel } from "../../lib/model/files";
import { lineChartPng, writePng } from "../../lib/report/plot";
import type { StagePlan } from "../../lib/trainers/trainer";
import { PRESENTATION_KEYS, type Settings } from "./settings";
import { CliExit, EXIT, fmtLoss, duration, type Ui } from "./ui";

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

const STAGE_TITLES: Record<StageName, string> = {
  stage1: "stage 1 (compressor pretraining)",
  stage2: "stage 2 (instruction tuning)",
  stage3: "stage 3 (end-to-end retrieval and generation)",
};

export interface StageRunOptions {
  stage: StageName;
  /** Merged settings (config file and flags), defaults not yet applied. */
  settings: Settings;
  resume: boolean;
  signal?: AbortSignal;
  ui: Ui;
  /** The command line that resumes this run (printed after Ctrl-C). */
  resumeCommand: string;
}

export interface StageOutcome {
  stage: StageName;
  checkpoint: string;
  configFile: string;
  steps: number;
  totalSteps: number;
  finalLoss: number | null;
  evalLoss: number | null;
  seconds: number;
  curve: string | null;
  summaryFile: string | null;
  skipped: boolean;
  truncatedDocuments: number;
}

// ---------------------------------------------------------------------------------------
// Settings with defaults

/** The settings of a stage with every default filled in (stages 2-3: the shape comes from the checkpoint). */
export function withDefaults(stage: StageName, s: Settings): Settings {
  const e: Settings = { ...s };
  const need = (key: string, example: string) => {
    if (e[key] === undefined) {
      throw new ClaraError("E_INVALID_ARGUMENT", `${stage} needs ${example}`, { field: `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` });
    }
  };
  need("data", `training records: --data <file.jsonl> (e.g. ${exampleData(stage)}), or "data:" in the --config file`);
  e.out ??= PLAN_PATHS[stage];
  e.results ??= DEFAULT_RESULTS;
  e.plots ??= true;
  if (stage === "stage1") {
    e.model ??= DEFAULT_MODEL;
    e.compressionRate ??= DEFAULTS.compressionRate;
    e.docMaxLength ??= DEFAULTS.docMaxLength;
    e.loraRank ??= DEFAULTS.lora.rank;
    e.loraAlpha ??= DEFAULTS.lora.alpha;
    e.loraDropout ??= DEFAULTS.lora.dropout;
  } else {
    e.from ??= stage === "stage2" ? PLAN_PATHS.stage1 : PLAN_PATHS.stage2;
    e.k ??= DEFAULTS.k[stage];
  }
  if (stage === "stage2") {
    e.keepGenerator ??= false;
    e.trainMemoryTokens ??= false;
  }
  if (stage === "stage3") {
    e.tau ??= DEFAULTS.tau;
    e.queryReasonerInit ??= "compressor";
  }
  e.lr ??= DEFAULTS.lr[stage];
  e.schedule ??= DEFAULTS.schedule[stage];
  e.batchSize ??= DEFAULTS.batchSize[stage];
  if (e.accumulation !== undefined) {
    const micro = (e.batchSize as number) / (e.accumulation as number);
    if (!Number.isInteger(micro)) {
      throw new ClaraError("E_INVALID_ARGUMENT", `--accumulation ${e.accumulation} must divide --batch-size ${e.batchSize}`, { field: "--accumulation" });
    }
    if (e.microBatchSize !== undefined && e.microBatchSize !== micro) {
      throw new ClaraError("E_INVALID_ARGUMENT", `--micro-batch-size ${e.microBatchSize} disagrees with --batch-size / --accumulation = ${micro}; give one of them`, {
        field: "--micro-batch-size",
      });
    }
    e.microBatchSize = micro;
    delete e.accumulation;
  }
  e.microBatchSize ??= 1;
  e.epochs ??= DEFAULTS.epochs;
  e.seed ??= DEFAULTS.seed;
  e.evalSplit ??= 0;
  e.evalEvery ??= 0;
  e.checkpointEvery ??= 0;
  e.checkpointMinutes ??= DEFAULTS.checkpointMinutes;
  e.warmupRatio ??= DEFAULTS.warmupRatio;
  e.minLrRatio ??= DEFAULTS.minLrRatio;
  e.maxGradNorm ??= DEFAULTS.maxGradNorm;
  e.weightDecay ??= DEFAULTS.adamw.weightDecay;
  e.maxLength ??= DEFAULTS.maxLength[stage];
  checkRanges(e);
  return e;
}

function exampleData(stage: StageName): string {
  return { stage1: "example/pretrain.jsonl", stage2: "example/instruction.jsonl", stage3: "example/end_to_end.jsonl" }[stage];
}

function checkRanges(e: Settings): void {
  const bad = (key: string, expected: string) =>
    new ClaraError("E_INVALID_ARGUMENT", `must be ${expected}, got ${e[key]}`, { field: `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` });
  const positive = ["batchSize", "microBatchSize", "maxSteps", "limit", "evalLimit", "k", "candidates", "loraRank", "compressionRate", "docMaxLength", "maxLength"];
  for (const key of positive) if (e[key] !== undefined && !((e[key] as number) >= 1)) throw bad(key, "at least 1");
  for (const key of ["evalEvery", "checkpointEvery", "checkpointMinutes", "mseWeight", "weightDecay", "warmupRatio", "minLrRatio"]) if (e[key] !== undefined && (e[key] as number) < 0) throw bad(key, "0 or more");
  for (const key of ["lr", "epochs", "maxGradNorm", "tau", "loraAlpha"]) if (e[key] !== undefined && !((e[key] as number) > 0)) throw bad(key, "greater than 0");
  if (!((e.evalSplit as number) >= 0 && (e.evalSplit as number) < 1)) throw bad("evalSplit", "in [0, 1)");
  if (e.loraDropout !== undefined && !((e.loraDropout as number) >= 0 && (e.loraDropout as number) < 1)) throw bad("loraDropout", "in [0, 1)");
  if (e.lanes !== undefined && e.lanes !== 1 && e.lanes !== 2) throw bad("lanes", "1 or 2");
  if ((e.microBatchSize as number) > (e.batchSize as number)) {
    throw new ClaraError("E_INVALID_ARGUMENT", `must be at most --batch-size (${e.batchSize}), got ${e.microBatchSize}`, { field: "--micro-batch-size" });
  }
  if (e.compressionRate !== undefined && e.docMaxLength !== undefined) {
    try {
      memoryTokenCount({ compressionRate: e.compressionRate as number, docMaxLength: e.docMaxLength as number });
    } catch (err) {
      throw new ClaraError("E_INVALID_ARGUMENT", `${(err as Error).message}; e.g. --doc-max-length 256 --compression-rate 32`, { field: "--compression-rate" });
    }
  }
}

// ---------------------------------------------------------------------------------------
// Checks before anything loads

/** Creates `dir` if needed and writes a probe file: an unwritable folder fails now, not after an hour of training. */
export function ensureWritableDir(dir: string, setting: string): void {
  const probe = path.join(dir, `.clara-write-test-${process.pid}`);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(probe, "");
    fs.rmSync(probe, { force: true });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why: Record<string, string> = {
      EACCES: "permission denied",
      EPERM: "operation not permitted",
      EROFS: "the file system is read-only",
      ENOTDIR: "a part of the path is a file, not a folder",
      EEXIST: "a file is in the way of the folder",
      ENOSPC: "the disk is full",
    };
    throw new ClaraError("E_IO", `cannot write to the folder ${dir}: ${why[err.code ?? ""] ?? err.message}; choose another ${setting} or fix the folder's permissions`, {
      file: dir,
      field: setting,
    });
  }
}

export function sha256File(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

export function configFileFor(checkpoint: string): string {
  return checkpoint.replace(/\.npz$/, "") + ".config.json";
}


interface LoadedData {
  train: Array<PretrainRecord | InstructionRecord | EndToEndRecord>;
  eval?: Array<PretrainRecord | InstructionRecord | EndToEndRecord>;
  escaped: number;
}

function readStageRecords(stage: StageName, e: Settings, file: string, limit: number | undefined, flag: string): { records: LoadedData["train"]; escaped: number } {
  try {
    return readStageRecordsOf(stage, e, file, limit);
  } catch (err) {
    // A file that cannot be read at all: name the flag that gave it.
    if (err instanceof ClaraError && err.code === "E_IO" && err.field === undefined) {
      throw new ClaraError("E_IO", `${err.message.replace(`Could not read ${file}: `, "cannot read it: ")}; check the path given to ${flag}`, { file, field: flag, cause: err });
    }
    throw err;
  }
}

function readStageRecordsOf(stage: StageName, e: Settings, file: string, limit: number | undefined): { records: LoadedData["train"]; escaped: number } {
  let records: LoadedData["train"];
  let escaped: number;
  if (stage === "stage1") ({ records, stats: { escaped } } = readPretrainRecords(file));
  else if (stage === "stage2") ({ records, stats: { escaped } } = readInstructionRecords(file, { k: e.k as number }));
  else {
    const r = readEndToEndRecords(file, {});
    escaped = r.stats.escaped;
    let list = r.records;
    if (e.candidates !== undefined) list = trimCandidates(list, e.candidates as number, file);
    const n = list[0].docs.length;
    for (const rec of list) {
      if (rec.docs.length !== n) {
        throw new ClaraError(
          "E_DATA_FIELD",
          `has ${rec.docs.length} candidate documents but the first record has ${n}; every stage-3 record needs the same number (or pass --candidates N to keep N of each)`,
          { file, line: rec.line, field: "docs" },
        );
      }
    }
    if ((e.k as number) > n) {
      throw new ClaraError("E_INVALID_ARGUMENT", `k = ${e.k} is larger than the ${n} candidates per question in ${file}; lower --k`, { field: "--k" });
    }
    records = list;
  }
  return { records: limit !== undefined ? records.slice(0, limit) : records, escaped };
}

/** The starting checkpoint of stage 2/3: present, a complete earlier stage, and of the requested shape. */
function checkFrom(stage: StageName, e: Settings): CheckpointMetadata {
  const from = e.from as string;
  if (!fs.existsSync(from)) {
    const previous = stage === "stage2" ? "stage1" : "stage2";
    throw new ClaraError("E_CHECKPOINT", `does not exist; train ${previous} first (npx clara-train ${previous} ...) or pass --from <checkpoint>`, {
      file: from,
      field: "--from",
    });
  }
  const { metadata } = readCheckpoint(from);
  const order = STAGES.indexOf(metadata.stage);
  if (!(order >= 0 && order < STAGES.indexOf(stage))) {
    throw new ClaraError("E_CHECKPOINT_MISMATCH", `is a ${metadata.stage} checkpoint; ${stage} starts from an earlier stage's checkpoint`, { file: from, field: "stage" });
  }
  if (!metadata.complete) {
    throw new ClaraError(
      "E_CHECKPOINT",
      `is an unfinished ${metadata.stage} run (stopped at update ${metadata.step}); finish it with npx clara-train ${metadata.stage} ... --resume first`,
      { file: from, field: "complete" },
    );
  }
  for (const [key, flag] of [
    ["compressionRate", "--compression-rate"],
    ["docMaxLength", "--doc-max-length"],
  ] as const) {
    const have = metadata.clara[key];
    if (e[key] !== undefined && e[key] !== have) {
      throw new ClaraError(
        "E_CHECKPOINT_MISMATCH",
        `was trained with ${key} ${have}, not ${e[key]}; pass ${flag} ${have} (or leave it out), or retrain ${metadata.stage} with ${flag} ${e[key]}`,
        { file: from, field: `clara.${key}` },
      );
    }
    e[key] = have;
  }
  return metadata;
}

// ---------------------------------------------------------------------------------------
// The run

/** The settings that define the trained weights (what resume and skip compare). */
export function trainingSettings(e: Settings): Settings {
  const out: Settings = {};
  for (const key of Object.keys(e).sort()) if (!PRESENTATION_KEYS.has(key) && e[key] !== undefined) out[key] = e[key];
  return out;
}

export interface Prepared {
  stage: StageName;
  effective: Settings;
  data: LoadedData;
  /** Set by bindInputs: hashes of the data and the starting checkpoint. */
  inputs: Record<string, unknown>;
  /** sha256 of the training settings and inputs: a complete checkpoint with this hash needs no retraining. */
  settingsHash: string;
  /** Set by bindInputs: the stage of the starting checkpoint (stages 2-3). */
  fromStage?: CheckpointMetadata["stage"];
}

/**
 * Validates everything that can be validated without the model or the starting checkpoint:
 * settings, output folders, the model path and every data record.
 */
export function prepareStage(stage: StageName, settings: Settings, ui: Ui): Prepared {
  const e = withDefaults(stage, settings);
  if (fs.existsSync(e.out as string) && fs.statSync(e.out as string).isDirectory()) {
    throw new ClaraError("E_IO", `is a folder; --out names the checkpoint file to write, e.g. ${path.join(e.out as string, `${stage}.npz`)}`, { file: e.out as string, field: "--out" });
  }
  ensureWritableDir(path.dirname(path.resolve(e.out as string)), "--out");
  ensureWritableDir(e.results as string, "--results");
  if (stage === "stage1" || e.model !== undefined) checkModelPath(e.model as string);
  if (stage === "stage1") checkDocumentFits(e.model as string, e.docMaxLength as number, e.compressionRate as number);
  const train = readStageRecords(stage, e, e.data as string, e.limit as number | undefined, "--data");
  const data: LoadedData = { train: train.records, escaped: train.escaped };
  if (e.evalData !== undefined) {
    const held = readStageRecords(stage, e, e.evalData as string, e.evalLimit as number | undefined, "--eval-data");
    data.eval = held.records;
    data.escaped += held.escaped;
  }
  if (data.escaped > 0) ui.warn(`${data.escaped} literal special-token strings (<MEM0>, <ENC>, …) in the data were broken with a zero-width space`, { escaped: data.escaped });
  return { stage, effective: e, data, inputs: {}, settingsHash: "" };
}

/** Checks the starting checkpoint (stages 2-3) and fixes the identity of the run's inputs. */
export function bindInputs(p: Prepared): Prepared {
  const e = p.effective;
  if (p.stage !== "stage1") p.fromStage = checkFrom(p.stage, e).stage;
  const inputs: Record<string, unknown> = { dataSha256: sha256File(e.data as string) };
  if (e.evalData !== undefined) inputs.evalDataSha256 = sha256File(e.evalData as string);
  if (p.stage !== "stage1") inputs.fromSha256 = sha256File(e.from as string);
  p.inputs = inputs;
  p.settingsHash = createHash("sha256")
    .update(JSON.stringify({ settings: trainingSettings(e), inputs }))
    .digest("hex")
    .slice(0, 16);
  return p;
}

function checkModelPath(model: string): void {
  if (fs.existsSync(model)) return;
  const fix = path.normalize(model) === path.normalize(DEFAULT_MODEL) ? "fetch the default model with: npm run fetch-model" : "pass --model <folder or .gguf>";
  throw new ClaraError("E_MODEL_FILES", `the model does not exist; ${fix} (npx clara-train doctor shows what is installed)`, { file: model, field: "--model" });
}

/** The compressor reads docMaxLength + 3 + n tokens: they must fit the model's context, checked before anything loads. */
function checkDocumentFits(model: string, docMaxLength: number, compressionRate: number): void {
  const context = locateModel(model).config.max_position_embeddings;
  const needed = docMaxLength + 3 + memoryTokenCount({ compressionRate, docMaxLength });
  if (context && needed > context) {
    throw new ClaraError(
      "E_INVALID_ARGUMENT",
      `a document of ${docMaxLength} tokens needs ${needed} positions in the compressor (with <ENC>, BOS, EOS and the memory tokens), but the model's context is ${context}; lower --doc-max-length`,
      { field: "--doc-max-length" },
    );
  }
}

/** Whether the prepared stage's checkpoint is a complete run of exactly these settings and inputs. */
export function isCompleteMatch(p: Prepared): { match: boolean; why: string } {
  const checkpoint = p.effective.out as string;
  if (!fs.existsSync(checkpoint)) return { match: false, why: "no checkpoint yet" };
  let metadata: CheckpointMetadata;
  try {
    metadata = readCheckpoint(checkpoint).metadata;
  } catch (err) {
    return { match: false, why: `the checkpoint cannot be read (${(err as Error).message})` };
  }
  if (!metadata.complete) return { match: false, why: `the checkpoint is unfinished (stopped at update ${metadata.step})` };
  if (metadata.config?.settingsHash !== p.settingsHash) {
    const now: Settings = { ...trainingSettings(p.effective), ...p.inputs };
    const changed = Object.keys(now).filter((k) => JSON.stringify(now[k]) !== JSON.stringify(metadata.config?.[k]));
    const names = changed.map((k) => (k.endsWith("Sha256") ? `${k.slice(0, -6)} (contents)` : k));
    return { match: false, why: `the checkpoint was trained with other settings${names.length ? ` (${names.join(", ")})` : ""}` };
  }
  return { match: true, why: "" };
}

/** Runs a prepared stage. Throws CliExit(130) after an interruption (the resume command printed). */
export async function runPrepared(p: Prepared, o: Omit<StageRunOptions, "settings" | "stage">): Promise<StageOutcome> {
  const { stage, effective: e } = p;
  const ui = o.ui;
  if (!p.settingsHash) bindInputs(p);
  if (stage === "stage3" && p.fromStage === "stage1") {
    ui.warn(
      `stage3 starts from a stage-1 checkpoint (${e.from as string}): its generator has never answered in the stage-2/3 template; ` +
        "the reference allows this, but stage 2 first usually answers better",
      { fromStage: "stage1" },
    );
  }
  const out = e.out as string;
  const configFile = configFileFor(out);
  if (o.resume) {
    if (!fs.existsSync(out)) {
      throw new ClaraError("E_CHECKPOINT", `there is nothing to resume: the checkpoint does not exist; run without --resume`, { file: out, field: "--resume" });
    }
  } else if (fs.existsSync(out)) {
    try {
      const m = readCheckpoint(out).metadata;
      if (!m.complete && !e.force) {
        throw new ClaraError(
          "E_CHECKPOINT",
          `holds an unfinished ${m.stage} run (update ${m.step}): continue it with --resume, or start over with --force (which replaces it)`,
          { file: out, field: "--out" },
        );
      }
      if (!m.complete) ui.info(`${stage}: ${out} holds an unfinished run (update ${m.step}); starting over (--force)`);
    } catch (err) {
      // A file that is not a checkpoint is replaced below; a refusal stands.
      if (err instanceof ClaraError && err.field === "--out") throw err;
    }
  }

  const train = p.data.train;
  const options: StageOptions = {
    out,
    batchSize: e.batchSize as number,
    microBatchSize: e.microBatchSize as number,
    lanes: e.lanes as 1 | 2 | undefined,
    epochs: e.epochs as number,
    maxSteps: e.maxSteps as number | undefined,
    lr: e.lr as number,
    schedule: e.schedule as "cosine" | "constant",
    warmupRatio: e.warmupRatio as number,
    minLrRatio: e.minLrRatio as number,
    maxGradNorm: e.maxGradNorm as number,
    weightDecay: e.weightDecay as number,
    seed: e.seed as number,
    evalSplit: e.evalSplit as number,
    evalEvery: e.evalEvery as number,
    checkpointEvery: e.checkpointEvery as number,
    checkpointMinutes: e.checkpointMinutes as number,
    mseWeight: e.mseWeight as number | undefined,
    maxLength: e.maxLength as number,
    resume: o.resume,
    recordConfig: { ...trainingSettings(e), ...p.inputs, settingsHash: p.settingsHash },
    signal: o.signal,
    ...(p.data.eval ? { evalRecords: p.data.eval } : {}),
  };
  let steps = 0;
  let firstUpdate = 1;
  let totalSteps = 0;
  let lastCheckpoint: { step: number } | null = null;
  if (typeof e.logEvery === "number") ui.logEvery = e.logEvery;
  const show = ui.trainEvents(stage);
  options.onEvent = (ev: TrainEvent) => {
    if (ev.type === "start") {
      totalSteps = ev.totalSteps;
      steps = ev.step;
      firstUpdate = ev.step + 1;
    }
    if (ev.type === "step") steps = ev.step;
    if (ev.type === "checkpoint") lastCheckpoint = { step: ev.step };
    show(ev);
  };

  ui.info(`${STAGE_TITLES[stage]}: ${train.length} records from ${e.data}${p.data.eval ? `, ${p.data.eval.length} held out from ${e.evalData}` : ""}`);
  const started = performance.now();
  let trainer: Stage1Trainer | Stage2Trainer | Stage3Trainer;
  if (stage === "stage1") {
    trainer = await Stage1Trainer.create(e.model as string, train as PretrainRecord[], {
      ...options,
      compressionRate: e.compressionRate as number,
      docMaxLength: e.docMaxLength as number,
      lora: { rank: e.loraRank as number, alpha: e.loraAlpha as number, dropout: e.loraDropout as number },
      quantize: parseQuantizeFlag(e.quantize as string | undefined, e.groupSize as number | undefined),
      memoryInput: e.memoryInput as MemoryInput | undefined,
    });
  } else if (stage === "stage2") {
    trainer = await Stage2Trainer.fromCheckpoint(e.from as string, train as InstructionRecord[], {
      ...options,
      modelPath: e.model as string | undefined,
      keepGenerator: e.keepGenerator as boolean,
      trainMemoryTokens: e.trainMemoryTokens as boolean,
    });
  } else {
    trainer = await Stage3Trainer.fromCheckpoint(e.from as string, train as EndToEndRecord[], {
      ...options,
      modelPath: e.model as string | undefined,
      k: e.k as number,
      tau: e.tau as number,
      queryReasonerInit: e.queryReasonerInit as QueryReasonerInit,
    });
  }
  const clara = trainer.clara;
  try {
    const truncated = countTruncated(clara, [...trainer.train, ...trainer.heldOut] as LoadedData["train"]);
    if (truncated.count > 0) {
      ui.warn(
        `${truncated.count} of ${truncated.total} documents are longer than the document length (${clara.docMaxLength} tokens) and will be truncated to it; raise --doc-max-length to keep more`,
        { truncatedDocuments: truncated.count, documents: truncated.total, docMaxLength: clara.docMaxLength },
      );
    }
    const settings = trainingSettings(e);
    writeFileAtomic(
      configFile,
      Buffer.from(JSON.stringify({ stage, checkpoint: out, settingsHash: p.settingsHash, settings, inputs: p.inputs, effective: e }, null, 2) + "\n"),
    );
    let summary: TrainSummary;
    try {
      summary = await trainer.run();
    } catch (err) {
      if (err instanceof ClaraError && err.code === "E_NONFINITE") throw nonFinite(stage, err, e, steps + 1, firstUpdate, lastCheckpoint, out);
      throw err;
    }
    const seconds = (performance.now() - started) / 1000;
    if (summary.interrupted) {
      const cmd = o.resumeCommand;
      ui.event({ type: "interrupted", stage, step: summary.steps, totalSteps, checkpoint: out, resume: cmd });
      ui.notice(`${stage} interrupted at update ${summary.steps}/${totalSteps}; checkpoint written to ${out}`);
      ui.notice(`resume with: ${cmd}`);
      throw new CliExit(EXIT.interrupted);
    }
    const outcome = await writeResults(stage, summary, e, p, configFile, seconds, ui);
    outcome.truncatedDocuments = truncated.count;
    return outcome;
  } finally {
    await clara.dispose();
  }
}


function countTruncated(clara: ClaraModel, records: LoadedData["train"]): { count: number; total: number } {
  const docs = new Set<string>();
  for (const r of records) {
    if ("doc" in r) docs.add(r.doc);
    else for (const d of r.docs) docs.add(d);
  }
  let count = 0;
  for (const d of docs) if (clara.templates.encoderInput(d).truncated) count++;
  return { count, total: docs.size };
}

function nonFinite(stage: StageName, err: ClaraError, e: Settings, update: number, firstUpdate: number, last: { step: number } | null, out: string): ClaraError {
  const lr = e.lr as number;
  const base = DEFAULTS.lr[stage];
  let cause: string;
  if (update === 1 && stage !== "stage1") {
    cause = `likely cause: the starting checkpoint ${e.from} already gives a non-finite loss (its weights hold NaN/inf, e.g. from a diverged ${stage === "stage2" ? "stage 1" : "earlier stage"}); retrain it`;
  } else if (update === 1) {
    cause = `likely cause: the base model ${e.model} gives a non-finite loss (broken or unsupported weights; check it with another model)`;
  } else if (lr >= 10 * base) {
    cause = `likely cause: the learning rate ${lr} is ${Math.round(lr / base).toLocaleString("en-US")}x the ${stage} default ${base}; lower --lr`;
  } else if (update === firstUpdate) {
    cause = "likely cause: the resumed checkpoint or its optimizer state holds NaN/inf values; resume from an earlier run or start over";
  } else {
    cause = `likely cause: training diverged; lower --lr (now ${lr}), lower --max-grad-norm or raise --batch-size`;
  }
  const kept = last
    ? `the last good checkpoint (update ${last.step}) ${out} is untouched`
    : fs.existsSync(out)
      ? `${out} is untouched (no checkpoint of this run was written; --checkpoint-every N keeps some)`
      : "no checkpoint of this run was written (--checkpoint-every N keeps some)";
  const native = (err.cause as Error | undefined)?.message ?? err.message;
  return new ClaraError("E_NONFINITE", `${stage} stopped at update ${update}: the loss became NaN or infinite (${native}); ${cause}; ${kept}`, { cause: err });
}

async function writeResults(stage: StageName, summary: TrainSummary, e: Settings, p: Prepared, configFile: string, seconds: number, ui: Ui): Promise<StageOutcome> {
  const results = e.results as string;
  const last = summary.history[summary.history.length - 1];
  const lastEval = summary.evals[summary.evals.length - 1];
  const summaryFile = path.join(results, `${stage}_training.json`);
  const outcome: StageOutcome = {
    stage,
    checkpoint: summary.checkpoint,
    configFile,
    steps: summary.steps,
    totalSteps: summary.steps,
    finalLoss: last?.loss ?? null,
    evalLoss: lastEval?.loss ?? null,
    seconds,
    curve: null,
    summaryFile,
    skipped: false,
    truncatedDocuments: 0,
  };
  writeFileAtomic(
    summaryFile,
    Buffer.from(
      JSON.stringify({ ...outcome, settings: trainingSettings(e), inputs: p.inputs, history: summary.history, evals: summary.evals }, null, 1) + "\n",
    ),
  );
  if (e.plots) outcome.curve = await plotCurve(stage, summary.history, summary.evals, results, ui);
  return outcome;
}

/** results/<stage>_loss.png: training loss per update, and the held-out loss where evaluated. */
export async function plotCurve(
  stage: StageName,
  history: TrainSummary["history"],
  evals: TrainSummary["evals"],
  results: string,
  ui: Ui,
): Promise<string | null> {
  if (history.length === 0) return null;
  const file = path.join(results, `${stage}_loss.png`);
  try {
    const series = [{ name: "training loss", points: history.map((h) => [h.step, h.loss] as [number, number]) }];
    if (evals.length > 0) series.push({ name: "held-out loss", points: evals.map((v) => [v.step, v.loss] as [number, number]) });
    await writePng(file, lineChartPng({ title: `${STAGE_TITLES[stage]}: loss`, xLabel: "update", yLabel: "loss", series }));
    return file;
  } catch (err) {
    ui.warn(`could not draw ${file}: ${(err as Error).message}`);
    return null;
  }
}

export function describeOutcome(o: StageOutcome): string {
  if (o.skipped) return `${o.stage}: skipped; ${o.checkpoint} is complete and matches the config`;
  const ev = o.evalLoss !== null ? `, held-out loss ${fmtLoss(o.evalLoss)}` : "";
  return `${o.stage} done: ${o.steps} updates in ${duration(o.seconds)}, final loss ${o.finalLoss === null ? "-" : fmtLoss(o.finalLoss)}${ev}; checkpoint ${o.checkpoint}${o.curve ? `, curve ${o.curve}` : ""}`;
}

/** One stage command end to end: prepare, run, print the result line. */
export async function runStageCommand(o: StageRunOptions): Promise<StageOutcome> {
  const p = bindInputs(prepareStage(o.stage, o.settings, o.ui));
  const outcome = await runPrepared(p, o);
  o.ui.result(describeOutcome(outcome), { ...outcome });
  return outcome;
}
