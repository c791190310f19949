// bench:index — the index's costs and savings: documents compressed per second while
// building, searches per second over 10 000 compressed documents, answer latency from the index
// vs the same base model reading the raw text of the same documents, and bytes on disk per
// document vs the raw text. SmolLM2-135M when present (a tiny model otherwise); untrained
// adapters: speed and size do not depend on training. Writes results/bench/index.json.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraIndex, ClaraModel, readPretrainRecords } from "../lib";
import { memoryInfo, packageRoot, tensor } from "../lib/runtime";
// The 10k-vector search is timed at the addon's call, below the public API.
import { SYSTEM_PROMPTS } from "../lib/clara/templates";
import { Random } from "../lib/data/random";
import { nativeModel } from "../lib/model/model";
import { writeTinyModel } from "../tools/tiny-model";
import { machine, writeBenchResult } from "./machine";

const DOCS = Number(process.env.INDEX_DOCS ?? 64);
const SEARCH_DOCS = 10_000;
const QUESTIONS = 8;
const K = 5;

async function main() {
  const smol = path.join(packageRoot(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  const records = readPretrainRecords(path.join(packageRoot(), "example", "pretrain.jsonl")).records.filter((r) => r.dataType === "qa");
  let modelPath = smol;
  if (!fs.existsSync(smol)) {
    modelPath = fs.mkdtempSync(path.join(os.tmpdir(), "clara-bench-"));
    writeTinyModel(modelPath, records.map((r) => r.doc), { hiddenSize: 128, layers: 4, heads: 4, kvHeads: 2, merges: 800 });
  }
  const clara = await ClaraModel.create(modelPath, { compressionRate: 16, docMaxLength: 256, seed: 1 });
  await clara.model.copyAdapter("compressor", "query_reasoner");
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-index-bench-"));
  const docs = records.slice(0, DOCS).map((r, i) => ({ id: `doc-${i}`, text: r.doc }));

  let t0 = performance.now();
  const index = await ClaraIndex.build(clara, docs, path.join(work, "idx"), { batchSize: 8 });
  const buildSeconds = (performance.now() - t0) / 1000;
  const vectorBytes = fs.statSync(path.join(work, "idx", "vectors.npz")).size;
  const f16 = await ClaraIndex.build(clara, docs.slice(0, 8), path.join(work, "idx16"), { dtype: "float16" });
  const f16PerDoc = fs.statSync(path.join(work, "idx16", "vectors.npz")).size / 8;
  await f16.close();
  const rawBytes = docs.reduce((a, d) => a + Buffer.byteLength(d.text), 0);

  // Search speed over 10 000 documents: random vectors of the index's shape (content does not change the cost).
  const D = clara.nMem * clara.model.config.hidden_size;
  const rng = new Random(3);
  const big = new Float32Array(SEARCH_DOCS * D).map(() => rng.float() - 0.5);
  await nativeModel(clara.model).indexAdd("bench-10k", tensor("float32", [SEARCH_DOCS, D], big));
  const queries = tensor("float32", [QUESTIONS, D], new Float32Array(QUESTIONS * D).map(() => rng.float() - 0.5));
  await nativeModel(clara.model).indexSearch("bench-10k", queries, K); // warm-up
  t0 = performance.now();
  const rounds = 5;
  for (let i = 0; i < rounds; i++) await nativeModel(clara.model).indexSearch("bench-10k", queries, K);
  const searchSeconds = (performance.now() - t0) / 1000;
  await nativeModel(clara.model).indexDrop("bench-10k");

  // Answer latency: from the index vs the same base model reading the same k documents as text.
  const questions = records.slice(0, QUESTIONS).map((r) => r.questions[0]);
  const fromIndex: number[] = [];
  const fromText: number[] = [];
  let compressedTokens = 0;
  let textTokens = 0;
  for (const q of questions) {
    t0 = performance.now();
    const a = await index.answer(q, { k: K, maxTokens: 32 });
    fromIndex.push(performance.now() - t0);
    const tok = clara.model.tokenizer;
    const background = a.sources.map((s) => s.text).join("\n\n");
    const prompt = tok.encode(
      tok.applyChatTemplate(
        [
          { role: "system", content: SYSTEM_PROMPTS.answer },
          { role: "user", content: `Background:\n${background}\n\nQuestion:${q}` },
        ],
        { addGenerationPrompt: true },
      ),
    );
    compressedTokens += clara.templates.answerPrompt(q, K).length;
    textTokens += prompt.length;
    t0 = performance.now();
    await clara.model.generate([prompt], { maxTokens: 32 });
    fromText.push(performance.now() - t0);
  }
  const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
  const median = (xs: number[]) => percentile(xs, 0.5);

  // Under load, as a Node server: 200 calls at once (answers, searches and bad inputs) on one
  // index and one model; they queue on the MLX thread.
  const CONCURRENT = 200;
  const { peak: peakBefore } = await memoryInfo();
  const latencies: number[] = [];
  let failed = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENT }, async (_, i) => {
      const start = performance.now();
      const q = questions[i % questions.length];
      try {
        if (i % 10 === 9) await index.answer(q, { k: 0 }); // a bad request
        else if (i % 2 === 0) await index.answer(q, { k: K, maxTokens: 8 });
        else await index.search([q], K);
      } catch {
        failed++;
      }
      latencies.push(performance.now() - start);
    }),
  );
  const loadSeconds = (performance.now() - t0) / 1000;
  const { peak: peakAfter } = await memoryInfo();
  const record = {
    bench: "index",
    machine: await machine(),
    model: path.basename(modelPath),
    compressionRate: 16,
    nMem: clara.nMem,
    build: { documents: DOCS, seconds: +buildSeconds.toFixed(2), docsPerSecond: +(DOCS / buildSeconds).toFixed(2) },
    search: { documents: SEARCH_DOCS, dim: D, queriesPerSecond: +((rounds * QUESTIONS) / searchSeconds).toFixed(1), k: K },
    answerLatencyMs: {
      fromIndex: +median(fromIndex).toFixed(0),
      fromRawText: +median(fromText).toFixed(0),
      ratio: +(median(fromIndex) / median(fromText)).toFixed(2),
      promptTokensCompressed: Math.round(compressedTokens / QUESTIONS),
      promptTokensRawText: Math.round(textTokens / QUESTIONS),
    },
    underLoad: {
      concurrentCalls: CONCURRENT,
      mix: "45% answer (maxTokens 8), 45% search, 10% bad input (k = 0)",
      failedAsExpected: failed === CONCURRENT / 10,
      seconds: +loadSeconds.toFixed(1),
      latencyMs: { p50: +percentile(latencies, 0.5).toFixed(0), p90: +percentile(latencies, 0.9).toFixed(0), p99: +percentile(latencies, 0.99).toFixed(0) },
      peakMemoryMiB: { before: +(peakBefore / 2 ** 20).toFixed(0), after: +(peakAfter / 2 ** 20).toFixed(0) },
    },
    disk: {
      rawTextBytesPerDoc: Math.round(rawBytes / DOCS),
      float32BytesPerDoc: Math.round(vectorBytes / DOCS),
      float16BytesPerDoc: Math.round(f16PerDoc),
      note: "a compressed document is n×H numbers whatever its length: ρ is nominal against docMaxLength tokens, not against the text's bytes",
    },
  };
  await index.close();
  await clara.dispose();
  fs.rmSync(work, { recursive: true, force: true });
  console.log(JSON.stringify(record, null, 2));
  console.log(`wrote ${writeBenchResult("index", record)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
