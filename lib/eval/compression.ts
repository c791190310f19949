// Scenario 3, compression quality: a chunk per section (or every chunk) compressed to n memory
// vectors, then reconstructed by the generator with the paraphrase prompt. Reported per chunk,
// per section and overall: the compressor's MSE between mean memory-token and mean document-
// token states (spec §1.4, the training term), the cosine similarity of the base model's
// mean-pooled final states of original and reconstruction, ROUGE-L and token F1.

import { sliceRows, type ClaraModel } from "../clara/clara-model";
import { rougeL, tokenF1 } from "./metrics";
import { batched, esc, mean, resolved, type CompressedChunks, type Corpus, type Resolved, type ScenarioOptions } from "./scenarios";

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

/**
 * Mean over the positions of each text of the base model's final-norm states: [H] each (empty
 * for a text with no tokens). Texts of similar length are run together; the base model's states
 * do not depend on the checkpoint, so they are kept in `cache` for the other stages.
 */
async function meanEmbeddings(clara: ClaraModel, texts: string[], o: Resolved): Promise<Float64Array[]> {
  const cache = o.embeddingCache ?? new Map<string, Float64Array>();
  const key = (t: string) => `${clara.model.fingerprint()}|${t}`;
  const todo = [...new Set(texts.filter((t) => !cache.has(key(t))))];
  const seqs = new Map(todo.map((t) => [t, clara.model.tokenizer.encode(esc(t))]));
  for (const t of todo) if (seqs.get(t)!.length === 0) cache.set(key(t), new Float64Array(0));
  const run = todo.filter((t) => seqs.get(t)!.length > 0);
  const states = await batched(
    run,
    o.batchSize,
    async (batch) => {
      const h = await clara.model.hidden(batch.map((t) => seqs.get(t)!)); // [B, L, H], left-padded
      const [, L, H] = h.shape;
      const data = h.data as Float32Array;
      return batch.map((t, b) => {
        const n = seqs.get(t)!.length;
        const v = new Float64Array(H);
        for (let p = L - n; p < L; p++) for (let d = 0; d < H; d++) v[d] += data[(b * L + p) * H + d];
        for (let d = 0; d < H; d++) v[d] /= n;
        return v;
      });
    },
    (t) => seqs.get(t)!.length,
  );
  run.forEach((t, i) => cache.set(key(t), states[i].value));
  return texts.map((t) => cache.get(key(t))!);
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
  // Chunks of similar length share a batch: its answer budget follows its longest chunk.
  const reconstructions = await batched(
    chosen,
    o.batchSize,
    (batch) => {
      const maxTokens = o.reconstructionMaxTokens ?? Math.min(clara.docMaxLength + 32, Math.ceil(1.25 * Math.max(...batch.map((c) => c.tokens))) + 16);
      return clara.generateFromPrompts(
        batch.map(() => prompt),
        batch.map((c) => sliceRows(compressed.vectors, c.index, 1)),
        { maxTokens, batchSize: batch.length },
      );
    },
    (c) => c.tokens,
  );
  const originals = await meanEmbeddings(clara, chosen.map((c) => c.text), o);
  const rebuilt = await meanEmbeddings(clara, reconstructions.map((r) => r.value), o);
  const rows: CompressionRow[] = [];
  for (let i = 0; i < chosen.length; i++) {
    const c = chosen[i];
    const { value: reconstruction, ms } = reconstructions[i];
    rows.push({
      chunk: c.index,
      section: c.section,
      pages: c.pages,
      tokens: c.tokens,
      memoryTokens: clara.nMem,
      mse: compressed.mse[c.index],
      cosine: cosine(originals[i], rebuilt[i]),
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
