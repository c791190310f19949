// `clara-train pipeline`: stage 1 → stage 2 → stage 3 → evaluation on the paper PDF, with the
// plan's default paths. Every stage's data is validated before stage 1 starts. A stage whose
// checkpoint is complete and was trained with the same settings and inputs is skipped (and the
// output says so); a changed earlier stage changes the later stages' inputs, so they retrain.
// `clara-train demo` is the pipeline on the bundled example data with demo.yaml's small sizes.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError, readCheckpoint, type TrainSummary } from "../../lib";
import { runEvaluationSuite } from "../../lib/eval";
import { packageRoot } from "../../lib/runtime";
import { writeFileAtomic } from "../../lib/io/atomic";
import { defaultPdf, handWrittenQaFor } from "../../lib/eval/suite";
import type { ConfigFile } from "./config-file";
import { readConfigFile } from "./config-file";
import { onInterrupt, resumeCommand } from "./interrupt";
import { pipelineEvalSettings, pipelineSettings, pipelineStageSettings } from "./resolve";
import type { Settings } from "./settings";
import {
  bindInputs,
  DEFAULT_MODEL,
  DEFAULT_RESULTS,
  describeOutcome,
  ensureWritableDir,
  isCompleteMatch,
  plotCurve,
  PLAN_PATHS,
  prepareStage,
  runPrepared,
  STAGES,
  type Prepared,
  type StageName,
  type StageOutcome,
} from "./train";
import { duration, type Ui } from "./ui";

export const USER_PDF = "knowledge_data/2511.18659v2.pdf";

export interface PipelineArgs {
  command: "pipeline" | "demo";
  argv: Record<string, unknown>;
  config?: ConfigFile;
  resume: boolean;
  ui: Ui;
}

export interface PipelineResult {
  stages: StageOutcome[];
  reportPath: string | null;
  evaluation: "done" | "skipped";
  seconds: number;
  summaryFile: string;
}

export async function runPipeline(a: PipelineArgs): Promise<PipelineResult> {
  const started = performance.now();
  const { ui } = a;
  const shared = pipelineSettings(a.command, a.argv, a.config);
  const stageSettings: Record<StageName, Settings> = {
    stage1: pipelineStageSettings("stage1", a.command, a.argv, a.config),
    stage2: pipelineStageSettings("stage2", a.command, a.argv, a.config),
    stage3: pipelineStageSettings("stage3", a.command, a.argv, a.config),
  };
  // The plan's data and paths unless the config or flags say otherwise; each stage starts from the previous one's checkpoint.
  const defaultsData: Record<StageName, string> = { stage1: "example/pretrain.jsonl", stage2: "example/instruction.jsonl", stage3: "example/end_to_end.jsonl" };
  for (const stage of STAGES) {
    const s = stageSettings[stage];
    s.data ??= defaultsData[stage];
    s.out ??= PLAN_PATHS[stage];
  }
  stageSettings.stage1.model ??= DEFAULT_MODEL;
  stageSettings.stage2.from ??= stageSettings.stage1.out;
  stageSettings.stage3.from ??= stageSettings.stage2.out;
  const results = (stageSettings.stage1.results as string | undefined) ?? DEFAULT_RESULTS;
  ensureWritableDir(results, "--results");

  // Evaluation: decided (and its inputs checked) before any training.
  const ev = pipelineEvalSettings(a.command, a.argv, a.config);
  const evaluate = !ev.skipEval;
  let pdf: string | undefined;
  let qaFile: string | undefined;
  if (evaluate) {
    pdf = (ev.pdf as string | undefined) ?? defaultPdf("knowledge_data");
    if (!fs.existsSync(pdf)) {
      throw new ClaraError("E_IO", `the evaluation PDF does not exist; pass --pdf <file.pdf>, put the paper at ${USER_PDF}, or pass --skip-eval`, { file: pdf, field: "--pdf" });
    }
    qaFile = ev.qaFile as string | undefined;
    if (qaFile === undefined) {
      const beside = handWrittenQaFor(pdf);
      if (fs.existsSync(beside)) qaFile = beside;
    }
    if (qaFile !== undefined && !fs.existsSync(qaFile)) throw new ClaraError("E_IO", "the question file does not exist; pass --qa-file <file.jsonl>", { file: qaFile, field: "--qa-file" });
  }

  ui.info(`${a.command}: stage 1 → stage 2 → stage 3 → ${evaluate ? `evaluation on ${pdf}` : "(no evaluation: --skip-eval)"}`);
  const prepared: Prepared[] = STAGES.map((stage) => prepareStage(stage, stageSettings[stage], ui));
  const outcomes: StageOutcome[] = [];
  const interrupt = onInterrupt(ui);
  try {
    for (const p of prepared) {
      bindInputs(p);
      const out = p.run.out;
      const check = isCompleteMatch(p);
      if (check.match && !shared.force) {
        const outcome = skippedOutcome(p);
        const curve = path.join(p.run.results, `${p.stage}_loss.png`);
        if (p.run.plots && !fs.existsSync(curve)) {
          const progress = (readCheckpoint(out).metadata.progress ?? {}) as { history?: TrainSummary["history"]; evals?: TrainSummary["evals"] };
          outcome.curve = await plotCurve(p.stage, progress.history ?? [], progress.evals ?? [], p.run.results, ui);
        } else if (p.run.plots) outcome.curve = curve;
        ui.info(`${p.stage}: ${out} is complete and matches the config; skipping it (--force retrains)`);
        ui.event({ type: "skip", stage: p.stage, checkpoint: out });
        outcomes.push(outcome);
        continue;
      }
      if (fs.existsSync(out) && check.why && !check.why.startsWith("the checkpoint is unfinished")) ui.info(`${p.stage}: retraining: ${check.why}`);
      const resume = a.resume && fs.existsSync(out) && check.why.startsWith("the checkpoint is unfinished");
      const outcome = await runPrepared(p, { resume, signal: interrupt.signal, ui, resumeCommand: resumeCommand() });
      ui.info(describeOutcome(outcome));
      outcomes.push(outcome);
    }
  } finally {
    interrupt.dispose();
  }

  let reportPath: string | null = null;
  let evaluation: PipelineResult["evaluation"] = "skipped";
  if (!evaluate) ui.info("evaluation: skipped (--skip-eval)");
  else {
    const evalStarted = performance.now();
    const model = (stageSettings.stage1.model as string | undefined) ?? DEFAULT_MODEL;
    ui.info(`evaluation on ${pdf}${qaFile ? ` with ${qaFile}` : ""} …`);
    const r = await runEvaluationSuite({
      checkpoints: { stage1: outcomes[0].checkpoint, stage2: outcomes[1].checkpoint, stage3: outcomes[2].checkpoint },
      pdf: pdf!,
      qaFile,
      outDir: results,
      modelPath: model,
      k: (ev.k as number | undefined) ?? retrievalK(prepared[2]),
      maxQuestions: ev.maxQuestions as number | undefined,
      maxNewTokens: ev.maxNewTokens as number | undefined,
      maxCompressionChunks: ev.maxCompressionChunks as number | undefined,
      untrainedModelPath: model,
      trainingCurves: outcomes.filter((o) => o.curve).map((o) => ({ stage: o.stage, pngPath: o.curve! })),
      onProgress: (m) => ui.info(`evaluation: ${m}`),
    });
    reportPath = r.reportPath;
    evaluation = "done";
    ui.info(`evaluation done in ${duration((performance.now() - evalStarted) / 1000)}`);
  }
  const seconds = (performance.now() - started) / 1000;
  const summaryFile = path.join(results, `${a.command}.json`);
  const result: PipelineResult = { stages: outcomes, reportPath, evaluation, seconds, summaryFile };
  writeFileAtomic(summaryFile, Buffer.from(JSON.stringify(result, null, 1) + "\n"));
  return result;
}

/** Stage 3's k: the evaluation's retrieval top-k unless eval.k says otherwise. */
function retrievalK(p: Prepared): number {
  if (p.stage !== "stage3") throw new Error(`the pipeline's third stage is ${p.stage}`);
  return p.config.k;
}

function skippedOutcome(p: Prepared): StageOutcome {
  const out = p.run.out;
  const { metadata } = readCheckpoint(out);
  const progress = (metadata.progress ?? {}) as { history?: TrainSummary["history"]; evals?: TrainSummary["evals"] };
  const last = progress.history?.[progress.history.length - 1];
  const lastEval = progress.evals?.[progress.evals.length - 1];
  return {
    stage: p.stage,
    checkpoint: out,
    configFile: out.replace(/\.npz$/, "") + ".config.json",
    steps: metadata.step,
    totalSteps: metadata.step,
    finalLoss: last?.loss ?? null,
    evalLoss: lastEval?.loss ?? null,
    seconds: 0,
    curve: null,
    summaryFile: null,
    skipped: true,
    truncatedDocuments: 0,
  };
}

export function describePipeline(r: PipelineResult): string {
  const times = r.stages.map((o) => `${o.stage} ${o.skipped ? "skipped" : duration(o.seconds)}`).join(", ");
  const end =
    r.reportPath !== null ? `report: ${r.reportPath}` : `stopped after stage 3 (--skip-eval); summary: ${r.summaryFile}`;
  return `done in ${duration(r.seconds)} (${times}); ${end}`;
}

// ---------------------------------------------------------------------------------------
// demo

/** The demo's settings: example/demo.yaml when present, else the copy shipped in tools/commands. */
export function demoConfigPath(): string {
  const candidates = ["example/demo.yaml", path.join(packageRoot(), "example", "demo.yaml"), path.join(packageRoot(), "tools", "commands", "demo.yaml")];
  const found = candidates.find((f) => fs.existsSync(f));
  if (!found) throw new ClaraError("E_IO", "the demo settings (demo.yaml) are missing from this installation; pass --config <file>", { file: candidates[2], field: "--config" });
  return found;
}

/** Fetches the default model (tools/setup/fetch-model.js) when the demo needs it and it is missing. */
export function ensureDefaultModel(model: string, ui: Ui): void {
  if (fs.existsSync(model)) return;
  if (path.resolve(model) !== path.resolve(DEFAULT_MODEL)) return; // prepareStage reports another missing model
  const script = path.join(packageRoot(), "tools", "setup", "fetch-model.js");
  ui.info(`demo: the default model ${model} is missing; fetching it: node ${path.relative(process.cwd(), script) || script}`);
  const r = spawnSync(process.execPath, [script], { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0 || !fs.existsSync(model)) {
    throw new ClaraError("E_MODEL_FILES", `could not fetch the default model (exit ${r.status}); run npm run fetch-model and see its message`, { file: model, field: "--model" });
  }
}

export async function runDemo(a: Omit<PipelineArgs, "command" | "config"> & { configFile?: string }): Promise<PipelineResult> {
  const file = a.configFile ?? demoConfigPath();
  const config = readConfigFile(file);
  a.ui.info(`demo: settings from ${file} (flags override them)`);
  const model = (a.argv.model as string | undefined) ?? (config.sections.stage1?.model as string | undefined) ?? (config.top.model as string | undefined) ?? DEFAULT_MODEL;
  ensureDefaultModel(model, a.ui);
  return runPipeline({ ...a, command: "demo", config });
}
