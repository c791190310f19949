// The scores of an evaluation for the terminal: what `clara-eval run` (and `report`) print at the
// end, so the numbers are seen without opening the report: a plain-text table with the report's
// rows and labels (report.ts), one column per model, and the same numbers as JSON for --json.

import type { ModelEvaluation } from "./evaluation";
import { ANSWER_ROWS, answerScenario, goldChunks } from "./report";

const RETRIEVERS = [
  ["bm25", "BM25 (text)"],
  ["clara", "query reasoner (compressed)"],
] as const;

export interface ModelScores {
  label: string;
  /** F1, ACC (Cover-EM) and EM per answer scenario (report keys: zero_shot, bm25+raw, ...). */
  answers: Record<string, { f1: number; acc: number; em: number }>;
  /** Recall of the gold chunk per retriever, over the questions that have one. */
  retrieval: Record<string, Record<string, number>>;
  compression: { rougeL: number; cosine: number };
  questions: number;
  withGoldChunk: number;
}

/** The main numbers of each evaluation, in the report's order. */
export function scoreSummary(all: ModelEvaluation[]): ModelScores[] {
  return all.map((e) => {
    const answers: ModelScores["answers"] = {};
    for (const r of ANSWER_ROWS) {
      const a = answerScenario(e, r.key)?.aggregate.overall;
      if (a) answers[r.key] = { f1: a.f1, acc: a.acc, em: a.em };
    }
    const retrieval: ModelScores["retrieval"] = {};
    for (const [key] of RETRIEVERS) {
      const s = e.scenarios.rag.retrieval[key];
      if (s) retrieval[key] = s.overall;
    }
    const c = e.scenarios.compression.aggregate;
    return { label: e.label, answers, retrieval, compression: { rougeL: c.rougeL, cosine: c.cosine }, questions: e.questions.n, withGoldChunk: goldChunks(e).found };
  });
}

const f3 = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? "–" : x.toFixed(3));
const triple = (xs: Array<number | undefined>) => xs.map(f3).join(" / ");

/** Rows of cells as columns padded to their widest cell. */
function aligned(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => [...r[c]].length)));
  return rows.map((r) => r.map((cell, c) => cell + " ".repeat(widths[c] - [...cell].length)).join("  ").trimEnd()).join("\n");
}

/** The score table of the evaluated models (stages, then the untrained one). */
export function scoreTable(all: ModelEvaluation[]): string {
  if (all.length === 0) return "no results";
  const scores = scoreSummary(all);
  const blank = scores.map(() => "");
  const rows: string[][] = [["", ...scores.map((s) => s.label)], ["Answers: F1 / ACC / EM", ...blank]];
  for (const r of ANSWER_ROWS) {
    if (!scores.some((s) => s.answers[r.key])) continue;
    rows.push([`  ${r.label}`, ...scores.map((s) => (s.answers[r.key] ? triple([s.answers[r.key].f1, s.answers[r.key].acc, s.answers[r.key].em]) : "–"))]);
  }
  rows.push(["Retrieval: recall@1 / @3 / @5 of the gold chunk", ...blank]);
  for (const [key, label] of RETRIEVERS) {
    if (!scores.some((s) => s.retrieval[key])) continue;
    rows.push([`  ${label}`, ...scores.map((s) => (s.retrieval[key] ? triple([1, 3, 5].map((k) => s.retrieval[key][`recall@${k}`])) : "–"))]);
  }
  rows.push(["Compression: ROUGE-L / cosine", ...scores.map((s) => triple([s.compression.rougeL, s.compression.cosine]))]);
  const gold = goldChunks(all[0]);
  const head = `Scores on ${all[0].document.name}: ${gold.n} questions, ${gold.found} with a gold chunk (recall is over those); top-k ${all[0].config.k}`;
  return [head, aligned(rows), ...(gold.warning ? [`Warning: ${gold.warning}`] : [])].join("\n");
}
