// The PDF evaluation end to end (lib/eval/suite.ts, scenarios.ts, report.ts) with a tiny random
// model: a stage-1 checkpoint and a stage-3-like one (query_reasoner = copy of the compressor)
// evaluated on the committed sample paper. Checks the files, that every scenario is there and
// every score is a number in [0, 1], that base-model answers are shared between stages, and the
// report's untrained-model line, tables and charts. Also question generation by the model and
// the choice of PDF in knowledge_data/.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraModel } from "../lib/clara/clara-model";
import { recallAtK } from "../lib/eval/metrics";
import { extractPdf } from "../lib/eval/pdf";
import { formatReport, goldChunks, loadEvaluations, REPORT_FILE } from "../lib/eval/report";
import { readQaSet } from "../lib/eval/qa-set";
import { scoreSummary, scoreTable } from "../lib/eval/score-table";
import { defaultPdf, generateQuestions, resolveQuestions, runEvaluationSuite } from "../lib/eval/suite";
import type { ModelEvaluation } from "../lib/eval/evaluation";
import { batched, buildCorpus, compressChunks, ragScenario, type AnswerAggregate, type AnswerScenario } from "../lib/eval/scenarios";
import { SAMPLE_PAPER } from "../tools/sample-paper";
import { writeTinyModel } from "../tools/tiny-model";
import { catchClara } from "./helpers/errors";

const REPO = path.resolve(__dirname, "..");
const PDF = path.join(REPO, "knowledge_data", "sample_paper.pdf");
const QUESTIONS = 5;

let work: string;
let tiny: string;
let out: string;
let suite: Awaited<ReturnType<typeof runEvaluationSuite>>;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-eval-test-"));
  tiny = path.join(work, "tiny");
  writeTinyModel(tiny, SAMPLE_PAPER.blocks.map((b) => b.text), { merges: 400 });
  const clara = await ClaraModel.create(tiny, { compressionRate: 8, docMaxLength: 64 });
  await clara.save(path.join(work, "stage1.npz"), { stage: "stage1", step: 0, complete: true });
  await clara.model.copyAdapter("compressor", "query_reasoner");
  await clara.save(path.join(work, "stage3.npz"), { stage: "stage3", step: 0, complete: true });
  await clara.dispose();
  out = path.join(work, "results");
  fs.mkdirSync(out);
  fs.writeFileSync(path.join(out, "stage1_loss.png"), "a training curve drawn by clara-train");
  suite = await runEvaluationSuite({
    checkpoints: { stage1: path.join(work, "stage1.npz"), stage3: path.join(work, "stage3.npz") },
    pdf: PDF,
    outDir: out,
    maxQuestions: QUESTIONS,
    maxNewTokens: 6,
    reconstructionMaxTokens: 12,
    batchSize: 4,
    trainingCurves: [{ stage: "stage1", pngPath: path.join(out, "stage1_loss.png") }],
  });
}, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const unit = (x: unknown) => typeof x === "number" && Number.isFinite(x) && x >= 0 && x <= 1;

function checkAggregate(a: AnswerAggregate, n: number): void {
  expect(a.n).toBe(n);
  for (const k of ["em", "f1", "acc", "keyword"] as const) expect({ k, ok: unit(a[k]) }).toEqual({ k, ok: true });
  expect(a.latencyMs).toBeGreaterThan(0);
  expect(a.avgOutputLength).toBeGreaterThanOrEqual(0);
  if (a.recall) for (const v of Object.values(a.recall)) expect(unit(v)).toBe(true);
}

function checkScenario(s: AnswerScenario): void {
  expect(s.rows.length).toBe(QUESTIONS);
  checkAggregate(s.aggregate.overall, QUESTIONS);
  for (const a of Object.values(s.aggregate.byCategory)) checkAggregate(a!, a!.n);
  expect(Object.values(s.aggregate.byCategory).reduce((n, a) => n + a!.n, 0)).toBe(QUESTIONS);
  for (const r of s.rows) {
    expect(typeof r.prediction).toBe("string");
    for (const k of ["em", "f1", "acc", "keyword"] as const) expect(unit(r[k])).toBe(true);
  }
}

describe("runEvaluationSuite", () => {
  test("writes one JSON per stage and for the untrained model, and the report", () => {
    for (const f of ["stage1_eval.json", "stage3_eval.json", "untrained_eval.json", REPORT_FILE]) expect(fs.existsSync(path.join(out, f))).toBe(true);
    expect(suite.reportPath).toBe(path.join(out, REPORT_FILE));
    expect(suite.results.map((r) => r.label)).toEqual(["stage1", "stage3"]);
    expect(suite.untrained?.label).toBe("untrained");
    expect(suite.qaFile).toBe(path.join(REPO, "knowledge_data", "sample_paper_qa.jsonl"));
    const onDisk = loadEvaluations(out);
    expect(onDisk.map((e) => e.label)).toEqual(["stage1", "stage3", "untrained"]);
    expect(onDisk[0]).toEqual(JSON.parse(JSON.stringify(suite.results[0])));
  });

  test("every scenario is present, with scores in [0, 1]", () => {
    const byLabel = (l: string) => loadEvaluations(out).find((e) => e.label === l)!;
    const expected: Record<string, string[]> = {
      stage1: ["bm25+compressed", "bm25+raw"],
      stage3: ["bm25+compressed", "bm25+raw", "clara+compressed", "clara+raw"],
      untrained: ["bm25+compressed", "bm25+raw"],
    };
    for (const [label, variants] of Object.entries(expected)) {
      const e: ModelEvaluation = byLabel(label);
      expect(Object.keys(e.scenarios).sort()).toEqual(["compression", "rag", "zero_shot"]);
      expect(Object.keys(e.scenarios.rag.variants).sort()).toEqual(variants);
      checkScenario(e.scenarios.zero_shot);
      for (const v of variants) checkScenario(e.scenarios.rag.variants[v]);
      expect(Object.keys(e.scenarios.rag.retrieval).sort()).toEqual(label === "stage3" ? ["bm25", "clara"] : ["bm25"]);
      for (const r of Object.values(e.scenarios.rag.retrieval)) for (const v of Object.values(r!.overall)) expect(unit(v)).toBe(true);
      const c = e.scenarios.compression;
      expect(c.rows.length).toBeGreaterThan(5);
      for (const k of ["cosine", "rougeL", "tokenF1"] as const) expect(unit(c.aggregate[k]) || (k === "cosine" && c.aggregate[k] >= -1)).toBe(true);
      expect(c.aggregate.mse).toBeGreaterThan(0);
      expect(Number.isFinite(c.aggregate.mse)).toBe(true);
      expect(e.config).toMatchObject({ k: 5, maxNewTokens: 6, docMaxLength: 64, compressionRate: 8, nMem: 8, batchSize: 4 });
      expect(e.questions.evidence.every((x) => x.match === "text" && x.chunks.length > 0)).toBe(true);
    }
    const s1 = byLabel("stage1");
    expect(s1.scenarios.rag.skipped.join(" ")).toMatch(/query_reasoner/);
    expect(byLabel("stage3").scenarios.rag.skipped).toEqual([]);
  });

  test("rows are consistent: recall from the ranking, context lengths, shared base answers", () => {
    const [s1, s3] = suite.results;
    const bm = s3.scenarios.rag.variants["bm25+compressed"];
    for (const r of bm.rows) {
      expect(r.retrieved!.length).toBe(5);
      expect(r.contextTokens).toBe(8 * 5);
      expect(r.recall!["@5"]).toBe(recallAtK(r.retrieved!, r.positives!, 5));
    }
    const raw = s3.scenarios.rag.variants["bm25+raw"];
    raw.rows.forEach((r) => expect(r.contextTokens).toBe(r.retrieved!.reduce((n, j) => n + s3.chunks[j].tokens, 0)));
    // The base model's answers do not depend on the checkpoint: computed once, then reused.
    expect(s3.scenarios.zero_shot.rows.map((r) => r.prediction)).toEqual(s1.scenarios.zero_shot.rows.map((r) => r.prediction));
    expect(s3.scenarios.zero_shot.rows.every((r) => r.cached)).toBe(true);
    expect(s1.scenarios.zero_shot.rows.some((r) => r.cached)).toBe(false);
    expect(raw.rows.map((r) => r.prediction)).toEqual(s1.scenarios.rag.variants["bm25+raw"].rows.map((r) => r.prediction));
    // BM25 over the same chunks ranks the same for every model.
    expect(s3.scenarios.rag.retrieval.bm25!.overall).toEqual(s1.scenarios.rag.retrieval.bm25!.overall);
  });

  test("the report compares stages and scenarios, states the untrained scores and shows the charts", () => {
    const md = fs.readFileSync(suite.reportPath, "utf8");
    expect(md).toMatch(/\*\*Untrained model for comparison\*\*.*F1 \d\.\d{3}, ACC \d\.\d{3}/);
    expect(md).toContain("| Scenario | stage1 | stage3 | untrained |");
    for (const s of ["1. zero-shot", "BM25 + raw text", "BM25 + compressed", "query reasoner + compressed", "## Retrieval", "## Compression quality", "## Efficiency", "## By category"]) {
      expect(md).toContain(s);
    }
    expect(suite.charts.length).toBe(4);
    for (const c of suite.charts) {
      expect(fs.readFileSync(c).subarray(1, 4).toString()).toBe("PNG");
      expect(md).toContain(`](${path.basename(c)})`);
    }
    expect(md).toContain("![stage1 training loss](stage1_loss.png)");
  });

  test("the wall time of every phase is kept and reported", () => {
    const [s1, s3] = suite.results;
    expect(Object.keys(s1.timings)).toEqual(["load", "chunks", "compress chunks", "zero-shot", "retrieval bm25", "rag bm25+compressed", "rag bm25+raw", "compression (reconstruction)"]);
    expect(Object.keys(s3.timings)).toEqual(["load", "chunks", "compress chunks", "zero-shot", "retrieval bm25", "retrieval clara", "rag clara+compressed", "rag clara+raw", "rag bm25+compressed", "rag bm25+raw", "compression (reconstruction)"]);
    for (const ms of Object.values(s3.timings)) expect(ms).toBeGreaterThanOrEqual(0);
    const md = fs.readFileSync(suite.reportPath, "utf8");
    expect(md).toContain("| Phase | stage1 | stage3 | untrained |");
    expect(md).toContain(`| compress chunks | ${(s1.timings["compress chunks"] / 1000).toFixed(1)} | ${(s3.timings["compress chunks"] / 1000).toFixed(1)} |`);
  });
});

describe("batches", () => {
  test("with a length, similar lengths share a batch, longest first; results come back in the items' order", async () => {
    const items = ["a".repeat(9), "b", "c".repeat(5), "d".repeat(2), "e".repeat(8), "f".repeat(3)];
    const seen: string[][] = [];
    const out = await batched(items, 2, async (batch) => (seen.push(batch), batch.map((x) => x.toUpperCase())), (x) => x.length);
    expect(seen.map((b) => b.map((x) => x[0]))).toEqual([["a", "e"], ["c", "f"], ["d", "b"]]);
    // 5 items in batches of 2: the remainder batch holds the shortest one.
    const tail: number[][] = [];
    await batched([3, 9, 1, 7, 5], 2, async (batch) => (tail.push(batch), batch), (x) => x);
    expect(tail).toEqual([[9, 7], [5, 3], [1]]);
    expect(out.map((r) => r.value)).toEqual(items.map((x) => x.toUpperCase()));
    const plain: string[][] = [];
    await batched(items, 4, async (batch) => (plain.push(batch), batch), undefined);
    expect(plain.map((b) => b.length)).toEqual([4, 2]);
    expect(plain.flat()).toEqual(items);
  });
});

describe("questions without a gold chunk", () => {
  test("are left out of recall, not scored 0, and counted", async () => {
    const doc = await extractPdf(PDF);
    const [a, b] = readQaSet(path.join(REPO, "knowledge_data", "sample_paper_qa.jsonl"));
    const lost = { ...a, id: "lost", evidence: { section: "9 Nowhere", text: "A sentence that is not in the paper at all, anywhere." } };
    const clara = await ClaraModel.load(path.join(work, "stage3.npz"));
    try {
      const corpus = buildCorpus(doc, [a, lost, b], clara);
      expect(corpus.evidenceMatch).toEqual(["text", "none", "text"]);
      const rag = await ragScenario(clara, corpus, await compressChunks(clara, corpus.chunks), { maxNewTokens: 2, batchSize: 3 });
      for (const retriever of ["bm25", "clara"] as const) {
        const summary = rag.retrieval[retriever]!;
        expect({ gold: summary.goldChunks, without: summary.withoutGold }).toEqual({ gold: 2, without: ["lost"] });
        const rows = rag.variants[`${retriever}+compressed`].rows;
        expect(rows[1].recall).toBeUndefined();
        const r5 = [0, 2].map((i) => recallAtK(rows[i].retrieved!.concat(), rows[i].positives!, 5));
        expect(summary.overall["recall@5"]).toBeCloseTo((r5[0] + r5[1]) / 2, 12);
        const agg = rag.variants[`${retriever}+compressed`].aggregate.overall;
        expect({ n: agg.n, gold: agg.goldChunks }).toEqual({ n: 3, gold: 2 });
        expect(agg.recall!["@5"]).toBeCloseTo((r5[0] + r5[1]) / 2, 12);
      }
    } finally {
      await clara.dispose();
    }
  }, 60_000);

  test("the report and the score table say how many have one, and warn when most have none", () => {
    const e: ModelEvaluation = JSON.parse(JSON.stringify(suite.results[1]));
    expect(goldChunks(e)).toMatchObject({ found: QUESTIONS, n: QUESTIONS });
    expect(goldChunks(e).warning).toBeUndefined();
    expect(formatReport({ evaluations: [e], charts: [], trainingCurves: [] })).toContain(`Gold chunks (the chunks holding a question's evidence): ${QUESTIONS} of ${QUESTIONS} questions (${QUESTIONS} by the evidence sentence)`);
    // As after a broken extraction: only the first question's evidence was found.
    e.questions.evidence = e.questions.evidence.map((x, i) => (i === 0 ? x : { ...x, chunks: [], match: "none" }));
    const ids = e.questions.evidence.slice(1).map((x) => x.id);
    const md = formatReport({ evaluations: [e], charts: [], trainingCurves: [] });
    expect(md).toContain(`**Warning: ${QUESTIONS - 1} of ${QUESTIONS} questions have no gold chunk`);
    expect(md).toContain(`1 of ${QUESTIONS} questions (1 by the evidence sentence). Retrieval recall is over those 1; the ${QUESTIONS - 1} without one (${ids.join(", ")}) are left out of it.`);
    const table = scoreTable([e]);
    expect(table.split("\n")[0]).toBe(`Scores on sample_paper: ${QUESTIONS} questions, 1 with a gold chunk (recall is over those); top-k 5`);
    expect(table).toMatch(new RegExp(`\\nWarning: ${QUESTIONS - 1} of ${QUESTIONS} questions have no gold chunk`));
  });
});

describe("the score table", () => {
  test("one column per model in the report's order, the report's numbers", () => {
    expect(suite.reported.map((e) => e.label)).toEqual(["stage1", "stage3", "untrained"]);
    const table = scoreTable(suite.reported);
    const lines = table.split("\n");
    expect(lines[1].trim().split(/\s+/)).toEqual(["stage1", "stage3", "untrained"]);
    const s3 = suite.results[1].scenarios;
    const f = (x: number) => x.toFixed(3);
    const zero = lines.find((l) => l.includes("1. zero-shot"))!;
    expect(zero).toContain(`${f(s3.zero_shot.aggregate.overall.f1)} / ${f(s3.zero_shot.aggregate.overall.acc)} / ${f(s3.zero_shot.aggregate.overall.em)}`);
    // Stage 1 has no query reasoner: its cell in that row is a dash, not a number.
    const qr = lines.find((l) => l.includes("query reasoner (compressed)"))!;
    const r = s3.rag.retrieval.clara!.overall;
    expect(qr.trim().split(/\s{2,}/)).toEqual(["query reasoner (compressed)", "–", `${f(r["recall@1"])} / ${f(r["recall@3"])} / ${f(r["recall@5"])}`, "–"]);
    // The answer rows in the report's order, and columns aligned.
    const order = ["1. zero-shot", "BM25 + raw text", "BM25 + compressed", "query reasoner + compressed", "query reasoner + raw text"].map((t) => lines.findIndex((l) => l.includes(t)));
    expect(order).toEqual([...order].sort((x, y) => x - y));
    expect(order.every((i) => i > 0)).toBe(true);
    const col = lines[1].indexOf("stage3");
    expect(zero.slice(col).startsWith(f(s3.zero_shot.aggregate.overall.f1))).toBe(true);
    expect(scoreSummary(suite.reported)[1]).toMatchObject({ label: "stage3", questions: QUESTIONS, withGoldChunk: QUESTIONS, answers: { zero_shot: { f1: s3.zero_shot.aggregate.overall.f1 } } });
  });
});

describe("questions and PDFs", () => {
  test("without a question file the model writes one (cloze questions filling in), which is then reused", async () => {
    const dir = path.join(work, "user");
    fs.mkdirSync(dir);
    const pdf = path.join(dir, "paper.pdf");
    fs.copyFileSync(PDF, pdf);
    const doc = await extractPdf(pdf);
    const qaOut = path.join(work, "data", "clara_paper_eval.jsonl");
    expect(resolveQuestions(doc, { qaOut })).toBeNull();
    const clara = await ClaraModel.load(path.join(work, "stage1.npz"));
    try {
      const { items, stats } = await generateQuestions(doc, clara, qaOut);
      expect(stats.llm!.sections).toBe(13);
      expect(items.length).toBe(stats.total);
      expect(items.every((q) => q.document === "paper" && (q.source === "llm" || q.source === "extractive"))).toBe(true);
    } finally {
      await clara.dispose();
    }
    expect(resolveQuestions(doc, { qaOut })!.file).toBe(qaOut);
    // Made for another PDF: not reused.
    expect(resolveQuestions({ ...doc, name: "other" }, { qaOut })).toBeNull();
  }, 60_000);

  test("the PDF in knowledge_data/: the user's one, else the sample; several is an error", () => {
    const dir = path.join(work, "kd");
    fs.mkdirSync(dir);
    expect(catchClara(() => defaultPdf(dir), "E_IO").field).toBe("--pdf");
    fs.writeFileSync(path.join(dir, "sample_paper.pdf"), "");
    expect(defaultPdf(dir)).toBe(path.join(dir, "sample_paper.pdf"));
    fs.writeFileSync(path.join(dir, "2511.18659v2.pdf"), "");
    expect(defaultPdf(dir)).toBe(path.join(dir, "2511.18659v2.pdf"));
    fs.writeFileSync(path.join(dir, "other.PDF"), "");
    expect(catchClara(() => defaultPdf(dir), "E_INVALID_ARGUMENT").message).toMatch(/several PDFs/);
  });
});
