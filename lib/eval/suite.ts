// The evaluation suite on a PDF: extract it, settle the questions, run the three scenarios for
// each stage's checkpoint and for an untrained CLaRa model on the same base, and write
// results/<stage>_eval.json, results/untrained_eval.json, charts and results/final_report.md.
//
// Questions: `qaFile` if given; else the hand-written <pdf folder>/<pdf name>_qa.jsonl; else
// data/clara_paper_eval.jsonl if it was made for this PDF; else generated now by the first
// checkpoint's base model (no adapter) with cloze questions filling in (qa-set.ts), and saved
// there. The PDF is only read for evaluation; nothing here trains.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";
import { ClaraModel } from "../clara/clara-model";
import { readCheckpoint, type Stage } from "../io/checkpoint";
import type { ComputeDType, Model } from "../model/model";
import { runtimeInfo } from "../runtime";
import { extractPdf, type ExtractedPdf } from "./pdf";
import { PhaseTimer } from "./phase-timer";
import { makeQaSet, readQaSet, selectQuestions, writeQaSet, type QaGenerator, type QaItem } from "./qa-set";
import { loadEvaluations, writeEvaluationReport } from "./report";
import { compressionScenario } from "./compression";
import { EVAL_FORMAT, type ModelEvaluation } from "./evaluation";
import {
  buildCorpus,
  compressChunks,
  ragScenario,
  zeroShotScenario,
  ZERO_SHOT_SYSTEM,
  type AnswerCache,
  type ScenarioOptions,
} from "./scenarios";

export const DEFAULT_QA_OUT = "data/clara_paper_eval.jsonl";

export interface EvaluationSuiteOptions {
  checkpoints: { stage1?: string; stage2?: string; stage3?: string };
  pdf: string;
  qaFile?: string;
  /** Default "results". */
  outDir?: string;
  /** Where generated questions are written (default data/clara_paper_eval.jsonl). */
  qaOut?: string;
  /** The base model, when not at the checkpoints' recorded source. */
  modelPath?: string;
  /** Chunks per question in RAG (default 5). */
  k?: number;
  maxQuestions?: number;
  /** Base model of the untrained comparison (default: modelPath, else the checkpoints' base); false skips it. */
  untrainedModelPath?: string | false;
  trainingCurves?: Array<{ stage: string; pngPath: string }>;
  /** Greedy answer tokens (default 64). */
  maxNewTokens?: number;
  reconstructionMaxTokens?: number;
  compressionChunks?: ScenarioOptions["compressionChunks"];
  maxCompressionChunks?: number;
  /** Questions generated together (default 8); latency per question = batch time / batch size. */
  batchSize?: number;
  dtype?: ComputeDType;
  onProgress?: (message: string) => void;
}

/** One model's results: what results/<label>_eval.json holds. */
/** The hand-written questions that belong to a PDF: <folder>/<name>_qa.jsonl. */
export function handWrittenQaFor(pdf: string): string {
  return path.join(path.dirname(pdf), `${path.basename(pdf).replace(/\.pdf$/i, "")}_qa.jsonl`);
}

/**
 * The PDF to evaluate on in `dir`: the one PDF there that is not the bundled sample, else the
 * sample. Several user PDFs are ambiguous: the caller must choose.
 */
export function defaultPdf(dir = "knowledge_data", sample = "sample_paper.pdf"): string {
  const pdfs = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /\.pdf$/i.test(f)).sort() : [];
  const user = pdfs.filter((f) => f !== sample);
  if (user.length === 1) return path.join(dir, user[0]);
  if (user.length > 1) {
    throw new ClaraError("E_INVALID_ARGUMENT", `${dir} holds several PDFs (${user.join(", ")}); choose one with --pdf`, { file: dir, field: "--pdf" });
  }
  if (pdfs.includes(sample)) return path.join(dir, sample);
  throw new ClaraError("E_IO", `no PDF in ${dir}; put a paper there or pass --pdf <file.pdf> (the package ships knowledge_data/sample_paper.pdf)`, { file: dir, field: "--pdf" });
}

/** Questions for `doc` from a file, or null when they must be generated. */
export function resolveQuestions(doc: ExtractedPdf, o: { qaFile?: string; qaOut?: string }): { items: QaItem[]; file: string } | null {
  if (o.qaFile) return { items: readQaSet(o.qaFile), file: o.qaFile };
  const hand = handWrittenQaFor(doc.file);
  if (fs.existsSync(hand)) return { items: readQaSet(hand), file: hand };
  const out = o.qaOut ?? DEFAULT_QA_OUT;
  if (fs.existsSync(out)) {
    const items = readQaSet(out);
    if (items.every((q) => q.document === doc.name)) return { items, file: out };
  }
  return null;
}

/** Batched greedy chat replies of a base model (no adapter), for question generation. */
export function chatGenerator(model: Model, batchSize = 8, maxTokens = 256): QaGenerator {
  return {
    size: batchSize,
    batch: async (prompts) => {
      const ids = prompts.map((p) => model.tokenizer.encode(model.tokenizer.applyChatTemplate([{ role: "user", content: p }], { addGenerationPrompt: true })));
      return (await model.generate(ids, { maxTokens, temperature: 0 })).texts;
    },
  };
}

/** Generates questions with the model's base (no adapter), cloze questions filling in; writes them. */
export async function generateQuestions(doc: ExtractedPdf, clara: ClaraModel, out: string, onProgress?: (m: string) => void) {
  const { items, stats } = await makeQaSet(doc.sections, {
    generate: chatGenerator(clara.model),
    document: doc.name,
    onSection: (s, n) => onProgress?.(`questions: ${s.title}: ${n} from the model`),
  });
  if (items.length === 0) throw new ClaraError("E_PDF", `${doc.file}: no questions could be made from its text`, { file: doc.file, field: "text" });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeQaSet(out, items);
  return { items, stats };
}

/** Runs the three scenarios for one loaded model. */
export async function evaluateModel(
  clara: ClaraModel,
  doc: ExtractedPdf,
  questions: QaItem[],
  info: { label: string; stage: Stage | null; checkpoint: string | null; qaFile: string; timer?: PhaseTimer },
  options: ScenarioOptions = {},
): Promise<ModelEvaluation> {
  const k = options.k ?? 5;
  const maxNewTokens = options.maxNewTokens ?? 64;
  const timer = info.timer ?? phaseTimer(info.label, options.onProgress);
  const scenario = { ...options, timer };
  const corpus = await timer.time("chunks", () => buildCorpus(doc, questions, clara));
  options.onProgress?.(`${info.label}: ${questions.length} questions, ${corpus.chunks.length} chunks`);
  const compressed = await timer.time("compress chunks", () => compressChunks(clara, corpus.chunks));
  const zero = await timer.time("zero-shot", () => zeroShotScenario(clara, corpus, scenario));
  const rag = await ragScenario(clara, corpus, compressed, scenario);
  const compression = await timer.time("compression (reconstruction)", () => compressionScenario(clara, corpus, compressed, scenario));
  const rt = await runtimeInfo();
  const sources: Record<string, number> = {};
  for (const q of questions) sources[q.source ?? "unknown"] = (sources[q.source ?? "unknown"] ?? 0) + 1;
  return {
    format: EVAL_FORMAT,
    version: 1,
    label: info.label,
    stage: info.stage,
    checkpoint: info.checkpoint,
    createdAt: new Date().toISOString(),
    config: {
      pdf: doc.file,
      k,
      maxNewTokens,
      reconstructionMaxTokens: options.reconstructionMaxTokens ?? "min(docMaxLength + 32, 1.25 x chunk tokens + 16)",
      compressionChunks: options.compressionChunks ?? "first-per-section",
      maxCompressionChunks: options.maxCompressionChunks ?? null,
      batchSize: options.batchSize ?? 8,
      latency: "wall time of the question's generation batch divided by the batch size, plus its retrieval time",
      docMaxLength: clara.docMaxLength,
      compressionRate: clara.compressionRate,
      nMem: clara.nMem,
      base: { source: clara.model.files.source, fingerprint: clara.model.fingerprint(), modelType: clara.model.config.model_type },
      dtype: clara.model.dtype,
      runtime: { backend: rt.backend, device: rt.device, deviceName: rt.deviceName, mlxVersion: rt.mlxVersion },
      prompts: { zeroShotSystem: ZERO_SHOT_SYSTEM, decoding: "greedy", readers: "base model: chat template, no adapter; CLaRa: answer template with memory slots" },
    },
    document: corpus.document,
    questions: {
      n: questions.length,
      file: info.qaFile,
      sources,
      evidence: questions.map((q, i) => ({ id: q.id, chunks: corpus.positives[i], match: corpus.evidenceMatch[i] })),
    },
    chunks: corpus.chunks.map((c) => ({ index: c.index, section: c.section, pages: c.pages, tokens: c.tokens })),
    index: { chunks: corpus.chunks.length, compressMs: compressed.ms },
    timings: timer.ms,
    scenarios: { zero_shot: zero, rag, compression },
  };
}

/** A timer that reports each phase as "<label>: <phase>: <seconds> s". */
function phaseTimer(label: string, onProgress?: (message: string) => void): PhaseTimer {
  return new PhaseTimer((phase, ms) => onProgress?.(`${label}: ${phase}: ${(ms / 1000).toFixed(1)} s`));
}

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 1) + "\n");
  fs.renameSync(tmp, file);
}

const STAGES: Stage[] = ["stage1", "stage2", "stage3"];

/** The whole suite; see the file header. */
export async function runEvaluationSuite(options: EvaluationSuiteOptions): Promise<{
  reportPath: string;
  results: ModelEvaluation[];
  untrained?: ModelEvaluation;
  /** What the report shows: this run's results, earlier results for the same PDF, the untrained model last. */
  reported: ModelEvaluation[];
  qaFile: string;
  charts: string[];
}> {
  const outDir = options.outDir ?? "results";
  const log = options.onProgress ?? (() => {});
  const scenario: ScenarioOptions = {
    k: options.k,
    maxNewTokens: options.maxNewTokens,
    reconstructionMaxTokens: options.reconstructionMaxTokens,
    compressionChunks: options.compressionChunks,
    maxCompressionChunks: options.maxCompressionChunks,
    batchSize: options.batchSize,
    cache: new Map() as AnswerCache,
    embeddingCache: new Map(),
    onProgress: log,
  };
  const given = STAGES.filter((s) => options.checkpoints[s]);
  if (given.length === 0) throw new ClaraError("E_INVALID_ARGUMENT", "no checkpoint to evaluate: pass at least one of stage1, stage2, stage3", { field: "checkpoints" });
  for (const s of given) {
    if (!fs.existsSync(options.checkpoints[s]!)) throw new ClaraError("E_IO", `the ${s} checkpoint does not exist`, { file: options.checkpoints[s], field: s });
  }

  log(`extracting ${options.pdf}`);
  const doc = await extractPdf(options.pdf);
  log(`${doc.pages} pages, ${doc.sections.length} sections: ${doc.sections.map((s) => s.title).join(" | ")}`);
  let qa = resolveQuestions(doc, { qaFile: options.qaFile, qaOut: options.qaOut });

  const results: ModelEvaluation[] = [];
  let firstMeta: ReturnType<typeof readCheckpoint>["metadata"] | undefined;
  for (const stage of given) {
    const file = options.checkpoints[stage]!;
    firstMeta ??= readCheckpoint(file).metadata;
    log(`${stage}: loading ${file}`);
    const timer = phaseTimer(stage, log);
    const clara = await timer.time("load", () => ClaraModel.load(file, { modelPath: options.modelPath, dtype: options.dtype }));
    try {
      if (!qa) {
        const out = options.qaOut ?? DEFAULT_QA_OUT;
        log(`no question file for ${doc.name}: generating questions into ${out}`);
        qa = { items: (await generateQuestions(doc, clara, out, log)).items, file: out };
      }
      const questions = selectQuestions(qa.items, options.maxQuestions);
      const r = await evaluateModel(clara, doc, questions, { label: stage, stage, checkpoint: file, qaFile: qa.file, timer }, scenario);
      writeJson(path.join(outDir, `${stage}_eval.json`), r);
      results.push(r);
    } finally {
      await clara.dispose();
    }
  }

  let untrained: ModelEvaluation | undefined;
  if (options.untrainedModelPath !== false && firstMeta) {
    const base = options.untrainedModelPath ?? options.modelPath ?? firstMeta.base.source;
    log(`untrained: a fresh CLaRa model on ${base}`);
    const timer = phaseTimer("untrained", log);
    const clara = await timer.time("load", () =>
      ClaraModel.create(base, {
        compressionRate: firstMeta!.clara.compressionRate,
        docMaxLength: firstMeta!.clara.docMaxLength,
        dtype: options.dtype,
      }),
    );
    try {
      const questions = selectQuestions(qa!.items, options.maxQuestions);
      untrained = await evaluateModel(clara, doc, questions, { label: "untrained", stage: null, checkpoint: null, qaFile: qa!.file, timer }, scenario);
      writeJson(path.join(outDir, "untrained_eval.json"), untrained);
    } finally {
      await clara.dispose();
    }
  }

  // Earlier results for the same PDF (e.g. stages evaluated in another run) join the report.
  const all = loadEvaluations(outDir).filter((e) => e.document.sha256 === doc.sha256);
  const evaluations = all.filter((e) => e.label !== "untrained");
  const reportedUntrained = untrained ?? all.find((e) => e.label === "untrained");
  const report = await writeEvaluationReport({ outDir, evaluations, untrained: reportedUntrained, trainingCurves: options.trainingCurves });
  log(`report: ${report.reportPath}`);
  const reported = reportedUntrained ? [...evaluations, reportedUntrained] : evaluations;
  return { reportPath: report.reportPath, results, untrained, reported, qaFile: qa!.file, charts: report.charts };
}
