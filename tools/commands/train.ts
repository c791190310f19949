// `clara-train stage1|stage2|stage3`: one CLaRa stage from validated settings (parsed by
// stage-settings.ts and resolved by lib/trainers/stage-config.ts, as the trainers resolve the
// API's; what is the CLI's own is the data files, the paths and the display). Everything a user can get wrong is checked before the model
// loads (settings, output folders, every data record, the starting checkpoint); then the trainer
// runs with a progress display, Ctrl-C stops it after the current update with a resumable
// checkpoint, and a non-finite loss stops it with the last good checkpoint untouched. The
// effective configuration is saved beside the checkpoint (<name>.config.json) and inside it
// (metadata.config), the loss curve and a summary go to the results folder.

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
  type StageOptions,
  type TrainEvent,
  type TrainSummary,
} from "../../lib";
import { CLARA_DEFAULTS as DEFAULTS } from "../../lib/model";
import { memoryTokenCount } from "../../lib/clara/config";
import { trimCandidates } from "../../lib/data/records";
import { writeFileAtomic } from "../../lib/io/atomic";
import { locateModel } from "../../lib/model/files";
import { lineChartPng, writePng } from "../../lib/report/plot";
import { checkStageRecords, checkStartingShape, type Stage1Config, type Stage2Config, type Stage3Config, type StageConfig } from "../../lib/trainers/stage-config";
import type { Settings } from "./settings";
import {
  DEFAULT_MODEL,
  flagOf,
  stageCommandSettings,
  STAGES,
  trainingSettings,
  type StageCommandSettings,
  type StageName,
  type StageRun,
} from "./stage-settings";
import { CliExit, EXIT, fmtLoss, duration, type Ui } from "./ui";

export { DEFAULT_MODEL, DEFAULT_RESULTS, PLAN_PATHS, STAGES, type StageName } from "./stage-settings";

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

interface LoadedData<R> {
  train: R[];
  eval?: R[];
  escaped: number;
}

/** Training (and held-out) records of one kind, read and checked record by record. */
function loadData<R>(run: StageRun, read: (file: string) => { records: R[]; escaped: number }): LoadedData<R> {
  const named = (file: string, limit: number | undefined, flag: string) => {
    try {
      const r = read(file);
      return { records: limit !== undefined ? r.records.slice(0, limit) : r.records, escaped: r.escaped };
    } catch (err) {
      // A file that cannot be read at all: name the flag that gave it.
      if (err instanceof ClaraError && err.code === "E_IO" && err.field === undefined) {
        throw new ClaraError("E_IO", `${err.message.replace(`Could not read ${file}: `, "cannot read it: ")}; check the path given to ${flag}`, { file, field: flag, cause: err });
      }
      throw err;
    }
  };
  const train = named(run.data, run.limit, "--data");
  const data: LoadedData<R> = { train: train.records, escaped: train.escaped };
  if (run.evalData !== undefined) {
    const held = named(run.evalData, run.evalLimit, "--eval-data");
    data.eval = held.records;
    data.escaped += held.escaped;
  }
  return data;
}

/** Stage-3 records: trimmed to --candidates, and checked against k (resolveStageConfig's checkStageRecords). */
function readStage3Records(file: string, config: Stage3Config, candidates: number | undefined): { records: EndToEndRecord[]; escaped: number } {
  const r = readEndToEndRecords(file, {});
  const records = candidates !== undefined ? trimCandidates(r.records, candidates, file) : r.records;
  checkStageRecords(config, records, { file, name: flagOf });
  return { records, escaped: r.stats.escaped };
}

/** The starting checkpoint of stage 2/3: present, a complete earlier stage, and of the requested shape. */
function checkFrom(stage: StageName, from: string, config: StageConfig): CheckpointMetadata {
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
  checkStartingShape(config, metadata.clara, { file: from, stage: metadata.stage, name: flagOf });
  return metadata;
}

// ---------------------------------------------------------------------------------------
// The run

interface PreparedOf<S extends StageName, C extends StageConfig, R> extends StageCommandSettings {
  stage: S;
  config: C;
  data: LoadedData<R>;
  /** Set by bindInputs: hashes of the data and the starting checkpoint. */
  inputs: Record<string, unknown>;
  /** sha256 of the training settings and inputs: a complete checkpoint with this hash needs no retraining. */
  settingsHash: string;
  /** Set by bindInputs: the stage of the starting checkpoint (stages 2-3). */
  fromStage?: CheckpointMetadata["stage"];
}

/** A stage ready to run: its settings and its records, of the stage's kinds. */
export type Prepared =
  | PreparedOf<"stage1", Stage1Config, PretrainRecord>
  | PreparedOf<"stage2", Stage2Config, InstructionRecord>
  | PreparedOf<"stage3", Stage3Config, EndToEndRecord>;

/**
 * Validates everything that can be validated without the model or the starting checkpoint:
 * settings, output folders, the model path and every data record.
 */
export function prepareStage(stage: StageName, settings: Settings, ui: Ui): Prepared {
  const { run, config, effective } = stageCommandSettings(stage, settings);
  if (fs.existsSync(run.out) && fs.statSync(run.out).isDirectory()) {
    throw new ClaraError("E_IO", `is a folder; --out names the checkpoint file to write, e.g. ${path.join(run.out, `${stage}.npz`)}`, { file: run.out, field: "--out" });
  }
  ensureWritableDir(path.dirname(path.resolve(run.out)), "--out");
  ensureWritableDir(run.results, "--results");
  if (run.model !== undefined) checkModelPath(run.model);
  const unbound = { run, effective, inputs: {}, settingsHash: "" };
  let p: Prepared;
  if (config.stage === "stage1") {
    checkDocumentFits(modelOf(run), config.docMaxLength, config.compressionRate);
    p = { ...unbound, stage: config.stage, config, data: loadData(run, (f) => flatStats(readPretrainRecords(f))) };
  } else if (config.stage === "stage2") {
    p = { ...unbound, stage: config.stage, config, data: loadData(run, (f) => flatStats(readInstructionRecords(f, { k: config.k }))) };
  } else {
    p = { ...unbound, stage: config.stage, config, data: loadData(run, (f) => readStage3Records(f, config, run.candidates)) };
  }
  const escaped = p.data.escaped;
  if (escaped > 0) ui.warn(`${escaped} literal special-token strings (<MEM0>, <ENC>, …) in the data were broken with a zero-width space`, { escaped });
  return p;
}

function flatStats<R>(r: { records: R[]; stats: { escaped: number } }): { records: R[]; escaped: number } {
  return { records: r.records, escaped: r.stats.escaped };
}

/** Stage 1's base model (parseStageSettings defaults it). */
function modelOf(run: StageRun): string {
  if (run.model === undefined) throw new Error("no base model: stages 2-3 take the checkpoint's");
  return run.model;
}

/** Stages 2-3's starting checkpoint (parseStageSettings defaults it). */
function fromOf(run: StageRun): string {
  if (run.from === undefined) throw new Error("stage 1 has no starting checkpoint");
  return run.from;
}

/** Checks the starting checkpoint (stages 2-3) and fixes the identity of the run's inputs. */
export function bindInputs(p: Prepared): Prepared {
  const { run, effective: e } = p;
  if (p.stage !== "stage1") {
    const metadata = checkFrom(p.stage, fromOf(run), p.config);
    p.fromStage = metadata.stage;
    // The run continues the checkpoint's shape, and records it.
    e.compressionRate = metadata.clara.compressionRate;
    e.docMaxLength = metadata.clara.docMaxLength;
  }
  const inputs: Record<string, unknown> = { dataSha256: sha256File(run.data) };
  if (run.evalData !== undefined) inputs.evalDataSha256 = sha256File(run.evalData);
  if (run.from !== undefined) inputs.fromSha256 = sha256File(run.from);
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
  const checkpoint = p.run.out;
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
  const { stage, run, effective: e } = p;
  const ui = o.ui;
  if (!p.settingsHash) bindInputs(p);
  if (stage === "stage3" && p.fromStage === "stage1") {
    ui.warn(
      `stage3 starts from a stage-1 checkpoint (${fromOf(run)}): its generator has never answered in the stage-2/3 template; ` +
        "the reference allows this, but stage 2 first usually answers better",
      { fromStage: "stage1" },
    );
  }
  const out = run.out;
  const configFile = configFileFor(out);
  if (o.resume) {
    if (!fs.existsSync(out)) {
      throw new ClaraError("E_CHECKPOINT", `there is nothing to resume: the checkpoint does not exist; run without --resume`, { file: out, field: "--resume" });
    }
  } else if (fs.existsSync(out)) {
    try {
      const m = readCheckpoint(out).metadata;
      if (!m.complete && !run.force) {
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

  // The resolved settings and the run's wiring: the trainer resolves them again to the same config.
  const options: StageOptions = {
    out,
    resume: o.resume,
    recordConfig: { ...trainingSettings(e), ...p.inputs, settingsHash: p.settingsHash },
    signal: o.signal,
    ...(p.data.eval ? { evalRecords: p.data.eval } : {}),
  };
  let steps = 0;
  let firstUpdate = 1;
  let totalSteps = 0;
  let lastCheckpoint: { step: number } | null = null;
  if (run.logEvery !== undefined) ui.logEvery = run.logEvery;
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

  ui.info(`${STAGE_TITLES[stage]}: ${p.data.train.length} records from ${run.data}${p.data.eval ? `, ${p.data.eval.length} held out from ${run.evalData}` : ""}`);
  const started = performance.now();
  const trainer = await createTrainer(p, options);
  const clara = trainer.clara;
  try {
    const truncated = countTruncated(clara, [...trainer.train, ...trainer.heldOut]);
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
      if (err instanceof ClaraError && err.code === "E_NONFINITE") throw nonFinite(p, err, steps + 1, firstUpdate, lastCheckpoint);
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
    const outcome = await writeResults(p, summary, configFile, seconds, ui);
    outcome.truncatedDocuments = truncated.count;
    return outcome;
  } finally {
    await clara.dispose();
  }
}

/** The stage's trainer on the prepared records, with the resolved settings and the run's wiring. */
function createTrainer(p: Prepared, options: StageOptions): Promise<Stage1Trainer | Stage2Trainer | Stage3Trainer> {
  if (p.stage === "stage1") return Stage1Trainer.create(modelOf(p.run), p.data.train, { ...p.config, ...options });
  const from = fromOf(p.run);
  if (p.stage === "stage2") return Stage2Trainer.fromCheckpoint(from, p.data.train, { ...p.config, ...options, modelPath: p.run.model });
  return Stage3Trainer.fromCheckpoint(from, p.data.train, { ...p.config, ...options, modelPath: p.run.model });
}

function countTruncated(clara: ClaraModel, records: ReadonlyArray<PretrainRecord | InstructionRecord | EndToEndRecord>): { count: number; total: number } {
  const docs = new Set<string>();
  for (const r of records) {
    if ("doc" in r) docs.add(r.doc);
    else for (const d of r.docs) docs.add(d);
  }
  let count = 0;
  for (const d of docs) if (clara.templates.encoderInput(d).truncated) count++;
  return { count, total: docs.size };
}

function nonFinite(p: Prepared, err: ClaraError, update: number, firstUpdate: number, last: { step: number } | null): ClaraError {
  const { stage, run, config } = p;
  const out = run.out;
  const lr = config.lr;
  const base = DEFAULTS.lr[stage];
  let cause: string;
  if (update === 1 && stage !== "stage1") {
    cause = `likely cause: the starting checkpoint ${fromOf(run)} already gives a non-finite loss (its weights hold NaN/inf, e.g. from a diverged ${stage === "stage2" ? "stage 1" : "earlier stage"}); retrain it`;
  } else if (update === 1) {
    cause = `likely cause: the base model ${modelOf(run)} gives a non-finite loss (broken or unsupported weights; check it with another model)`;
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

async function writeResults(p: Prepared, summary: TrainSummary, configFile: string, seconds: number, ui: Ui): Promise<StageOutcome> {
  const { stage, run } = p;
  const results = run.results;
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
      JSON.stringify({ ...outcome, settings: trainingSettings(p.effective), inputs: p.inputs, history: summary.history, evals: summary.evals }, null, 1) + "\n",
    ),
  );
  if (run.plots) outcome.curve = await plotCurve(stage, summary.history, summary.evals, results, ui);
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
