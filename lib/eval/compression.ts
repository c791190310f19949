// Scenario 3, compression quality: a chunk per section (or every chunk) compressed to n memory
// vectors, then reconstructed by the generator with the paraphrase prompt. Reported per chunk,
// per section and overall: the compressor's MSE between mean memory-token and mean document-
// token states (spec §1.4, the training term), the cosine similarity of the base model's
// mean-pooled final states of original and reconstruction, ROUGE-L and token F1.

import { sliceRows, type ClaraModel } from "../clara/clara-model";
import { rougeL, tokenF1 } from "./metrics";
import { batched, esc, mean, resolved, type CompressedChunks, type Corpus, type ScenarioOptions } from "./scenarios";

export interface CompressionRow {
  chunk: number;
  section: string;
  pages: number[];
  tokens: number;
  memoryTokens: number;
  mse: number;
  cosine: number;
  rougeL: number;
  tokenF1: number;
  reconstruction: string;
  ms: number;
}

export interface CompressionMeans {
  n: number;
  mse: number;
  cosine: number;
  rougeL: number;
  tokenF1: number;
}

export interface CompressionResult {
  description: string;
  chunks: "first-per-section" | "all";
  rows: CompressionRow[];
  bySection: Record<string, CompressionMeans>;
  aggregate: CompressionMeans & { mseAllChunks: number; compressionRatio: number };
}

function meansOf(rows: CompressionRow[]): CompressionMeans {
  return { n: rows.length, mse: mean(rows.map((r) => r.mse)), cosine: mean(rows.map((r) => r.cosine)), rougeL: mean(rows.map((r) => r.rougeL)), tokenF1: mean(rows.map((r) => r.tokenF1)) };
}

/** Mean over the positions of each sequence of the base model's final-norm states: [H] each. */
async function meanEmbeddings(clara: ClaraModel, texts: string[]): Promise<Float64Array[]> {
  const seqs = texts.map((t) => clara.model.tokenizer.encode(esc(t)));
  const nonEmpty = seqs.map((s) => s.length > 0);
  const batch = seqs.filter((_, i) => nonEmpty[i]);
  const out: Float64Array[] = [];
  const h = batch.length ? await clara.model.hidden(batch) : null; // [B, L, H], left-padded
  let b = 0;
  for (let i = 0; i < seqs.length; i++) {
    if (!nonEmpty[i] || !h) {
      out.push(new Float64Array(0));
      continue;
    }
    const [, L, H] = h.shape;
    const data = h.data as Float32Array;
    const v = new Float64Array(H);
    for (let t = L - seqs[i].length; t < L; t++) for (let d = 0; d < H; d++) v[d] += data[(b * L + t) * H + d];
    for (let d = 0; d < H; d++) v[d] /= seqs[i].length;
    out.push(v);
    b++;
  }
  return out;
}

export function cosine(a: Float64Array, b: Float64Array): number {
  if (a.length === 0 || a.length !== b.length) return 0;
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return na > 0 && nb > 0 ? dot / Math.sqrt(na * nb) : 0;
}

export async function compressionScenario(clara: ClaraModel, corpus: Corpus, compressed: CompressedChunks, options: ScenarioOptions = {}): Promise<CompressionResult> {
  const o = resolved(options);
  let chosen = o.compressionChunks === "all" ? corpus.chunks : corpus.chunks.filter((c, i) => i === 0 || corpus.chunks[i - 1].sectionIndex !== c.sectionIndex);
  const cap = o.maxCompressionChunks;
  if (cap !== undefined && cap >= 1 && chosen.length > cap) chosen = Array.from({ length: cap }, (_, i) => chosen[Math.floor((i * chosen.length) / cap)]);
  const prompt = clara.templates.paraphrasePrompt(0);
  const reconstructions = await batched(chosen, o.batchSize, (batch) => {
    const maxTokens = o.reconstructionMaxTokens ?? Math.min(clara.docMaxLength + 32, Math.ceil(1.25 * Math.max(...batch.map((c) => c.tokens))) + 16);
    return clara.generateFromPrompts(
      batch.map(() => prompt),
      batch.map((c) => sliceRows(compressed.vectors, c.index, 1)),
      { maxTokens, batchSize: batch.length },
    );
  });
  const rows: CompressionRow[] = [];
  for (let i = 0; i < chosen.length; i++) {
    const c = chosen[i];
    const { value: reconstruction, ms } = reconstructions[i];
    const [a, b] = await meanEmbeddings(clara, [c.text, reconstruction]);
    rows.push({
      chunk: c.index,
      section: c.section,
      pages: c.pages,
      tokens: c.tokens,
      memoryTokens: clara.nMem,
      mse: compressed.mse[c.index],
      cosine: cosine(a, b),
      rougeL: rougeL(reconstruction, c.text),
      tokenF1: tokenF1(reconstruction, c.text),
      reconstruction,
      ms,
    });
  }
  const bySection: Record<string, CompressionMeans> = {};
  for (const s of [...new Set(rows.map((r) => r.section))]) bySection[s] = meansOf(rows.filter((r) => r.section === s));
  return {
    description: "Each chunk compressed to n memory vectors, then reconstructed by the generator with the paraphrase prompt.",
    chunks: o.compressionChunks,
    rows,
    bySection,
    aggregate: {
      ...meansOf(rows),
      mseAllChunks: mean(compressed.mse),
      compressionRatio: mean(corpus.chunks.map((c) => c.tokens)) / clara.nMem,
    },
  };
}
