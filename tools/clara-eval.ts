#!/usr/bin/env node
// clara-eval: evaluate CLaRa checkpoints on a paper PDF (never trained on).
//
//   clara-eval extract [file.pdf]            sections and chunks -> data/<name>.sections.json
//   clara-eval make-qa [file.pdf]            questions -> data/clara_paper_eval.jsonl
//   clara-eval run [--checkpoint a.npz ...]  three scenarios per stage -> results/stageN_eval.json,
//                                            charts, results/final_report.md
//   clara-eval report                        the report again from results/*_eval.json
//
// Without a PDF argument the one PDF in knowledge_data/ other than the bundled sample is used,
// else the sample (knowledge_data/sample_paper.pdf). Exit codes: 0 done, 1 internal failure,
// 2 bad input (not a PDF, encrypted, no text layer, a malformed question file, ...).

import * as fs from "node:fs";
import * as path from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { ClaraError, Model, readCheckpoint, type Stage } from "../lib";
import { extractionQuality, extractPdf, loadEvaluations, makeQaSet, runEvaluationSuite, writeEvaluationReport, writeQaSet } from "../lib/eval";
import { CLARA_DEFAULTS as DEFAULTS, Tokenizer } from "../lib/model";
// The CLI's own pieces, which the package does not export.
import { writeFileAtomic } from "../lib/io/atomic";
import { approximateTokenCount } from "../lib/eval/chunks";
import { sectionsFile } from "../lib/eval/pdf";
import { formatQuality } from "../lib/eval/pdf-quality";
import { QA_FORMAT_HELP } from "../lib/eval/qa-set";
import { scoreSummary, scoreTable } from "../lib/eval/score-table";
import { chatGenerator, DEFAULT_QA_OUT, defaultPdf, handWrittenQaFor } from "../lib/eval/suite";
import { DEFAULT_MODEL, DEFAULT_RESULTS, PLAN_PATHS } from "./commands/train";
import { runCli, usageFailure } from "./commands/ui";

interface Common {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
}

const say = (a: Common) => (m: string) => {
  if (!a.quiet) process.stderr.write(`${m}\n`);
};

function result(a: Common, value: Record<string, unknown>, line: string): void {
  process.stdout.write(a.json ? JSON.stringify(value) + "\n" : line + "\n");
}

/** A base model's tokenizer for counting chunk tokens: --model, a checkpoint's base, or the default model. */
function tokenizerFor(model: string | undefined): { count: (t: string) => number; name: string } {
  const source = model ?? (fs.existsSync(DEFAULT_MODEL) ? DEFAULT_MODEL : undefined);
  if (!source) return { count: approximateTokenCount, name: "approximate (4 characters per token)" };
  const tok = source.toLowerCase().endsWith(".gguf") ? Tokenizer.fromGguf(source) : Tokenizer.fromHfDir(source);
  return { count: (t) => tok.encode(t).length, name: source };
}

/** Checkpoints by stage: --stage1/2/3, then --checkpoint files by their recorded stage, then the plan's paths. */
function checkpointsOf(a: { checkpoint?: string[]; stage1?: string; stage2?: string; stage3?: string }): Partial<Record<Stage, string>> {
  const out: Partial<Record<Stage, string>> = {};
  for (const file of a.checkpoint ?? []) {
    if (!fs.existsSync(file)) throw new ClaraError("E_IO", "the checkpoint does not exist", { file, field: "--checkpoint" });
    const stage = readCheckpoint(file).metadata.stage;
    if (out[stage]) throw new ClaraError("E_INVALID_ARGUMENT", `two ${stage} checkpoints given (${out[stage]} and ${file}); pass one per stage`, { file, field: "--checkpoint" });
    out[stage] = file;
  }
  for (const s of ["stage1", "stage2", "stage3"] as const) if (a[s]) out[s] = a[s];
  if (Object.keys(out).length === 0) {
    for (const s of ["stage1", "stage2", "stage3"] as const) if (fs.existsSync(PLAN_PATHS[s])) out[s] = PLAN_PATHS[s];
  }
  if (Object.keys(out).length === 0) {
    throw new ClaraError("E_INVALID_ARGUMENT", `no checkpoint: pass --checkpoint <stageN.npz> (or train one: clara-train demo writes ${PLAN_PATHS.stage1} ...)`, { field: "--checkpoint" });
  }
  return out;
}

function curvesOf(list: string[] | undefined): Array<{ stage: string; pngPath: string }> {
  return (list ?? []).map((s) => {
    const i = s.indexOf("=");
    if (i < 1) throw new ClaraError("E_INVALID_ARGUMENT", `--curve takes stage=file.png, got ${JSON.stringify(s)}`, { field: "--curve" });
    return { stage: s.slice(0, i), pngPath: s.slice(i + 1) };
  });
}

async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName("clara-eval")
    .usage("$0 <command> [options]\n\nEvaluate CLaRa checkpoints on a paper PDF: extract, make-qa, run, report.")
    .option("json", { type: "boolean", describe: "print the result as one JSON object" })
    .option("quiet", { type: "boolean", describe: "print only errors and the result line" })
    .option("verbose", { type: "boolean", describe: "print stack traces on errors" })
    .command(
      "extract [pdf]",
      "PDF -> clean text, sections and chunks (data/<name>.sections.json)",
      (y) =>
        y
          .positional("pdf", { type: "string", describe: "the PDF (default: the one in knowledge_data/)" })
          .option("out", { type: "string", describe: "output file (default data/<name>.sections.json)" })
          .option("model", { type: "string", describe: "tokenizer of this model (HF folder or .gguf) for chunk lengths" })
          .option("doc-max-length", { type: "number", default: DEFAULTS.docMaxLength, describe: "chunk length limit in tokens" }),
      async (a) => {
        const pdf = a.pdf ?? defaultPdf();
        const doc = await extractPdf(pdf);
        const tok = tokenizerFor(a.model);
        const out = a.out ?? path.join("data", `${doc.name}.sections.json`);
        const file = sectionsFile(doc, { maxTokens: a.docMaxLength, countTokens: tok.count, tokenizer: tok.name });
        fs.mkdirSync(path.dirname(out), { recursive: true });
        writeFileAtomic(out, Buffer.from(JSON.stringify(file, null, 1) + "\n"));
        const quality = extractionQuality(doc);
        say(a)(`${doc.pages} pages; title: ${doc.title || "(none found)"}\n${formatQuality({ ...quality, warnings: [] })}`);
        // Warnings show even with --quiet: a wrong structure spoils every score computed on it.
        if (!a.json) for (const w of quality.warnings) process.stderr.write(`warning: ${pdf}: ${w}\n`);
        result(
          a,
          { out, pages: doc.pages, sections: doc.sections.length, paragraphs: quality.paragraphs, characters: quality.characters, chunks: file.chunks.length, title: doc.title, warnings: quality.warnings },
          `wrote ${out}: ${doc.sections.length} sections, ${quality.paragraphs} paragraphs, ${quality.characters} characters, ${file.chunks.length} chunks of <= ${a.docMaxLength} tokens` +
            (quality.warnings.length ? ` (${quality.warnings.length} warning${quality.warnings.length > 1 ? "s" : ""}: check the structure before evaluating)` : ""),
        );
      },
    )
    .command(
      "make-qa [pdf]",
      `evaluation questions (${DEFAULT_QA_OUT}): the hand-written file, else the LLM per section, cloze questions filling in`,
      (y) =>
        y
          .positional("pdf", { type: "string", describe: "the PDF (default: the one in knowledge_data/)" })
          .option("out", { type: "string", default: DEFAULT_QA_OUT, describe: "output JSONL" })
          .option("hand-written", { type: "string", describe: "hand-written questions (default <pdf folder>/<name>_qa.jsonl when present; format below)" })
          .option("model", { type: "string", describe: "LLM for generation (HF folder or .gguf; default the project's model when present)" })
          .option("checkpoint", { type: "string", describe: "use this checkpoint's base model as the LLM" })
          .option("llm", { type: "boolean", default: true, describe: "ask the LLM (--no-llm: cloze questions only)" })
          .option("also-generate", { type: "boolean", default: false, describe: "generate even when a hand-written file exists" })
          .option("per-section", { type: "number", default: 2, describe: "generated questions per section" })
          .option("batch-size", { type: "number", default: 8, describe: "sections the LLM answers at once" })
          .epilog(QA_FORMAT_HELP)
          .wrap(null),
      async (a) => {
        const pdf = a.pdf ?? defaultPdf();
        const doc = await extractPdf(pdf);
        const source = a.checkpoint ? readCheckpoint(a.checkpoint).metadata.base.source : a.model ?? (fs.existsSync(DEFAULT_MODEL) ? DEFAULT_MODEL : undefined);
        const hand = a.handWritten ?? handWrittenQaFor(pdf);
        const needsLlm = a.llm && source !== undefined && (!fs.existsSync(hand) || a.alsoGenerate);
        const model = needsLlm ? await Model.load(source!) : null;
        try {
          const { items, stats } = await makeQaSet(doc.sections, {
            handWritten: hand,
            generate: model ? chatGenerator(model, a.batchSize) : undefined,
            perSection: a.perSection,
            alsoGenerate: a.alsoGenerate,
            document: doc.name,
            onSection: (s, n) => say(a)(`${s.title}: ${n} question(s) from the model`),
          });
          if (items.length === 0) throw new ClaraError("E_PDF", `${pdf}: no questions could be made from its text`, { file: pdf, field: "text" });
          fs.mkdirSync(path.dirname(a.out), { recursive: true });
          writeQaSet(a.out, items);
          const llm = stats.llm
            ? `; LLM: ${stats.llm.accepted} kept of ${stats.llm.pairs} pairs (${stats.llm.malformed} malformed, ${stats.llm.unsupported} unsupported, ${stats.llm.trivial} trivial, ${stats.llm.duplicate} duplicate, ${stats.llm.malformedReplies} unparseable replies)`
            : "";
          result(a, { out: a.out, ...stats }, `wrote ${a.out}: ${items.length} questions (${stats.handWritten} hand-written, ${stats.extractive} cloze${llm})`);
        } finally {
          await model?.dispose();
        }
      },
    )
    .command(
      "run",
      "zero-shot, RAG (BM25 and the query reasoner; compressed and raw text) and compression quality per stage, then the report",
      (y) =>
        y
          .option("checkpoint", { type: "string", array: true, describe: "checkpoint(s); the stage is read from each (default: the plan's checkpoints/ paths)" })
          .option("stage1", { type: "string", describe: "stage-1 checkpoint" })
          .option("stage2", { type: "string", describe: "stage-2 checkpoint" })
          .option("stage3", { type: "string", describe: "stage-3 checkpoint" })
          .option("pdf", { type: "string", describe: "the PDF (default: the one in knowledge_data/)" })
          .option("qa", { type: "string", describe: "question file (default: <pdf folder>/<name>_qa.jsonl, else generated; format below)" })
          .option("out", { type: "string", default: DEFAULT_RESULTS, describe: "results folder" })
          .option("model", { type: "string", describe: "base model, when not at the checkpoints' recorded path" })
          .option("k", { type: "number", default: 5, describe: "chunks retrieved per question" })
          .option("max-questions", { type: "number", describe: "evaluate at most this many questions (categories in turn)" })
          .option("max-new-tokens", { type: "number", default: 64, describe: "greedy answer length" })
          .option("all-chunks", { type: "boolean", default: false, describe: "reconstruct every chunk, not one per section" })
          .option("max-compression-chunks", { type: "number", describe: "reconstruct at most this many chunks (spread over the document)" })
          .option("batch-size", { type: "number", default: 8, describe: "questions generated together; latency = batch time / batch size (1: single-query latency)" })
          .option("untrained", { type: "boolean", default: true, describe: "also score a fresh, untrained CLaRa model (--no-untrained skips it)" })
          .option("curve", { type: "string", array: true, describe: "training curve to show: stage=file.png (repeatable)" })
          .option("dtype", { choices: ["float32", "bfloat16", "float16"] as const, describe: "compute dtype of the base model" })
          .epilog(QA_FORMAT_HELP)
          .wrap(null),
      async (a) => {
        const checkpoints = checkpointsOf(a);
        const pdf = a.pdf ?? defaultPdf();
        const curves = curvesOf(a.curve);
        if (curves.length === 0) {
          for (const s of ["stage1", "stage2", "stage3"]) {
            const f = path.join(a.out, `${s}_loss.png`);
            if (fs.existsSync(f)) curves.push({ stage: s, pngPath: f });
          }
        }
        const r = await runEvaluationSuite({
          checkpoints,
          pdf,
          qaFile: a.qa,
          outDir: a.out,
          modelPath: a.model,
          k: a.k,
          maxQuestions: a.maxQuestions,
          maxNewTokens: a.maxNewTokens,
          compressionChunks: a.allChunks ? "all" : "first-per-section",
          maxCompressionChunks: a.maxCompressionChunks,
          batchSize: a.batchSize,
          untrainedModelPath: a.untrained ? a.model : false,
          trainingCurves: curves,
          dtype: a.dtype,
          onProgress: say(a),
        });
        result(
          a,
          { report: r.reportPath, results: r.results.map((e) => path.join(a.out, `${e.label}_eval.json`)), qaFile: r.qaFile, charts: r.charts, scores: scoreSummary(r.reported) },
          `${scoreTable(r.reported)}\nreport: ${r.reportPath}`,
        );
      },
    )
    .command(
      "report",
      "write results/final_report.md again from results/*_eval.json",
      (y) =>
        y
          .option("out", { type: "string", default: DEFAULT_RESULTS, describe: "results folder" })
          .option("curve", { type: "string", array: true, describe: "training curve to show: stage=file.png (repeatable)" }),
      async (a) => {
        const all = loadEvaluations(a.out);
        if (all.length === 0) throw new ClaraError("E_IO", `no *_eval.json results in ${a.out}; run \`clara-eval run\` first`, { file: a.out });
        const curves = curvesOf(a.curve);
        if (curves.length === 0) {
          for (const s of ["stage1", "stage2", "stage3"]) {
            const f = path.join(a.out, `${s}_loss.png`);
            if (fs.existsSync(f)) curves.push({ stage: s, pngPath: f });
          }
        }
        const r = await writeEvaluationReport({ outDir: a.out, evaluations: all.filter((e) => e.label !== "untrained"), untrained: all.find((e) => e.label === "untrained"), trainingCurves: curves });
        result(a, { report: r.reportPath, charts: r.charts, scores: scoreSummary(all) }, `${scoreTable(all)}\nreport: ${r.reportPath}`);
      },
    )
    .demandCommand(1, "Name a command; see --help.")
    .strict()
    .fail(usageFailure)
    .parseAsync();
}

if (require.main === module) runCli("clara-eval", () => main(hideBin(process.argv)));

export { main };
