// The "standardised" memory input (native/clara/memory_input.h): the compressed vectors enter the
// generator mapped per dimension to the input embeddings' mean and deviation. Checked against the
// embedding table read straight from the model file, through the loss and generation paths (an
// identity map must give the reference's numbers), and across a checkpoint round trip.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraModel, Stage1Trainer } from "../lib";
import type { Tensor } from "../lib/tensor";
import { tensor } from "../lib/tensor";
import { leftPad } from "../lib/data/batches";
import { nativeModel } from "../lib/model/model";
import { examplePretrain, makeTinyClaraBase } from "./helpers/tiny-clara";

let base: string;
let work: string;
const records = examplePretrain().slice(0, 12);
const docs = records.map((r) => r.doc);
const common = { compressionRate: 8, docMaxLength: 64, lora: { rank: 4, alpha: 8, dropout: 0 }, seed: 5 };
const train = { batchSize: 4, microBatchSize: 2, maxSteps: 1, mseWeight: 0 };

beforeAll(() => {
  base = makeTinyClaraBase();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-memory-input-"));
});
afterAll(() => {
  for (const d of [base, work]) fs.rmSync(d, { recursive: true, force: true });
});

/** A float32 tensor of a safetensors file, read without our loader. */
function safetensor(file: string, name: string): { shape: number[]; data: Float32Array } {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const t = header[name];
  expect(t.dtype).toBe("F32");
  const [start, end] = t.data_offsets;
  const bytes = buf.subarray(8 + n + start, 8 + n + end);
  return { shape: t.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) };
}

function columnStats(data: ArrayLike<number>, rows: number, H: number) {
  const mean = new Float64Array(H);
  const sd = new Float64Array(H);
  for (let i = 0; i < rows; i++) for (let j = 0; j < H; j++) mean[j] += data[i * H + j] / rows;
  for (let i = 0; i < rows; i++) for (let j = 0; j < H; j++) sd[j] += (data[i * H + j] - mean[j]) ** 2 / rows;
  return { mean, sd: sd.map(Math.sqrt) };
}

async function mapOf(clara: ClaraModel): Promise<Map<string, Tensor>> {
  return new Map(await clara.model.parameters("clara.memory_in."));
}

describe("standardised memory input", () => {
  let clara: ClaraModel;
  beforeAll(async () => {
    clara = await ClaraModel.create(base, common);
    expect(clara.memoryInput).toBe("raw");
    await clara.calibrateMemoryInput(docs);
  });
  afterAll(() => clara.dispose());

  it("maps the calibration documents' vectors to the embedding rows' per-dimension mean and deviation", async () => {
    const H = clara.model.config.hidden_size;
    const table = safetensor(path.join(base, "model.safetensors"), "model.embed_tokens.weight");
    const V = clara.templates.tokens.baseVocab;
    expect(table.shape[0]).toBe(V);
    const target = columnStats(table.data, V, H);
    const vectors = await clara.compressDocuments(docs);
    const map = await mapOf(clara);
    expect([...map.keys()]).toEqual(["clara.memory_in.scale", "clara.memory_in.shift"]);
    const scale = map.get("clara.memory_in.scale")!.data;
    const shift = map.get("clara.memory_in.shift")!.data;
    const rows = vectors.data.length / H;
    const mapped = new Float32Array(vectors.data.length);
    for (let i = 0; i < rows; i++) for (let j = 0; j < H; j++) mapped[i * H + j] = vectors.data[i * H + j] * scale[j] + shift[j];
    const got = columnStats(mapped, rows, H);
    for (let j = 0; j < H; j++) {
      expect(got.mean[j]).toBeCloseTo(target.mean[j], 4);
      expect(got.sd[j] / target.sd[j]).toBeCloseTo(1, 4);
    }
    // The raw vectors are nothing like that (otherwise the test could not fail).
    const raw = columnStats(vectors.data, rows, H);
    expect(Math.max(...raw.sd.map((s, j) => Math.abs(s / target.sd[j] - 1)))).toBeGreaterThan(0.1);
  });

  it("is what the loss applies: the identity map gives the reference's loss, the calibrated one another", async () => {
    const trainer = await Stage1Trainer.create(base, records, { ...common, ...train, out: path.join(work, "raw.npz") });
    const raw = (await trainer.lossOn(records.slice(0, 4))).loss;
    await trainer.clara.dispose();
    const t = await Stage1Trainer.create(base, records, { ...common, ...train, out: path.join(work, "std.npz"), memoryInput: "standardised" });
    expect(t.clara.memoryInput).toBe("standardised");
    const standardised = (await t.lossOn(records.slice(0, 4))).loss;
    expect(Math.abs(standardised - raw)).toBeGreaterThan(1e-3);
    const H = t.clara.model.config.hidden_size;
    await t.clara.model.setParameters([
      ["clara.memory_in.scale", tensor("float32", [H], new Float32Array(H).fill(1))],
      ["clara.memory_in.shift", tensor("float32", [H], new Float32Array(H))],
    ]);
    expect((await t.lossOn(records.slice(0, 4))).loss).toBeCloseTo(raw, 6);
    await t.clara.dispose();
  });

  it("is what generation applies, and survives a checkpoint", async () => {
    const file = path.join(work, "calibrated.npz");
    await clara.save(file, { stage: "stage1", step: 0, complete: true });
    const loaded = await ClaraModel.load(file);
    try {
      expect(loaded.memoryInput).toBe("standardised");
      const [a, b] = [await mapOf(clara), await mapOf(loaded)];
      for (const k of a.keys()) expect(Buffer.from(b.get(k)!.data.buffer).equals(Buffer.from(a.get(k)!.data.buffer))).toBe(true);
      const one = await clara.compressDocuments(docs.slice(0, 1));
      // Token ids, no stop tokens: a tiny random model's text is often empty.
      const tokens = async (m: ClaraModel) =>
        (
          await nativeModel(m.model).claraGenerate({
            prompt: leftPad([m.templates.answerPrompt("Who is it about?", 1)], m.templates.padId),
            compressed: one,
            spec: m.spec(1),
            generation: { maxTokens: 12, temperature: 0, topP: 1, seed: 0, stopTokens: [] },
          })
        ).tokens[0];
      expect(await tokens(loaded)).toEqual(await tokens(clara));
      // With the map set to the identity, generation is the raw model's.
      const raw = await ClaraModel.create(base, common);
      const H = loaded.model.config.hidden_size;
      const setMap = (scale: (j: number) => number, shift: (j: number) => number) =>
        loaded.model.setParameters([
          ["clara.memory_in.scale", tensor("float32", [H], Float32Array.from({ length: H }, (_, j) => scale(j)))],
          ["clara.memory_in.shift", tensor("float32", [H], Float32Array.from({ length: H }, (_, j) => shift(j)))],
        ]);
      const fromRaw = await tokens(raw);
      await setMap(() => 1, () => 0);
      expect(await tokens(loaded)).toEqual(fromRaw);
      // And a map that poisons the vectors changes what is generated (a tiny random model's
      // greedy tokens hardly depend on an ordinary change of its inputs).
      await setMap(() => Number.NaN, () => 0);
      expect(await tokens(loaded)).not.toEqual(fromRaw);
      await raw.dispose();
    } finally {
      await loaded.dispose();
    }
  });

  it("refuses an unknown setting", async () => {
    const e = await Stage1Trainer.create(base, records, { ...common, ...train, out: path.join(work, "bad.npz"), memoryInput: "whitened" as "raw" }).then(
      () => null,
      (err) => err,
    );
    expect(e?.code).toBe("E_INVALID_ARGUMENT");
    expect(String(e?.message)).toMatch(/memoryInput/);
  });
});
