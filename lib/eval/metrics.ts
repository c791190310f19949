// Answer and retrieval metrics, exactly as the reference evaluation computes them (spec §4.1,
// evaluation/evaluate.py), including its quirks:
// - only the first gold answer counts (no max over aliases);
// - F1 is 0 when either normalised side is "yes"/"no"/"noanswer" and the two differ;
// - Cover-EM ("ACC") is bag-of-tokens containment: order-insensitive, and true for an empty gold;
// - only ASCII punctuation (Python's string.punctuation) is removed; "’" or "“" stay;
// - recall@k is averaged over all samples, a sample without positives adding 0.
// Python's semantics are reproduced where JavaScript differs: `\b` in `re` is Unicode-aware
// (letters and digits of any script are word characters; JS's `\b` is ASCII-only) and
// `str.split()` splits on Python's whitespace set (which has \x1c-\x1f and \x85 and lacks
// \uFEFF, unlike JS's `\s`).

import { invalidArgument } from "../errors";

// Python's string.punctuation: !"#$%&'()*+,-./:;<=>?@[\]^_`{|}~
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;
// re.sub(r"\b(a|an|the)\b", " ", s) with Python's Unicode word characters.
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;
// The characters for which Python's str.isspace() is true (what str.split() splits on).
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

/** Python's `s.split()`: split on runs of whitespace, no empty strings. */
export function pySplit(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((t) => t !== "");
}

/** SQuAD normalisation: lowercase, drop ASCII punctuation, articles -> " ", collapse whitespace. */
export function normalizeAnswer(text: string): string {
  const noArticles = text.toLowerCase().replace(PUNCTUATION, "").replace(ARTICLES, " ");
  return pySplit(noArticles).join(" ");
}

/** The exact strings "True" -> "yes" and "False" -> "no"; anything else unchanged. */
export function boolMapping(text: string): string {
  return text === "True" ? "yes" : text === "False" ? "no" : text;
}

function norm(text: string): string {
  return normalizeAnswer(boolMapping(text));
}

/** EM: the normalised prediction equals the normalised gold answer. */
export function exactMatch(prediction: string, gold: string): boolean {
  return norm(prediction) === norm(gold);
}

/** Cover-EM ("ACC"): every normalised gold token occurs among the normalised prediction tokens. */
export function coverExactMatch(prediction: string, gold: string): boolean {
  const pred = new Set(pySplit(norm(prediction)));
  return pySplit(norm(gold)).every((t) => pred.has(t));
}

const YES_NO = new Set(["yes", "no", "noanswer"]);

/** The reference's token F1 (Counter intersection), with the yes/no/noanswer rule. */
export function f1Score(prediction: string, gold: string): number {
  const p = norm(prediction);
  const g = norm(gold);
  if ((YES_NO.has(p) || YES_NO.has(g)) && p !== g) return 0;
  return counterF1(pySplit(p), pySplit(g), 0);
}

/**
 * Plain SQuAD token F1 on normalised text, without the yes/no rule and without bool mapping, for
 * comparing longer texts (paraphrases, reconstructions). Two empty texts score 1.
 */
export function tokenF1(prediction: string, reference: string): number {
  return counterF1(pySplit(normalizeAnswer(prediction)), pySplit(normalizeAnswer(reference)), 1);
}

function counterF1(pred: string[], gold: string[], bothEmpty: number): number {
  if (pred.length === 0 && gold.length === 0) return bothEmpty;
  const counts = new Map<string, number>();
  for (const t of gold) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of pred) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / pred.length;
  const recall = same / gold.length;
  return (2 * precision * recall) / (precision + recall);
}

/**
 * ROUGE-L F-measure (β = 1) over normalised tokens: LCS / length for precision and recall.
 * 0 when either side has no tokens. (The reference's `evaluate` rouge tokenises differently,
 * so values are close to, not identical with, its numbers.)
 */
export function rougeL(prediction: string, reference: string): number {
  const p = pySplit(normalizeAnswer(prediction));
  const r = pySplit(normalizeAnswer(reference));
  if (p.length === 0 || r.length === 0) return 0;
  const lcs = lcsLength(p, r);
  if (lcs === 0) return 0;
  const precision = lcs / p.length;
  const recall = lcs / r.length;
  return (2 * precision * recall) / (precision + recall);
}

function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/**
 * The fraction of `keywords` found in `answer` as case-insensitive substrings (the MLX port's
 * keyword score, spec §6.4).
 */
export function keywordMatch(answer: string, keywords: readonly string[]): number {
  if (!Array.isArray(keywords) || keywords.length === 0) throw invalidArgument("keywords", "a non-empty array of strings", keywords);
  const text = answer.toLowerCase();
  return keywords.filter((k) => text.includes(k.toLowerCase())).length / keywords.length;
}

/**
 * The gold answer the reference scores against: `golden_answers[0]` if the record has
 * `golden_answers`, else `answer`. Only the first gold answer is used. (The reference decides
 * between the two keys once, from the first record of the file; this decides per record. A
 * string `golden_answers` is taken whole, where Python would take its first character.)
 */
export function goldAnswer(record: { golden_answers?: unknown; answer?: unknown }): string {
  const golden = record.golden_answers;
  if (golden !== undefined && golden !== null) {
    if (typeof golden === "string") return golden;
    if (Array.isArray(golden) && golden.length > 0 && typeof golden[0] === "string") return golden[0];
    throw invalidArgument("golden_answers", "a non-empty array of strings", golden);
  }
  if (typeof record.answer === "string") return record.answer;
  throw invalidArgument("answer", "a string (or golden_answers)", record.answer);
}

// ---------------------------------------------------------------------------------------
// Retrieval

/** |set(ranked[:k]) ∩ set(positives)| / |set(positives)|; 0 when there are no positives. */
export function recallAtK(ranked: readonly number[], positives: readonly number[], k: number): number {
  checkK(k);
  const pos = new Set(positives);
  if (pos.size === 0) return 0;
  return hits(ranked, pos, k) / pos.size;
}

/** |set(ranked[:k]) ∩ set(positives)| / k (k, not the number of ranked items). */
export function precisionAtK(ranked: readonly number[], positives: readonly number[], k: number): number {
  checkK(k);
  return hits(ranked, new Set(positives), k) / k;
}

function hits(ranked: readonly number[], pos: ReadonlySet<number>, k: number): number {
  let n = 0;
  for (const i of new Set(ranked.slice(0, k))) if (pos.has(i)) n++;
  return n;
}

function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1) throw invalidArgument("k", "a positive integer", k);
}

export interface RetrievalSample {
  /** Document indices, best first (the model's topk_idx). */
  ranked: readonly number[];
  /** Indices of the positive documents (pos_index). */
  positives: readonly number[];
}

/** Mean recall@k over ALL samples: a sample without positives counts as 0 (the evaluator's rule). */
export function meanRecallAtK(samples: readonly RetrievalSample[], k: number): number {
  nonEmpty(samples);
  return samples.reduce((s, x) => s + recallAtK(x.ranked, x.positives, k), 0) / samples.length;
}

/** Mean precision@k over all samples. */
export function meanPrecisionAtK(samples: readonly RetrievalSample[], k: number): number {
  nonEmpty(samples);
  return samples.reduce((s, x) => s + precisionAtK(x.ranked, x.positives, k), 0) / samples.length;
}

/** recall@k and precision@k for each k (default 1, 3, 5), keyed like the reference's output. */
export function retrievalMetrics(samples: readonly RetrievalSample[], ks: readonly number[] = [1, 3, 5]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ks) out[`recall@${k}`] = meanRecallAtK(samples, k);
  for (const k of ks) out[`precision@${k}`] = meanPrecisionAtK(samples, k);
  return out;
}

// ---------------------------------------------------------------------------------------
// Answers

export interface AnswerSample {
  prediction: string;
  gold: string;
}

export interface AnswerMetrics {
  f1: number;
  /** Cover-EM, the paper's "ACC". */
  acc: number;
  em: number;
  /** Mean number of whitespace-separated words in the predictions. */
  avgOutputLength: number;
  n: number;
}

/** Means of F1, Cover-EM and EM over all samples (the reference's calculate_basic_metrics). */
export function answerMetrics(samples: readonly AnswerSample[]): AnswerMetrics {
  nonEmpty(samples);
  let f1 = 0;
  let acc = 0;
  let em = 0;
  let words = 0;
  for (const { prediction, gold } of samples) {
    f1 += f1Score(prediction, gold);
    acc += coverExactMatch(prediction, gold) ? 1 : 0;
    em += exactMatch(prediction, gold) ? 1 : 0;
    words += pySplit(prediction).length;
  }
  const n = samples.length;
  return { f1: f1 / n, acc: acc / n, em: em / n, avgOutputLength: words / n, n };
}

function nonEmpty(samples: readonly unknown[]): void {
  if (!Array.isArray(samples) || samples.length === 0) throw invalidArgument("samples", "a non-empty array", samples);
}
