// results/final_report.md: tables comparing stages and scenarios, the untrained model's scores
// as a reference line, PNG charts (lib/report/plot.ts) and the training curves, from the
// results/<label>_eval.json files the suite writes.

import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "../io/atomic";
import { barChartPng, writePng, type BarChartOptions, type BarDatum } from "../report/plot";
import { QA_CATEGORIES } from "./qa-set";
import type { AnswerAggregate, AnswerScenario } from "./scenarios";
import type { ModelEvaluation } from "./evaluation";

export const REPORT_FILE = "final_report.md";

/** Scenario keys in report order, with their labels. */
export const ANSWER_ROWS: Array<{ key: string; label: string }> = [
  { key: "zero_shot", label: "1. zero-shot (base, no context)" },
  { key: "bm25+raw", label: "2. RAG: BM25 + raw text (base)" },
  { key: "bm25+compressed", label: "2. RAG: BM25 + compressed (CLaRa)" },
  { key: "clara+compressed", label: "2. RAG: query reasoner + compressed (CLaRa)" },
  { key: "clara+raw", label: "2. RAG: query reasoner + raw text (base)" },
];

const SHORT: Record<string, string> = {
  zero_shot: "zero-shot",
  "bm25+raw": "BM25+raw",
  "bm25+compressed": "BM25+compressed",
  "clara+compressed": "CLaRa+compressed",
  "clara+raw": "CLaRa+raw",
};

/** Every results/*_eval.json in `outDir`, stages in order, then the untrained one. */
export function loadEvaluations(outDir: string): ModelEvaluation[] {
  if (!fs.existsSync(outDir)) return [];
  const order = (l: string) => (l === "untrained" ? 9 : Number(l.replace(/\D/g, "")) || 8);
  return fs
    .readdirSync(outDir)
    .filter((f) => /_eval\.json$/.test(f))
    .map((f) => JSON.parse(fs.readFileSync(path.join(outDir, f), "utf8")) as ModelEvaluation)
    .filter((e) => e && e.format === "clara-mlx-eval")
    .sort((a, b) => order(a.label) - order(b.label));
}

export function answerScenario(e: ModelEvaluation, key: string): AnswerScenario | undefined {
  return key === "zero_shot" ? e.scenarios.zero_shot : e.scenarios.rag.variants[key];
}

/**
 * How many questions have a gold chunk (a chunk holding their evidence), by how it was found,
 * as a sentence for the report and the score table, and a warning when most have none (what a
 * broken extraction or a question file for another PDF looks like).
 */
export function goldChunks(e: ModelEvaluation): { found: number; n: number; line: string; warning?: string } {
  const ev = e.questions.evidence;
  const by = (m: string) => ev.filter((x) => x.match === m).length;
  const found = ev.filter((x) => x.chunks.length > 0).length;
  const missing = ev.filter((x) => x.chunks.length === 0).map((x) => x.id);
  const how = [
    [by("text"), "by the evidence sentence"],
    [by("overlap"), "by most of its words"],
    [by("section"), "by section and page only"],
  ]
    .filter(([n]) => n)
    .map(([n, w]) => `${n} ${w}`)
    .join(", ");
  const listed = missing.length > 8 ? `${missing.slice(0, 8).join(", ")}, …` : missing.join(", ");
  const line =
    `Gold chunks (the chunks holding a question's evidence): ${found} of ${ev.length} questions${how ? ` (${how})` : ""}. ` +
    (missing.length ? `Retrieval recall is over those ${found}; the ${missing.length} without one (${listed}) are left out of it.` : "Retrieval recall is over all of them.");
  const warning =
    missing.length > 0 && found < ev.length / 2
      ? `${missing.length} of ${ev.length} questions have no gold chunk: the PDF's extracted text does not hold their evidence ` +
        `(check the sections \`clara-eval extract\` finds, and that the question file is about this PDF)`
      : undefined;
  return { found, n: ev.length, line, ...(warning ? { warning } : {}) };
}

const f3 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(3));
const f0 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "–" : Math.round(x).toString());

function cell(a: AnswerAggregate | undefined): string {
  return a ? `${f3(a.f1)} / ${f3(a.acc)} / ${f3(a.em)}` : "–";
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

/** The markdown report (pure: no files read or written). */
export function formatReport(o: {
  evaluations: ModelEvaluation[];
  untrained?: ModelEvaluation;
  charts: Array<{ title: string; file: string }>;
  trainingCurves: Array<{ stage: string; file: string }>;
  chartError?: string;
}): string {
  const evs = o.evaluations;
  const all = o.untrained ? [...evs, o.untrained] : evs;
  const ref = all[0];
  if (!ref) return "# CLaRa evaluation\n\nNo results yet: run `clara-eval run --checkpoint <stageN.npz>`.\n";
  const d = ref.document;
  const c = ref.config;
  const lines: string[] = [];
  lines.push(`# CLaRa evaluation on "${d.title || d.name}"`);
  lines.push("");
  lines.push(
    `PDF \`${d.file}\`: ${d.pages} pages, ${d.sections} sections, ${ref.index.chunks} chunks of at most ${c.docMaxLength} tokens ` +
      `(compressed to n = ${c.nMem} memory vectors each, rate ${c.compressionRate}). ` +
      `${ref.questions.n} questions from \`${ref.questions.file}\` (${Object.entries(ref.questions.sources).map(([k, v]) => `${v} ${k}`).join(", ")}); ` +
      `top-k = ${c.k}; greedy answers of at most ${c.maxNewTokens} tokens. Base model \`${(c.base as { source: string }).source}\`` +
      ` on ${(c.runtime as { backend: string; deviceName: string }).backend}${(c.runtime as { deviceName: string }).deviceName ? ` (${(c.runtime as { deviceName: string }).deviceName})` : ""}.`,
  );
  lines.push("");
  if (o.untrained) {
    const u = o.untrained;
    const bm = u.scenarios.rag.variants["bm25+compressed"]?.aggregate.overall;
    lines.push(
      `**Untrained model for comparison** (a fresh CLaRa model on the same base: adapters at initialisation, new memory-token rows): ` +
        `BM25 + compressed F1 ${f3(bm?.f1)}, ACC ${f3(bm?.acc)}, EM ${f3(bm?.em)}; ` +
        `reconstruction ROUGE-L ${f3(u.scenarios.compression.aggregate.rougeL)}, cosine ${f3(u.scenarios.compression.aggregate.cosine)}, MSE ${f3(u.scenarios.compression.aggregate.mse)}.`,
    );
    lines.push("");
  }
  lines.push(
    `Scores are means over all questions (spec §4.1: SQuAD normalisation, first gold answer, yes/no rule). ACC is Cover-EM. ` +
      `With ${ref.questions.n} questions the standard error of a mean F1 is about ${f3(evs[0]?.scenarios.zero_shot.aggregate.overall.se.f1)}; ` +
      `smaller differences are noise.`,
  );
  lines.push("");
  const gold = goldChunks(ref);
  if (gold.warning) lines.push(`**Warning: ${gold.warning}**`, "");
  lines.push(gold.line, "");

  const cols = all.map((e) => e.label);
  lines.push("## Answers: F1 / ACC / EM by scenario and stage");
  lines.push("");
  lines.push(
    table(
      ["Scenario", ...cols],
      ANSWER_ROWS.filter((r) => all.some((e) => answerScenario(e, r.key))).map((r) => [r.label, ...all.map((e) => cell(answerScenario(e, r.key)?.aggregate.overall))]),
    ),
  );
  lines.push("");
  lines.push(
    "Zero-shot and raw-text answers come from the base model without adapters; they are the same for every stage " +
      "(and computed once). Stage 1 and 2 checkpoints have no query reasoner, so their RAG rows use BM25 only.",
  );
  lines.push("");

  lines.push("## Retrieval: recall of the evidence chunk");
  lines.push("");
  const rrows: string[][] = [];
  for (const e of all) {
    for (const r of ["bm25", "clara"] as const) {
      const s = e.scenarios.rag.retrieval[r];
      if (s) {
        const counted = s.goldChunks === undefined ? "–" : `${s.goldChunks} of ${e.questions.n}`;
        rrows.push([e.label, r === "bm25" ? "BM25 (text)" : "query reasoner (compressed)", counted, f3(s.overall["recall@1"]), f3(s.overall["recall@3"]), f3(s.overall["recall@5"]), f0(s.latencyMs)]);
      }
    }
  }
  lines.push(table(["Model", "Retriever", "questions with a gold chunk", "R@1", "R@3", "R@5", "ms/query"], rrows));
  lines.push("");
  lines.push("Recall is the mean over the questions that have a gold chunk; those without one have no recall to measure and are left out (not counted as 0).");
  lines.push("");

  lines.push("## Compression quality (scenario 3)");
  lines.push("");
  lines.push(
    table(
      ["Model", "chunks", "MSE (mean mem vs mean doc)", "cosine (mean-pooled)", "ROUGE-L", "token F1", "tokens per memory vector"],
      all.map((e) => {
        const a = e.scenarios.compression.aggregate;
        return [e.label, String(a.n), f3(a.mse), f3(a.cosine), f3(a.rougeL), f3(a.tokenF1), a.compressionRatio.toFixed(1)];
      }),
    ),
  );
  lines.push("");
  lines.push(
    `Each section's first chunk is compressed and reconstructed with the paraphrase prompt; cosine compares the base model's ` +
      `mean-pooled final states of the original and the reconstruction.`,
  );
  lines.push("");

  lines.push("## Efficiency");
  lines.push("");
  const erows: string[][] = [];
  for (const e of all) {
    for (const r of ANSWER_ROWS) {
      const a = answerScenario(e, r.key)?.aggregate.overall;
      if (a) erows.push([e.label, SHORT[r.key], f0(a.latencyMs), f0(a.contextTokens), a.avgOutputLength.toFixed(1)]);
    }
  }
  lines.push(table(["Model", "Scenario", "latency ms/question", "context tokens", "answer words"], erows));
  lines.push("");
  lines.push(
    `Latency per question is its generation batch's wall time divided by the batch size (${String(c.batchSize ?? 1)}), plus its retrieval; ` +
      `base-model answers shared between stages keep the time measured when first computed. ` +
      `Context tokens: n·k memory tokens for compressed chunks, the chunks' own tokens for raw text. ` +
      `Chunk compression (the index) took ${all.map((e) => `${e.label} ${f0(e.index.compressMs)} ms`).join(", ")}.`,
  );
  lines.push("");
  const timed = all.filter((e) => e.timings);
  if (timed.length) {
    const phases = [...new Set(timed.flatMap((e) => Object.keys(e.timings)))];
    const seconds = (ms: number | undefined) => (ms === undefined ? "–" : (ms / 1000).toFixed(1));
    lines.push("Where the time went (wall seconds per phase; answers of the base model shared between models cost only their first model):");
    lines.push("");
    lines.push(
      table(
        ["Phase", ...timed.map((e) => e.label)],
        [...phases.map((p) => [p, ...timed.map((e) => seconds(e.timings[p]))]), ["total", ...timed.map((e) => seconds(Object.values(e.timings).reduce((a, b) => a + b, 0)))]],
      ),
    );
    lines.push("");
  }

  lines.push("## By category (F1 / ACC / EM)");
  for (const e of all) {
    lines.push("");
    lines.push(`### ${e.label}`);
    lines.push("");
    const keys = ANSWER_ROWS.filter((r) => answerScenario(e, r.key));
    lines.push(
      table(
        ["Category", "n", ...keys.map((k) => SHORT[k.key])],
        QA_CATEGORIES.filter((cat) => e.scenarios.zero_shot.aggregate.byCategory[cat]).map((cat) => [
          cat,
          String(e.scenarios.zero_shot.aggregate.byCategory[cat]!.n),
          ...keys.map((k) => cell(answerScenario(e, k.key)?.aggregate.byCategory[cat])),
        ]),
      ),
    );
  }
  lines.push("");

  if (o.charts.length || o.chartError) {
    lines.push("## Charts");
    lines.push("");
    for (const ch of o.charts) lines.push(`![${ch.title}](${ch.file})`, "");
    if (o.chartError) lines.push(`Charts could not be drawn: ${o.chartError}`, "");
  }
  if (o.trainingCurves.length) {
    lines.push("## Training curves");
    lines.push("");
    for (const t of o.trainingCurves) lines.push(`![${t.stage} training loss](${t.file})`, "");
  }
  lines.push("## Example answers");
  lines.push("");
  const last = evs[evs.length - 1] ?? ref;
  const best = last.scenarios.rag.variants["clara+compressed"] ?? last.scenarios.rag.variants["bm25+compressed"];
  if (best) {
    lines.push(
      table(
        ["Question", "Reference", `${last.label} (${best.retriever}+compressed)`, "F1"],
        best.rows.slice(0, 5).map((r) => [esc(r.question), esc(r.reference), esc(r.prediction.slice(0, 160)), f3(r.f1)]),
      ),
    );
    lines.push("");
  }
  return lines.join("\n");
}

function esc(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\s+/g, " ");
}

/** The report's bar charts: a group per scenario (metric) in the report's order, a bar per model. */
export function evaluationCharts(all: ModelEvaluation[]): Array<{ file: string; title: string; chart: BarChartOptions }> {
  const series = all.map((e) => e.label);
  const answers = (metric: "f1" | "acc"): Pick<BarChartOptions, "data" | "groups"> => {
    const rows = ANSWER_ROWS.filter((r) => all.some((e) => answerScenario(e, r.key)));
    const data: BarDatum[] = [];
    for (const r of rows) {
      for (const e of all) {
        const a = answerScenario(e, r.key)?.aggregate.overall;
        if (a) data.push({ group: SHORT[r.key], label: e.label, value: a[metric] });
      }
    }
    return { data, groups: rows.map((r) => SHORT[r.key]) };
  };
  const recall: BarDatum[] = [];
  for (const r of ["bm25", "clara"] as const) {
    for (const k of [1, 3, 5]) {
      for (const e of all) {
        const v = e.scenarios.rag.retrieval[r]?.overall[`recall@${k}`];
        if (v !== undefined) recall.push({ group: `${r === "bm25" ? "BM25" : "query reasoner"} R@${k}`, label: e.label, value: v });
      }
    }
  }
  const compression: BarDatum[] = (["cosine", "rougeL", "tokenF1"] as const).flatMap((m) =>
    all.map((e) => ({ group: { cosine: "cosine", rougeL: "ROUGE-L", tokenF1: "token F1" }[m], label: e.label, value: e.scenarios.compression.aggregate[m] })),
  );
  return [
    { file: "eval_f1.png", title: "Answer F1 by scenario and stage", chart: { title: "Answer F1 by scenario and model", yLabel: "F1", series, ...answers("f1") } },
    { file: "eval_acc.png", title: "Answer ACC (Cover-EM) by scenario and stage", chart: { title: "Answer ACC (Cover-EM) by scenario and model", yLabel: "ACC", series, ...answers("acc") } },
    { file: "eval_retrieval.png", title: "Recall of the evidence chunk", chart: { title: "Recall of the gold chunk (questions that have one)", yLabel: "recall", series, data: recall } },
    { file: "eval_compression.png", title: "Reconstruction quality", chart: { title: "Reconstruction quality", yLabel: "score", series, data: compression } },
  ];
}

/** Draws the charts and writes final_report.md; returns its path and the chart files. */
export async function writeEvaluationReport(o: {
  outDir: string;
  evaluations: ModelEvaluation[];
  untrained?: ModelEvaluation;
  trainingCurves?: Array<{ stage: string; pngPath: string }>;
}): Promise<{ reportPath: string; charts: string[] }> {
  fs.mkdirSync(o.outDir, { recursive: true });
  const all = o.untrained ? [...o.evaluations, o.untrained] : o.evaluations;
  const charts: Array<{ title: string; file: string }> = [];
  let chartError: string | undefined;
  if (all.length) {
    try {
      for (const c of evaluationCharts(all)) {
        await writePng(path.join(o.outDir, c.file), barChartPng(c.chart));
        charts.push({ title: c.title, file: c.file });
      }
    } catch (e) {
      chartError = (e as Error).message;
    }
  }
  const curves = (o.trainingCurves ?? [])
    .filter((t) => fs.existsSync(t.pngPath))
    .map((t) => ({ stage: t.stage, file: path.relative(o.outDir, t.pngPath).split(path.sep).join("/") }));
  const reportPath = path.join(o.outDir, REPORT_FILE);
  writeFileAtomic(reportPath, Buffer.from(formatReport({ evaluations: o.evaluations, untrained: o.untrained, charts, trainingCurves: curves, chartError }) + "\n", "utf8"));
  return { reportPath, charts: charts.map((c) => path.join(o.outDir, c.file)) };
}
