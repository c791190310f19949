// The three evaluation scenarios on a PDF, for one CLaRa model (spec §4; issue 6):
//   1. zero-shot: the base model answers the question alone (no adapter, no context);
//   2. RAG over the PDF's chunks: top-k by BM25 over the text and, with a query_reasoner
//      adapter (stage 3), by CLaRa's query reasoner over the compressed chunks; answered by the
//      CLaRa generator from the compressed chunks and, as the reference, by the base model
//      reading the same chunks as raw text (the paper's "LLM w/ retrieval" baseline);
//   3. compression quality: see compression.ts.
// Answers are scored by metrics.ts (SQuAD normalisation, the reference's quirks), per category
// and overall, with latency per question and the context length the reader saw.
//
// The base model reads prompts through its own chat template, greedy. Its answers do not depend
// on the checkpoint, so an AnswerCache shares them between the stages of one suite run.

import { performance } from "node:perf_hooks";
import { ClaraError } from "../errors";
import { escapeSpecialTokens } from "../data/escape";
import { ADAPTERS, concatRows, sliceRows, type ClaraModel } from "../clara/clara-model";
import { SYSTEM_PROMPTS } from "../clara/templates";
import { nativeModel } from "../model/model";
import type { Tensor } from "../tensor";
import { Bm25 } from "./bm25";
import { evidenceChunks, chunkSections, type Chunk, type EvidenceMatch } from "./chunks";
import { coverExactMatch, exactMatch, f1Score, keywordMatch, pySplit, recallAtK } from "./metrics";
import type { ExtractedPdf } from "./pdf";
import { PhaseTimer } from "./phase-timer";
import { QA_CATEGORIES, type QaCategory, type QaItem } from "./qa-set";

/** The zero-shot system prompt (ours: the reference's answer prompt speaks of documents). */
export const ZERO_SHOT_SYSTEM = "You are a helpful assistant. Your task is to answer questions as briefly as possible.";
export const RECALL_KS = [1, 3, 5] as const;

export interface ScenarioOptions {
  /** Chunks per question in RAG (default 5). */
  k?: number;
  /** Greedy answer length for every reader (default 64, the reference's stage-3 value). */
  maxNewTokens?: number;
  /** Reconstruction length; default min(docMaxLength + 32, 1.25 * chunk tokens + 16). */
  reconstructionMaxTokens?: number;
  /** Which chunks scenario 3 reconstructs: the first of each section (default) or all. */
  compressionChunks?: "first-per-section" | "all";
  /** At most this many of those (evenly spread over the document); default no limit. */
  maxCompressionChunks?: number;
  /**
   * Questions generated together (default 8). Latency per question is its batch's wall time
   * divided by the batch size; 1 gives single-query latency.
   */
  batchSize?: number;
  cache?: AnswerCache;
  /** Base-model mean states by text (compression.ts), shared between stages like `cache`. */
  embeddingCache?: Map<string, Float64Array>;
  onProgress?: (message: string) => void;
  /** Times the scenarios' phases (one per evaluated model). */
  timer?: PhaseTimer;
}

/** Base-model answers by prompt, shared across the stages of a run (same base, same answer). */
export type AnswerCache = Map<string, { text: string; ms: number; promptTokens: number }>;

// ---------------------------------------------------------------------------------------
// Corpus: chunks, questions, and which chunks hold each question's evidence

export interface Corpus {
  document: { file: string; name: string; title: string; pages: number; sha256: string; sections: number };
  chunks: Chunk[];
  questions: QaItem[];
  /** Per question: indices of the chunks holding its evidence. */
  positives: number[][];
  evidenceMatch: EvidenceMatch[];
}

/** Literal special-token strings in PDF text broken before they reach the tokenizer. */
export function esc(text: string): string {
  return escapeSpecialTokens(text);
}

/** Chunks of at most docMaxLength tokens of the model's tokenizer, and the evidence chunks. */
export function buildCorpus(doc: ExtractedPdf, questions: QaItem[], clara: ClaraModel): Corpus {
  const tok = clara.model.tokenizer;
  const chunks = chunkSections(doc.sections, { maxTokens: clara.docMaxLength, countTokens: (t) => tok.encode(esc(t)).length });
  if (chunks.length === 0) throw new ClaraError("E_PDF", `${doc.file}: no text to evaluate on after extraction`, { file: doc.file, field: "text" });
  const matches = questions.map((q) => evidenceChunks(chunks, q.evidence));
  return {
    document: { file: doc.file, name: doc.name, title: doc.title, pages: doc.pages, sha256: doc.sha256, sections: doc.sections.length },
    chunks,
    questions,
    positives: matches.map((m) => m.indices),
    evidenceMatch: matches.map((m) => m.match),
  };
}

export interface CompressedChunks {
  /** [N, n, H] */
  vectors: Tensor;
  /** The compressor's MSE-of-means term per chunk. */
  mse: number[];
  ms: number;
}

/**
 * Compresses every chunk, one at a time so that each gets its own MSE term, without the padding
 * that would only widen it to docMaxLength (a section's short last chunk costs its own length).
 */
export async function compressChunks(clara: ClaraModel, chunks: Chunk[]): Promise<CompressedChunks> {
  const t0 = performance.now();
  const parts: Tensor[] = [];
  const mse: number[] = [];
  for (const c of chunks) {
    const r = await nativeModel(clara.model).claraCompress({ docs: clara.encoderBatch([esc(c.text)]), spec: clara.spec(1) });
    parts.push(r.vectors); // [1, n, H]
    mse.push(r.mse);
  }
  return { vectors: concatRows(parts), mse, ms: performance.now() - t0 };
}

// ---------------------------------------------------------------------------------------
// Answer rows and their aggregates

export interface AnswerRow {
  id: string;
  category: QaCategory;
  question: string;
  reference: string;
  prediction: string;
  em: number;
  f1: number;
  /** Cover-EM, the paper's "ACC". */
  acc: number;
  keyword: number;
  /** Words in the prediction. */
  words: number;
  /** Retrieval + generation, milliseconds. */
  latencyMs: number;
  retrievalMs?: number;
  /** Context the reader saw: memory tokens (n·k) or the raw chunks' tokens. */
  contextTokens: number;
  promptTokens?: number;
  /** Served from the cache (same base-model prompt in an earlier stage). */
  cached?: boolean;
  retrieved?: number[];
  /** The gold chunks (those holding the evidence); empty when none was found. */
  positives?: number[];
  /** Absent when the question has no gold chunk: recall is undefined there, not 0. */
  recall?: Record<string, number>;
}

export interface AnswerAggregate {
  n: number;
  em: number;
  f1: number;
  acc: number;
  keyword: number;
  avgOutputLength: number;
  latencyMs: number;
  contextTokens: number;
  /** Standard errors of the means of F1 and ACC. */
  se: { f1: number; acc: number };
  /** Mean recall over the questions that have a gold chunk (absent when none has). */
  recall?: Record<string, number>;
  /** RAG only: how many of the n questions have a gold chunk (the recall means are over these). */
  goldChunks?: number;
}

export interface AnswerScenario {
  description: string;
  reader: "base model (no adapter)" | "CLaRa generator";
  retriever?: "bm25" | "clara";
  rows: AnswerRow[];
  aggregate: { overall: AnswerAggregate; byCategory: Partial<Record<QaCategory, AnswerAggregate>> };
}

export const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
function se(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1) / xs.length);
}

function aggregateRows(rows: AnswerRow[]): AnswerAggregate {
  const agg: AnswerAggregate = {
    n: rows.length,
    em: mean(rows.map((r) => r.em)),
    f1: mean(rows.map((r) => r.f1)),
    acc: mean(rows.map((r) => r.acc)),
    keyword: mean(rows.map((r) => r.keyword)),
    avgOutputLength: mean(rows.map((r) => r.words)),
    latencyMs: mean(rows.map((r) => r.latencyMs)),
    contextTokens: mean(rows.map((r) => r.contextTokens)),
    se: { f1: se(rows.map((r) => r.f1)), acc: se(rows.map((r) => r.acc)) },
  };
  if (rows.some((r) => r.positives)) {
    const gold = rows.filter((r) => r.recall);
    agg.goldChunks = gold.length;
    if (gold.length) agg.recall = Object.fromEntries(RECALL_KS.map((k) => [`@${k}`, mean(gold.map((r) => r.recall![`@${k}`]))]));
  }
  return agg;
}

export function aggregate(rows: AnswerRow[]): AnswerScenario["aggregate"] {
  const byCategory: Partial<Record<QaCategory, AnswerAggregate>> = {};
  for (const c of QA_CATEGORIES) {
    const rs = rows.filter((r) => r.category === c);
    if (rs.length) byCategory[c] = aggregateRows(rs);
  }
  return { overall: aggregateRows(rows), byCategory };
}

function score(q: QaItem, prediction: string, extra: Omit<AnswerRow, "id" | "category" | "question" | "reference" | "prediction" | "em" | "f1" | "acc" | "keyword" | "words">): AnswerRow {
  const gold = q.reference_answer;
  return {
    id: q.id,
    category: q.category,
    question: q.question,
    reference: gold,
    prediction,
    em: exactMatch(prediction, gold) ? 1 : 0,
    f1: f1Score(prediction, gold),
    acc: coverExactMatch(prediction, gold) ? 1 : 0,
    keyword: q.keywords.length ? keywordMatch(prediction, q.keywords) : 0,
    words: pySplit(prediction).length,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------
// Readers

/** Chat-template token ids of a system + user turn (plain text if the model has no template). */
function chatIds(clara: ClaraModel, system: string, user: string): number[] {
  const tok = clara.model.tokenizer;
  let text: string;
  try {
    text = tok.applyChatTemplate(
      [
        { role: "system", content: system },
        { role: "user", content: user },
      ],
      { addGenerationPrompt: true },
    );
  } catch (e) {
    if (!(e instanceof ClaraError) || e.code !== "E_TOKENIZER") throw e;
    text = `${system}\n\n${user}\nAnswer:`;
  }
  return tok.encode(text);
}

export type Resolved = ScenarioOptions & { k: number; maxNewTokens: number; batchSize: number; compressionChunks: "first-per-section" | "all" };

/**
 * Runs `fn` on batches of `items`; each result gets its batch's wall time / batch size. With
 * `length`, items of similar length share a batch, longest first (results still come back in the
 * items' order): a batch is left-padded to its longest prompt and runs until its longest answer
 * ends, so mixing a 300-token prompt with 1,300-token ones costs the short one the long one's
 * time. Longest first, the short remainder batch holds the shortest items, which minimises the
 * sum of the batches' longest lengths.
 */
export async function batched<T, R>(items: T[], size: number, fn: (batch: T[]) => Promise<R[]>, length?: (item: T) => number): Promise<Array<{ value: R; ms: number }>> {
  const order = items.map((_, i) => i);
  if (length) {
    const lengths = items.map(length);
    order.sort((a, b) => lengths[b] - lengths[a] || a - b);
  }
  const out: Array<{ value: R; ms: number }> = new Array(items.length);
  for (let i = 0; i < order.length; i += size) {
    const slots = order.slice(i, i + size);
    const t0 = performance.now();
    const values = await fn(slots.map((j) => items[j]));
    const ms = (performance.now() - t0) / slots.length;
    slots.forEach((j, b) => (out[j] = { value: values[b], ms }));
  }
  return out;
}

/** The base model (no adapter), greedy, through the cache: one answer per {system, user}. */
async function baseAnswers(clara: ClaraModel, turns: Array<{ system: string; user: string }>, o: Resolved) {
  const ids = turns.map((t) => chatIds(clara, t.system, t.user));
  const keys = ids.map((x) => `${clara.model.fingerprint()}|${o.maxNewTokens}|${x.join(",")}`);
  const cached = keys.map((k) => o.cache?.get(k));
  const missing = [...new Set(keys.filter((_, i) => !cached[i]))];
  const fresh = new Map<string, { text: string; ms: number; promptTokens: number }>();
  const idsOf = new Map(keys.map((k, i) => [k, ids[i]]));
  const done = await batched(
    missing,
    o.batchSize,
    async (batch) => {
      const g = await clara.model.generate(batch.map((k) => idsOf.get(k)!), { maxTokens: o.maxNewTokens, temperature: 0 });
      return g.texts.map((t) => t.trim());
    },
    (k) => idsOf.get(k)!.length,
  );
  done.forEach(({ value, ms }, i) => {
    const r = { text: value, ms, promptTokens: idsOf.get(missing[i])!.length };
    fresh.set(missing[i], r);
    o.cache?.set(missing[i], r);
  });
  return keys.map((k, i) => (cached[i] ? { ...cached[i]!, cached: true } : { ...fresh.get(k)!, cached: false }));
}

/** The CLaRa generator reading compressed chunks ([k, n, H] per question). */
async function compressedAnswers(clara: ClaraModel, questions: string[], selected: Tensor[], o: Resolved) {
  const items = questions.map((q, i) => ({ q: esc(q), sel: selected[i] }));
  return batched(items, o.batchSize, (batch) =>
    clara.generateFromCompressed(
      batch.map((b) => b.q),
      batch.map((b) => b.sel),
      { maxTokens: o.maxNewTokens, batchSize: batch.length },
    ),
  );
}

export function resolved(o: ScenarioOptions): Resolved {
  return { ...o, k: o.k ?? 5, maxNewTokens: o.maxNewTokens ?? 64, batchSize: Math.max(1, Math.floor(o.batchSize ?? 8)), compressionChunks: o.compressionChunks ?? "first-per-section" };
}

// ---------------------------------------------------------------------------------------
// Scenario 1: zero-shot

export async function zeroShotScenario(clara: ClaraModel, corpus: Corpus, options: ScenarioOptions = {}): Promise<AnswerScenario> {
  const o = resolved(options);
  const answers = await baseAnswers(clara, corpus.questions.map((q) => ({ system: ZERO_SHOT_SYSTEM, user: esc(q.question) })), o);
  const rows = corpus.questions.map((q, i) => {
    const a = answers[i];
    return score(q, a.text, { latencyMs: a.ms, contextTokens: 0, promptTokens: a.promptTokens, ...(a.cached ? { cached: true } : {}) });
  });
  return { description: "The question alone, no context, base model without adapters.", reader: "base model (no adapter)", rows, aggregate: aggregate(rows) };
}

// ---------------------------------------------------------------------------------------
// Scenario 2: RAG over the PDF

export interface RetrievalSummary {
  retriever: "bm25" | "clara";
  description: string;
  /**
   * recall@k of the evidence chunks, over the questions that have one (goldChunks of them);
   * empty when none has. A question without a gold chunk has no recall to measure: counting it
   * as 0 would hide a broken extraction or question file behind a low score.
   */
  overall: Record<string, number>;
  byCategory: Partial<Record<QaCategory, Record<string, number>>>;
  goldChunks: number;
  /** Ids of the questions left out of recall for want of a gold chunk. */
  withoutGold: string[];
  latencyMs: number;
}

export interface RagResult {
  k: number;
  retrieval: Partial<Record<"bm25" | "clara", RetrievalSummary>>;
  variants: Record<string, AnswerScenario>;
  /** Why a variant is missing (e.g. no query reasoner before stage 3). */
  skipped: string[];
}

interface Ranking {
  ranked: number[][];
  ms: number[];
}

/** recall@k for each k, or undefined for a question without a gold chunk. */
function recallOf(ranked: number[], positives: number[]): Record<string, number> | undefined {
  if (positives.length === 0) return undefined;
  return Object.fromEntries(RECALL_KS.map((k) => [`@${k}`, recallAtK(ranked, positives, k)]));
}

function summarise(retriever: "bm25" | "clara", description: string, corpus: Corpus, r: Ranking): RetrievalSummary {
  const rec = corpus.questions.map((_, i) => recallOf(r.ranked[i], corpus.positives[i]));
  const avg = (idx: number[]) => (idx.length ? Object.fromEntries(RECALL_KS.map((k) => [`recall@${k}`, mean(idx.map((i) => rec[i]![`@${k}`]))])) : {});
  const gold = corpus.questions.map((_, i) => i).filter((i) => rec[i]);
  const byCategory: RetrievalSummary["byCategory"] = {};
  for (const c of QA_CATEGORIES) {
    const idx = gold.filter((i) => corpus.questions[i].category === c);
    if (idx.length) byCategory[c] = avg(idx);
  }
  return {
    retriever,
    description,
    overall: avg(gold),
    byCategory,
    goldChunks: gold.length,
    withoutGold: corpus.questions.filter((_, i) => !rec[i]).map((q) => q.id),
    latencyMs: mean(r.ms),
  };
}

export async function ragScenario(clara: ClaraModel, corpus: Corpus, compressed: CompressedChunks, options: ScenarioOptions = {}): Promise<RagResult> {
  const o = resolved(options);
  const N = corpus.chunks.length;
  const k = Math.min(o.k, N);
  const depth = Math.min(N, Math.max(k, ...RECALL_KS));
  const rankings: Partial<Record<"bm25" | "clara", Ranking>> = {};
  const skipped: string[] = [];

  const timer = o.timer ?? new PhaseTimer();

  rankings.bm25 = await timer.time("retrieval bm25", () => {
    const bm25 = new Bm25(corpus.chunks.map((c) => c.text));
    const r: Ranking = { ranked: [], ms: [] };
    for (const q of corpus.questions) {
      const t0 = performance.now();
      r.ranked.push(bm25.rank(q.question, depth));
      r.ms.push(performance.now() - t0);
    }
    return r;
  });
  if (await clara.hasAdapter(ADAPTERS.queryReasoner)) {
    rankings.clara = await timer.time("retrieval clara", async () => {
      const r: Ranking = { ranked: [], ms: [] };
      for (const q of corpus.questions) {
        const t0 = performance.now();
        const got = await clara.retrieve([esc(q.question)], [compressed.vectors], depth);
        r.ranked.push(got.indices[0]);
        r.ms.push(performance.now() - t0);
      }
      return r;
    });
  } else skipped.push("clara retrieval: the checkpoint has no query_reasoner adapter (stage 3 trains it)");

  const retrieval: RagResult["retrieval"] = {};
  if (rankings.bm25) retrieval.bm25 = summarise("bm25", "Okapi BM25 (k1 1.2, b 0.75) over the chunk text", corpus, rankings.bm25);
  if (rankings.clara) retrieval.clara = summarise("clara", "query reasoner vs compressed chunks, cosine", corpus, rankings.clara);

  const variants: Record<string, AnswerScenario> = {};
  for (const retriever of ["clara", "bm25"] as const) {
    const ranking = rankings[retriever];
    if (!ranking) continue;
    for (const reader of ["compressed", "raw"] as const) {
      const tops = corpus.questions.map((_, i) => ranking.ranked[i].slice(0, k));
      const answers: Array<{ text: string; ms: number; promptTokens?: number; cached?: boolean }> = await timer.time(`rag ${retriever}+${reader}`, async () => {
        if (reader === "compressed") {
          const selected = tops.map((top) => concatRows(top.map((j) => sliceRows(compressed.vectors, j, 1)))); // [k, n, H] each
          return (await compressedAnswers(clara, corpus.questions.map((q) => q.question), selected, o)).map((a) => ({ text: a.value, ms: a.ms }));
        }
        return baseAnswers(
          clara,
          corpus.questions.map((q, i) => ({
            system: SYSTEM_PROMPTS.answer,
            user: `Background:\n${tops[i].map((j) => esc(corpus.chunks[j].text)).join("\n\n")}\n\nQuestion:${esc(q.question)}`,
          })),
          o,
        );
      });
      const rows = corpus.questions.map((q, i) => {
        const a = answers[i];
        const top = tops[i];
        const contextTokens = reader === "compressed" ? clara.nMem * top.length : top.reduce((n, j) => n + corpus.chunks[j].tokens, 0);
        const recall = recallOf(ranking.ranked[i], corpus.positives[i]);
        return score(q, a.text, {
          latencyMs: ranking.ms[i] + a.ms,
          retrievalMs: ranking.ms[i],
          contextTokens,
          ...(a.promptTokens !== undefined ? { promptTokens: a.promptTokens } : {}),
          ...(a.cached ? { cached: true } : {}),
          retrieved: top,
          positives: corpus.positives[i],
          ...(recall ? { recall } : {}),
        });
      });
      variants[`${retriever}+${reader}`] = {
        description:
          (retriever === "clara" ? "Top-k by the query reasoner over compressed chunks; " : "Top-k by BM25 over the chunk text; ") +
          (reader === "compressed" ? "answered by the CLaRa generator from the compressed chunks." : "answered by the base model (no adapter) from the raw chunk text."),
        reader: reader === "compressed" ? "CLaRa generator" : "base model (no adapter)",
        retriever,
        rows,
        aggregate: aggregate(rows),
      };
    }
  }
  return { k, retrieval, variants, skipped };
}
