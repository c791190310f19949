// Stage-2 and stage-3 records derived from stage-1 records, for when only stage-1 data exists
// (Apple's instruction-tuning and end-to-end files are not public; spec §3.2-3.3).
//
// Every QA pair of a "qa" record becomes a question whose gold document is that record's
// document. The other documents are distractors: distinct document texts drawn (seeded) from
// all the other records, "qa" and "paraphrase" alike. The gold document goes to a seeded random
// position. Stage 2 gets k documents (default 5) and answer = gold_answer = the QA answer (no
// teacher model here); stage 3 gets N candidates (default 20) and pos_index = [gold position].
//
// Everything is a pure function of the input and the seed: same input, same seed, same output.

import { ClaraError, invalidArgument } from "../errors";
import { Random, subSeed } from "./random";
import type { EndToEndRecord, InstructionRecord, PretrainRecord } from "./records";

export interface DeriveOptions {
  /** Seed of the random choices (distractors, gold position, question choice). Default 42. */
  seed?: number;
  /** Use at most this many QA pairs of each record, chosen at random (order kept). Default: all. */
  questionsPerDoc?: number;
  /** Stop after this many derived records. Default: no limit. */
  limit?: number;
}

/** Stage-2 records: each question with its gold document among `k` documents (default 5). */
export function deriveInstructionRecords(pretrain: readonly PretrainRecord[], options: DeriveOptions & { k?: number } = {}): InstructionRecord[] {
  const k = options.k ?? 5;
  return deriveQuestions(pretrain, k, "k", "instruction", options).map((q) => ({
    question: q.question,
    docs: q.docs,
    answer: q.answer,
    goldAnswer: q.answer,
  }));
}

/** Stage-3 records: each question with its gold document among `candidates` documents (default 20). */
export function deriveEndToEndRecords(pretrain: readonly PretrainRecord[], options: DeriveOptions & { candidates?: number } = {}): EndToEndRecord[] {
  const n = options.candidates ?? 20;
  return deriveQuestions(pretrain, n, "candidates", "end_to_end", options).map((q) => ({
    question: q.question,
    docs: q.docs,
    answer: q.answer,
    posIndex: [q.gold],
  }));
}

interface DerivedQuestion {
  question: string;
  answer: string;
  docs: string[];
  /** Position of the gold document in `docs`. */
  gold: number;
}

function deriveQuestions(pretrain: readonly PretrainRecord[], size: number, sizeName: string, label: string, options: DeriveOptions): DerivedQuestion[] {
  positiveInt(sizeName, size);
  const seed = options.seed ?? 42;
  if (!Number.isInteger(seed)) throw invalidArgument("seed", "an integer", seed);
  if (options.questionsPerDoc !== undefined) positiveInt("questionsPerDoc", options.questionsPerDoc);
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 0)) throw invalidArgument("limit", "a non-negative integer", options.limit);
  if (!Array.isArray(pretrain)) throw invalidArgument("pretrain", "an array of stage-1 records", pretrain);

  // The distractor pool: every distinct document text, in order of first appearance.
  const pool: string[] = [];
  const poolIndex = new Map<string, number>();
  for (const r of pretrain) {
    if (!poolIndex.has(r.doc)) {
      poolIndex.set(r.doc, pool.length);
      pool.push(r.doc);
    }
  }
  if (!pretrain.some((r) => r.dataType === "qa" && r.questions.length > 0)) {
    throw new ClaraError("E_INVALID_ARGUMENT", `Cannot derive questions: the stage-1 records have no "qa" record with questions.`, { field: "pretrain" });
  }
  if (pool.length < size) {
    throw new ClaraError(
      "E_INVALID_ARGUMENT",
      `Cannot build records of ${size} documents: the stage-1 records hold only ${pool.length} distinct document${pool.length === 1 ? "" : "s"} (the gold document plus ${size - 1} distractors are needed). Use more stage-1 records or a smaller ${sizeName}.`,
      { field: sizeName },
    );
  }

  const rng = new Random(subSeed(seed, label));
  const out: DerivedQuestion[] = [];
  const limit = options.limit ?? Infinity;
  for (const r of pretrain) {
    if (out.length >= limit) break;
    if (r.dataType !== "qa") continue;
    const n = Math.min(r.questions.length, r.answers.length);
    let chosen = Array.from({ length: n }, (_, i) => i);
    if (options.questionsPerDoc !== undefined && options.questionsPerDoc < n) {
      chosen = rng.sample(n, options.questionsPerDoc).sort((a, b) => a - b);
    }
    const goldIndex = poolIndex.get(r.doc)!;
    for (const qi of chosen) {
      if (out.length >= limit) break;
      // size-1 distinct pool indices other than the gold one: draw from pool.length-1 and skip it.
      const docs = rng.sample(pool.length - 1, size - 1).map((i) => pool[i >= goldIndex ? i + 1 : i]);
      const gold = rng.int(size);
      docs.splice(gold, 0, r.doc);
      out.push({ question: r.questions[qi], answer: r.answers[qi], docs, gold });
    }
  }
  return out;
}

function positiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw invalidArgument(name, "a positive integer", v);
}
