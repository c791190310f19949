// ClaraIndex: documents compressed once, stored, reopened by a fresh model, searched with the
// query reasoner and answered from — with the same answers and sources as the stage-3
// pipeline that compresses the same documents on the fly.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError, ClaraIndex, ClaraModel } from "../lib";
import { memoryInfo } from "../lib/runtime";
import { meanRecallAtK } from "../lib/eval/metrics";
import { examplePretrain, makeTinyClaraBase } from "./helpers/tiny-clara";

let base: string;
let work: string;
let checkpoint: string;
const records = examplePretrain().slice(0, 30);
const docs = records.map((r, i) => ({ id: `doc-${i}`, text: r.doc, source: "example/pretrain.jsonl" }));
const questions = records.slice(0, 6).map((r) => r.questions[0]);

beforeAll(async () => {
  base = makeTinyClaraBase();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-index-"));
  // A stage-3-shaped model: query reasoner = compressor, all adapters with non-zero B.
  const clara = await ClaraModel.create(base, { compressionRate: 8, docMaxLength: 64, lora: { rank: 4, alpha: 8, dropout: 0 }, seed: 3 });
  await clara.model.copyAdapter("compressor", "query_reasoner");
  const params = await clara.model.parameters();
  const bump = params
    .filter(([k]) => k.endsWith(".b"))
    .map(([k, t], j) => [k, { ...t, data: (t.data as Float32Array).map((_, i) => 0.05 * Math.sin(i * 0.37 + j + (k.includes("query") ? 1 : 0))) }] as [string, typeof t]);
  await clara.model.setParameters(bump);
  checkpoint = path.join(work, "stage3.npz");
  await clara.save(checkpoint, { stage: "stage3", step: 0, complete: true });
  await clara.dispose();
});
afterAll(() => {
  for (const d of [base, work]) fs.rmSync(d, { recursive: true, force: true });
});

describe("ClaraIndex", () => {
  it("answers from a reopened index exactly as the on-the-fly pipeline does, and reports recall@5", async () => {
    const dir = path.join(work, "example.index");
    const builder = await ClaraModel.load(checkpoint);
    const progress: number[] = [];
    const built = await ClaraIndex.build(builder, docs, dir, { batchSize: 8, onProgress: (d) => progress.push(d) });
    expect(built.size).toBe(30);
    expect(progress.at(-1)).toBe(30);
    await builder.dispose();

    // A fresh model (fresh native state), as in a new process.
    const clara = await ClaraModel.load(checkpoint);
    const index = await ClaraIndex.open(dir, clara);
    const fromIndex = [];
    for (const q of questions) fromIndex.push(await index.answer(q, { k: 3, maxTokens: 8 }));

    const compressed = await clara.compressDocuments(docs.map((d) => d.text), { batchSize: 8 });
    const direct = await clara.retrieve(questions, questions.map(() => compressed), 3);
    const directAnswers = await clara.generateFromCompressed(questions, direct.selected, { maxTokens: 8 });
    fromIndex.forEach((a, i) => {
      expect(a.sources.map((s) => s.id)).toEqual(direct.indices[i].map((j) => `doc-${j}`));
      a.sources.forEach((s, j) => expect(s.score).toBeCloseTo(direct.scores[i][direct.indices[i][j]], 5));
      expect(a.answer).toBe(directAnswers[i]);
      expect(a.timings.totalMs).toBeGreaterThan(0);
    });
    const hits = await index.search(questions, 5);
    const recall = meanRecallAtK(hits.map((h, i) => ({ ranked: h.map((x) => x.index), positives: [i] })), 5);
    console.log(`recall@5 of the gold document over ${questions.length} questions and ${docs.length} documents: ${recall.toFixed(3)}`);
    expect(recall).toBeGreaterThanOrEqual(0);
    expect(recall).toBeLessThanOrEqual(1);
    await index.close();
    await clara.dispose();
  });

  it("appends without recompressing what is there, and keeps the files consistent", async () => {
    const dir = path.join(work, "grow.index");
    const clara = await ClaraModel.load(checkpoint);
    const index = await ClaraIndex.build(clara, docs.slice(0, 10), dir);
    const before = fs.readFileSync(path.join(dir, "vectors.npz"));
    await index.add(docs.slice(10, 14));
    expect(index.size).toBe(14);
    const reopened = await ClaraIndex.open(dir, clara);
    expect(reopened.size).toBe(14);
    expect(reopened.document(13).id).toBe("doc-13");
    expect(fs.readFileSync(path.join(dir, "vectors.npz")).length).toBeGreaterThan(before.length);
    await expect(index.add([{ id: "doc-3", text: "again" }])).rejects.toMatchObject({ code: "E_INVALID_ARGUMENT" });
    await clara.dispose();
  });

  it("stores float16 vectors at half the size", async () => {
    const clara = await ClaraModel.load(checkpoint);
    const a = await ClaraIndex.build(clara, docs.slice(0, 8), path.join(work, "f32.index"));
    const b = await ClaraIndex.build(clara, docs.slice(0, 8), path.join(work, "f16.index"), { dtype: "float16" });
    const size = (d: string) => fs.statSync(path.join(d, "vectors.npz")).size;
    expect(size(b.dir)).toBeLessThan(0.55 * size(a.dir));
    const [ha] = await a.search([questions[0]], 3);
    const [hb] = await b.search([questions[0]], 3);
    expect(hb.map((h) => h.index)).toEqual(ha.map((h) => h.index));
    await clara.dispose();
  });

  it("inputs of 10^6 characters: documents are truncated to the document length, a question that cannot fit is refused with a clear error, and the index keeps working", async () => {
    const huge = "Velmora was founded by the river. ".repeat(30_000); // ~10^6 characters
    expect(huge.length).toBeGreaterThan(1e6);
    const clara = await ClaraModel.load(checkpoint);
    const index = await ClaraIndex.build(clara, docs.slice(0, 4), path.join(work, "huge.index"));
    const before = clara.truncatedDocuments;
    await index.add([{ id: "huge", text: huge }]);
    expect(clara.truncatedDocuments).toBe(before + 1);
    // Search reads the question through the query reasoner, truncated like a document.
    const [hits] = await index.search([huge], 3);
    expect(hits).toHaveLength(3);
    const started = performance.now();
    await expect(index.answer(huge, { k: 2, maxTokens: 4 })).rejects.toMatchObject({ code: "E_INVALID_ARGUMENT", message: expect.stringMatching(/runs past the model's context of 4096 tokens/) });
    await expect(clara.model.generate([clara.model.tokenizer.encode(huge)], { maxTokens: 4 })).rejects.toMatchObject({ code: "E_INVALID_ARGUMENT" });
    expect(performance.now() - started).toBeLessThan(60_000);
    // The refusal broke nothing: the next call answers.
    const ok = await index.answer(questions[0], { k: 2, maxTokens: 4 });
    expect(typeof ok.answer).toBe("string");
    await clara.dispose();
  }, 180_000);

  it("build checks before compressing anything: an existing index or file is not overwritten, a model without a query reasoner is refused", async () => {
    const clara = await ClaraModel.load(checkpoint);
    const existing = path.join(work, "example.index");
    const before = fs.readFileSync(path.join(existing, "vectors.npz"));
    let compressed = 0;
    const onProgress = () => compressed++;
    await expect(ClaraIndex.build(clara, docs.slice(0, 4), existing, { onProgress })).rejects.toMatchObject({ code: "E_INDEX", message: expect.stringMatching(/already exists; an index is never overwritten/) });
    const file = path.join(work, "a-file");
    fs.writeFileSync(file, "x");
    await expect(ClaraIndex.build(clara, docs.slice(0, 4), file, { onProgress })).rejects.toMatchObject({ code: "E_INDEX" });
    expect(fs.readFileSync(path.join(existing, "vectors.npz")).equals(before)).toBe(true);
    await clara.dispose();
    const stage1Like = await ClaraModel.create(base, { compressionRate: 8, docMaxLength: 64, seed: 3 });
    await expect(ClaraIndex.build(stage1Like, docs.slice(0, 4), path.join(work, "no-qr.index"), { onProgress })).rejects.toMatchObject({ code: "E_INVALID_ARGUMENT", field: "checkpoint" });
    await stage1Like.dispose();
    expect(compressed).toBe(0);
    expect(fs.existsSync(path.join(work, "no-qr.index"))).toBe(false);
  });

  // As a Node server uses it: many requests at once on one index and one model. They queue on the
  // MLX thread; a bad one fails alone; memory does not grow with the number of calls.
  it("200 concurrent answer()/search() calls with good and bad inputs: bad ones fail alone, good ones answer, memory stays bounded", async () => {
    const clara = await ClaraModel.load(checkpoint);
    const index = await ClaraIndex.open(path.join(work, "example.index"), clara);
    const huge = "x ".repeat(6_000); // past the tiny model's 4,096-token context
    const kinds = ["answer", "search", "bad-k", "too-long", "empty"] as const;
    const call = (i: number): Promise<unknown> => {
      const q = questions[i % questions.length];
      switch (kinds[i % kinds.length]) {
        case "answer":
          return index.answer(q, { k: 2, maxTokens: 3 });
        case "search":
          return index.search([q], 3);
        case "bad-k":
          return index.answer(q, { k: 0, maxTokens: 3 });
        case "too-long":
          return index.answer(huge, { k: 2, maxTokens: 3 });
        default:
          return index.search([], 3);
      }
    };
    const { peak: peakBefore } = await memoryInfo();
    const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => call(i)));
    const { active, peak } = await memoryInfo();
    const byKind = (kind: string) => results.filter((_, i) => kinds[i % kinds.length] === kind);
    expect(byKind("answer").every((r) => r.status === "fulfilled" && typeof (r.value as { answer: unknown }).answer === "string")).toBe(true);
    expect(byKind("search").every((r) => r.status === "fulfilled" && (r.value as unknown[][])[0].length === 3)).toBe(true);
    for (const kind of ["bad-k", "too-long", "empty"]) {
      for (const r of byKind(kind)) {
        expect(r.status).toBe("rejected");
        expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ClaraError);
      }
    }
    // Queued calls hold their inputs, not their activations: the peak stays that of a few calls.
    console.log(`200 concurrent calls: peak MLX memory ${(peakBefore / 2 ** 20).toFixed(0)} -> ${(peak / 2 ** 20).toFixed(0)} MiB, active after ${(active / 2 ** 20).toFixed(0)} MiB`);
    expect(peak).toBeLessThan(peakBefore + 512 * 2 ** 20);
    // And the index still answers as before.
    expect(typeof (await index.answer(questions[0], { k: 2, maxTokens: 3 })).answer).toBe("string");
    await clara.dispose();
  }, 300_000);

  it("E_MEMORY: an index whose documents could not be compressed within MLX's memory limit is refused before any work", async () => {
    // Attention over 100,003 positions: ~320 GB per document, past the limit of any machine we run on.
    const clara = await ClaraModel.create(base, { compressionRate: 10_000, docMaxLength: 100_000, seed: 3 });
    await clara.model.copyAdapter("compressor", "query_reasoner");
    await expect(ClaraIndex.build(clara, docs.slice(0, 2), path.join(work, "too-big.index"))).rejects.toMatchObject({ code: "E_MEMORY", field: "batchSize" });
    await clara.dispose();
  });

  it("refuses an index built with another compression rate or compressor", async () => {
    const dir = path.join(work, "example.index");
    const other = await ClaraModel.create(base, { compressionRate: 16, docMaxLength: 64, seed: 3 });
    await expect(ClaraIndex.open(dir, other)).rejects.toMatchObject({ code: "E_CHECKPOINT_MISMATCH", field: "compressionRate" });
    await other.dispose();
    const fresh = await ClaraModel.create(base, { compressionRate: 8, docMaxLength: 64, seed: 9 });
    await expect(ClaraIndex.open(dir, fresh)).rejects.toMatchObject({ code: "E_CHECKPOINT_MISMATCH", field: "compressor" });
    await fresh.dispose();
  });
});
