// Held-out question answering on records whose documents training never saw: does a model answer
// from a document's compressed form, against the obvious baselines (the same base reading the full
// text, and with no context)? Each mean comes with its standard error. bench:learning draws its
// learning curve with it and the demo's report its learning check.

import type { PretrainRecord } from "../data/records";
import { sliceRows, type ClaraModel } from "../clara/clara-model";
import { SYSTEM_PROMPTS } from "../clara/templates";
import type { Tensor } from "../tensor";
import { coverExactMatch, f1Score } from "./metrics";

/** One held-out question: asked after its record's earlier pairs, as stage 1 trains. */
export interface HeldOutProbe {
  doc: string;
  question: string;
  answer: string;
  earlier: { questions: string[]; answers: string[] };
}

export interface HeldOutScores {
  n: number;
  f1: number;
  f1Se: number;
  coverEm: number;
  coverEmSe: number;
}

export interface HeldOutAnswers {
  texts: string[];
  scores: HeldOutScores;
  /** Per-question F1, for paired comparisons. */
  perQuestionF1: number[];
  /** Mean prompt length in tokens, and the seconds generation took. */
  promptTokens: number;
  seconds: number;
  /** How distinct the compressed documents are (set by answerFromCompressed). */
  memory?: MemoryDiversity;
}

/**
 * Collapse diagnostics of compressed documents [N, n, H]: a compressor whose memories all point
 * the same way gives the generator nothing to read, whatever its answer loss says.
 */
export interface MemoryDiversity {
  /** Mean cosine between two documents' flattened memories (1: every document compresses alike). */
  betweenDocuments: number;
  /** Mean cosine between the first and the last memory slot of one document (1: one slot repeated). */
  firstLastSlot: number;
}

export function memoryDiversity(compressed: Tensor): MemoryDiversity {
  const [docs, slots, hidden] = compressed.shape;
  if (compressed.dtype !== "float32" || compressed.shape.length !== 3) throw new Error(`memoryDiversity wants float32 [N, n, H], got ${compressed.dtype} [${compressed.shape}]`);
  const x = compressed.data as Float32Array;
  const width = slots * hidden;
  const cos = (a: number, b: number, len: number) => {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < len; i++) {
      dot += x[a + i] * x[b + i];
      na += x[a + i] * x[a + i];
      nb += x[b + i] * x[b + i];
    }
    return dot / Math.sqrt(Math.max(na * nb, 1e-30));
  };
  let between = 0, pairs = 0;
  for (let i = 0; i < docs; i++) for (let j = i + 1; j < docs; j++, pairs++) between += cos(i * width, j * width, width);
  let firstLast = 0;
  for (let i = 0; i < docs; i++) firstLast += cos(i * width, i * width + (slots - 1) * hidden, hidden);
  return { betweenDocuments: round(pairs ? between / pairs : 1), firstLastSlot: round(docs ? firstLast / docs : 1) };
}

/**
 * Mean stage-1 answer CE of `records` with each record's own compressed document and with the
 * document `offset` records on (a rotation: each document is the wrong one once). The two are
 * equal when the generator does not read its memory slots, however low the loss.
 */
export async function readingGap(
  trainer: { lossOn(records: PretrainRecord[]): Promise<{ parts: Record<string, number> }> },
  records: PretrainRecord[],
  offset: number,
): Promise<{ own: number; other: number }> {
  const swapped = records.map((r, i) => ({ ...r, doc: records[(i + offset) % records.length].doc }));
  return { own: (await trainer.lossOn(records)).parts.ce, other: (await trainer.lossOn(swapped)).parts.ce };
}

/** The first `questionsPerDoc` questions of each QA record. */
export function heldOutProbes(records: readonly PretrainRecord[], questionsPerDoc: number): HeldOutProbe[] {
  return records
    .filter((r) => r.dataType === "qa")
    .flatMap((r) =>
      r.questions.slice(0, questionsPerDoc).map((question, j) => ({
        doc: r.doc,
        question,
        answer: r.answers[j],
        earlier: { questions: r.questions.slice(0, j), answers: r.answers.slice(0, j) },
      })),
    );
}

/** Mean and standard error of the mean. */
export function meanSe(xs: readonly number[]): [number, number] {
  const n = xs.length;
  if (n === 0) return [0, 0];
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const variance = n > 1 ? xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return [round(mean), round(Math.sqrt(variance / n))];
}

/** The paired difference a - b of per-question scores: its mean and standard error. */
export function pairedGap(a: readonly number[], b: readonly number[]): { mean: number; se: number } {
  const [mean, se] = meanSe(a.map((x, i) => x - b[i]));
  return { mean, se };
}

const round = (x: number) => +x.toFixed(4);

function scored(texts: string[], golds: readonly string[], promptTokens: number, seconds: number): HeldOutAnswers {
  const perQuestionF1 = texts.map((p, i) => f1Score(p, golds[i]));
  const [f1, f1Se] = meanSe(perQuestionF1);
  const [coverEm, coverEmSe] = meanSe(texts.map((p, i) => Number(coverExactMatch(p, golds[i]))));
  return { texts, perQuestionF1, scores: { n: texts.length, f1, f1Se, coverEm, coverEmSe }, promptTokens: round(promptTokens), seconds: round(seconds) };
}

const firstLine = (s: string) => s.trim().split("\n")[0].trim();

/** Only an answer's first line is scored: generation stops at a line end (and the tokenizer's stop tokens). */
function stopAtLineEnd(clara: ClaraModel): number[] {
  const tok = clara.model.tokenizer;
  const newline = tok.encode("\n");
  return [...tok.stopTokenIds, ...(newline.length === 1 ? newline : [])];
}

/** Compresses each distinct text once (questions share documents): each text's [1, n, H], and all of them [N, n, H]. */
export async function compressDistinct(clara: ClaraModel, texts: readonly string[]): Promise<{ byText: Map<string, Tensor>; all: Tensor }> {
  const distinct = [...new Set(texts)];
  const all = await clara.compressDocuments(distinct, { batchSize: 8 });
  return { byText: new Map(distinct.map((t, i) => [t, sliceRows(all, i, 1)])), all };
}

/** Stage 1's QA probe: each question asked after its record's earlier pairs, the compressed document in the slot. */
export async function answerFromCompressed(clara: ClaraModel, probes: readonly HeldOutProbe[], maxTokens: number): Promise<HeldOutAnswers> {
  // Several questions share a document: each document is compressed once.
  const { byText, all } = await compressDistinct(clara, probes.map((p) => p.doc));
  const prompts = probes.map((p) => clara.templates.qaProbePrompt(p.question, p.earlier));
  const t0 = performance.now();
  const outs = await clara.generateFromPrompts(
    prompts,
    probes.map((p) => byText.get(p.doc)!),
    { maxTokens, batchSize: 10, stopTokens: stopAtLineEnd(clara) },
  );
  const promptTokens = prompts.reduce((a, p) => a + p.length, 0) / prompts.length;
  return { ...scored(outs.map(firstLine), probes.map((p) => p.answer), promptTokens, (performance.now() - t0) / 1000), memory: memoryDiversity(all) };
}

/**
 * The base model without adapters, with the stage-2/3 answer prompt, reading each question's
 * `background` text (or nothing, when it has none).
 */
export async function answerFromText(
  clara: ClaraModel,
  items: ReadonlyArray<{ question: string; answer: string; background?: string }>,
  maxTokens: number,
): Promise<HeldOutAnswers> {
  const tok = clara.model.tokenizer;
  const prompts = items.map((it) =>
    tok.encode(
      tok.applyChatTemplate(
        [
          { role: "system", content: SYSTEM_PROMPTS.answer },
          { role: "user", content: it.background === undefined ? `Question:${it.question}` : `Background:\n${it.background}\n\nQuestion:${it.question}` },
        ],
        { addGenerationPrompt: true },
      ),
    ),
  );
  const texts: string[] = [];
  const t0 = performance.now();
  for (let i = 0; i < prompts.length; i += 10) {
    const g = await clara.model.generate(prompts.slice(i, i + 10), { maxTokens, stopTokens: stopAtLineEnd(clara) });
    texts.push(...g.texts.map(firstLine));
  }
  const promptTokens = prompts.reduce((a, p) => a + p.length, 0) / prompts.length;
  return scored(texts, items.map((it) => it.answer), promptTokens, (performance.now() - t0) / 1000);
}

/** The stage-2/3 answer template: each question with its compressed documents ([k, n, H]) in the slots. */
export async function answerFromCompressedDocs(clara: ClaraModel, items: ReadonlyArray<{ question: string; answer: string; compressed: Tensor }>, maxTokens: number): Promise<HeldOutAnswers> {
  const t0 = performance.now();
  const outs = await clara.generateFromCompressed(
    items.map((it) => it.question),
    items.map((it) => it.compressed),
    { maxTokens, batchSize: 10, stopTokens: stopAtLineEnd(clara) },
  );
  const promptTokens = items.reduce((a, it) => a + clara.templates.answerPrompt(it.question, it.compressed.shape[0]).length, 0) / items.length;
  return scored(outs.map(firstLine), items.map((it) => it.answer), promptTokens, (performance.now() - t0) / 1000);
}
