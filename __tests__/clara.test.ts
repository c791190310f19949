// CLaRa end to end on a tiny model: templates and token layout, the three stages and what
// each trains, checkpoints (readable by Python MLX), resume with identical results, and the
// errors for mismatched checkpoints.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError, ClaraModel, readCheckpoint, Stage1Trainer, Stage2Trainer, Stage3Trainer } from "../lib";
import { readNpz } from "../lib/io";
import { nativeModel } from "../lib/model/model";
import { writeCheckpoint } from "../lib/io/checkpoint";
import { deriveEndToEndRecords, deriveInstructionRecords } from "../lib/data/derive";
import { SYSTEM_PROMPTS } from "../lib/clara/templates";
import { memoryTokenCount } from "../lib/clara/config";
import { optimizerFile } from "../lib/io/checkpoint";
import { tensor, type Tensor } from "../lib/tensor";
import { MLX_LM_MODULES, makeTinyModel, oracleTest, pythonEval, removeDir, runPython, tempDir } from "./helpers/oracle";
import { examplePretrain, makeTinyClaraBase } from "./helpers/tiny-clara";

const itPy = oracleTest("mlx.core");
let base: string;
let otherBase: string;
let work: string;
const records = examplePretrain().slice(0, 24);
const common = { compressionRate: 8, docMaxLength: 64, lora: { rank: 4, alpha: 8, dropout: 0.1 }, seed: 5 };

beforeAll(() => {
  base = makeTinyClaraBase();
  otherBase = makeTinyClaraBase({ seed: 2 });
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-stages-"));
});
afterAll(() => {
  for (const d of [base, otherBase, work]) fs.rmSync(d, { recursive: true, force: true });
});

const bytesOf = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const entries = (file: string) => new Map(readCheckpoint(file).entries);
const sameTensor = (a: Tensor | undefined, b: Tensor | undefined) => !!a && !!b && bytesOf(a).equals(bytesOf(b));
const loraOf = (m: Map<string, Tensor>, adapter: string) => [...m].filter(([k]) => k.includes(`.lora.${adapter}.`));

describe("templates and tokens", () => {
  let clara: ClaraModel;
  beforeAll(async () => (clara = await ClaraModel.create(base, common)));
  afterAll(() => clara.dispose());

  it("appends <MEM0..n-1>, <AE>, <ENC>, <SEP> after the vocabulary", () => {
    const t = clara.templates.tokens;
    const V = clara.model.config.vocab_size;
    expect(clara.nMem).toBe(8); // 64 / 8
    expect(t.mem).toEqual(Array.from({ length: 8 }, (_, i) => V + i));
    expect([t.ae, t.enc, t.sep]).toEqual([V + 8, V + 9, V + 10]);
    expect(clara.model.tokenizer.encode("<MEM3><SEP>")).toEqual([V + 3, V + 10]);
  });

  it("lays out the compressor input: left padding, <ENC> BOS doc EOS, then the memory tokens", () => {
    const tok = clara.model.tokenizer;
    const e = clara.templates.encoderInput("a short doc");
    expect(e.ids.length).toBe(64 + 3 + 8);
    const body = tok.encode("a short doc");
    const expected = [clara.templates.tokens.enc, tok.bosTokenId!, ...body, tok.eosTokenId!];
    expect(e.ids.slice(-8)).toEqual(clara.templates.tokens.mem);
    expect(e.ids.slice(-8 - expected.length, -8)).toEqual(expected);
    expect(e.valid.filter((v) => v === 0).length).toBe(64 + 3 - expected.length);
    expect(e.truncated).toBe(false);
    expect(clara.templates.encoderInput("word ".repeat(400)).truncated).toBe(true);
  });

  it("renders the stage-2/3 prompt with the reference's text and supervises only the answer", () => {
    const tok = clara.model.tokenizer;
    const ex = clara.templates.answerExample("Who founded it?", "Ada", 2, 2048);
    const text = tok.decode(ex.tokens);
    const slots = (Array.from({ length: 8 }, (_, i) => `<MEM${i}>`).join("") + "<SEP>").repeat(2);
    expect(text).toBe(
      `<|im_start|>system\n${SYSTEM_PROMPTS.answer}<|im_end|>\n<|im_start|>user\nBackground:\n${slots}\n\nQuestion:Who founded it?<|im_end|>\n` +
        "<|im_start|>assistant\nAda<|im_end|>\n",
    );
    const supervised = tok.decode(ex.tokens.filter((_, i) => ex.lossMask[i] === 1));
    expect(supervised).toBe("Ada<|im_end|>\n");
  });

  it("asks a stage-1 model its j-th question with the same tokens that stage 1 trains on, up to the answer", () => {
    const questions = ["Who founded it?", "In what year?", "What colour is the flag of Velmora?"];
    const answers = ["Ada Lorin", "1845", "teal"];
    const trained = clara.templates.qaExample(questions, answers, 2048).tokens;
    for (let j = 0; j < questions.length; j++) {
      const probe = clara.templates.qaProbePrompt(questions[j], { questions: questions.slice(0, j), answers: answers.slice(0, j) });
      expect(trained.slice(0, probe.length)).toEqual(probe);
      expect(clara.model.tokenizer.decode(trained.slice(probe.length))).toMatch(new RegExp(`^ ${answers[j]}(\n|<\\|im_end\\|>)`));
    }
  });

  it("leaves out the padding columns every row shares, and its vectors and MSE are the full-width batch's", async () => {
    const texts = ["a short one.", "The river runs north past the old mill, then east under the stone bridge to the sea.", "two words"];
    const trimmed = clara.encoderBatch(texts);
    const width = clara.docMaxLength + 3 + clara.nMem;
    const full = clara.templates.encoderInput(texts[1]);
    // Trimmed to the longest document: the columns before its first real token are gone.
    expect(trimmed.positionOffset).toBe(full.valid.indexOf(1));
    expect(trimmed.ids.shape).toEqual([3, width - trimmed.positionOffset!]);
    expect(trimmed.positionOffset).toBeGreaterThan(0);
    // The reference's full-width batch, computed as such.
    const rows = texts.map((t) => clara.templates.encoderInput(t));
    const fullBatch = {
      ids: tensor("int32", [3, width], Int32Array.from(rows.flatMap((r) => r.ids))),
      keyValid: tensor("uint8", [3, width], Uint8Array.from(rows.flatMap((r) => r.valid))),
    };
    const a = await nativeModel(clara.model).claraCompress({ docs: trimmed, spec: clara.spec(1) });
    const b = await nativeModel(clara.model).claraCompress({ docs: fullBatch, spec: clara.spec(1) });
    expect(maxRelativeDifference(a.vectors.data as Float32Array, b.vectors.data as Float32Array)).toBeLessThanOrEqual(1e-5);
    expect(a.mse).toBeCloseTo(b.mse, 5);
  });

  it("compresses each document into n × H vectors", async () => {
    const v = await clara.compressDocuments(records.slice(0, 3).map((r) => r.doc));
    expect(v.shape).toEqual([3, 8, 32]);
    expect(Array.from(v.data).every(Number.isFinite)).toBe(true);
  });
});

describe("the three stages", () => {
  const s1 = () => path.join(work, "stage1", "compressor.npz");
  const s2 = () => path.join(work, "stage2", "generator.npz");
  const s3 = () => path.join(work, "stage3", "full_system.npz");
  const train = { batchSize: 4, microBatchSize: 2, lr: 1e-3, seed: 7 };

  it("stage 1 trains compressor, generator and the memory rows; the checkpoint records what it is", async () => {
    const t = await Stage1Trainer.create(base, records, { ...common, ...train, out: s1(), maxSteps: 4, evalSplit: 0.2 });
    const start = new Map(await t.clara.model.parameters());
    const summary = await t.run();
    const end = new Map(await t.clara.model.parameters());
    await t.clara.dispose();
    expect(summary.steps).toBe(4);
    expect(summary.history.map((h) => h.step)).toEqual([1, 2, 3, 4]);
    expect(summary.history.every((h) => Number.isFinite(h.parts.ce) && Number.isFinite(h.parts.mse))).toBe(true);
    expect(summary.evals.length).toBe(1);
    for (const name of ["clara.mem_embeddings", "model.layers.0.self_attn.q_proj.lora.compressor.a", "model.layers.1.mlp.down_proj.lora.generator.b"]) {
      expect(sameTensor(start.get(name), end.get(name))).toBe(false);
    }
    expect(sameTensor(start.get("clara.special_embeddings"), end.get("clara.special_embeddings"))).toBe(true);
    const { metadata } = readCheckpoint(s1());
    expect(metadata).toMatchObject({ stage: "stage1", step: 4, complete: true, clara: { compressionRate: 8, docMaxLength: 64, nMem: 8 } });
    expect(metadata.adapters.map((a) => a.name).sort()).toEqual(["compressor", "generator"]);
    expect(fs.existsSync(optimizerFile(s1(), metadata))).toBe(true);
  });

  itPy("Python MLX opens the checkpoint", async () => {
    const out = await runPython(["-c", "import sys, mlx.core as mx; d = mx.load(sys.argv[1]); print(len(d), d['clara.mem_embeddings'].shape, d['__metadata__'].dtype)", s1()]);
    expect(out.trim()).toBe(`${entries(s1()).size + 1} (8, 32) mlx.core.uint8`);
  });

  it("the MSE term is weighted by mseWeight: the reference's 0.1 by default, 0 leaves the answer loss alone", async () => {
    const losses = async (mseWeight?: number) => {
      const t = await Stage1Trainer.create(base, records, { ...common, ...train, out: path.join(work, `mse-${mseWeight}.npz`), maxSteps: 1, mseWeight });
      const [h] = (await t.run()).history;
      await t.clara.dispose();
      return h;
    };
    const byDefault = await losses();
    expect(byDefault.loss).toBeCloseTo(byDefault.parts.ce + 0.1 * byDefault.parts.mse, 5);
    const none = await losses(0);
    expect(none.parts.mse).toBeGreaterThan(0);
    expect(none.loss).toBeCloseTo(none.parts.ce, 6);
    await expect(losses(-1)).rejects.toMatchObject({ code: "E_INVALID_ARGUMENT", field: "mseWeight" });
  });

  it("lossOn is the held-out loss at the current weights, and a probe may call it without disturbing the run", async () => {
    const held = records.slice(0, 3);
    const run = async (probeLoss: boolean) => {
      const t = await Stage1Trainer.create(base, records, {
        ...common, ...train, out: path.join(work, `loss-on-${probeLoss}.npz`), maxSteps: 3, evalEvery: 1, evalRecords: held, mseWeight: 0.3,
        probe: probeLoss ? async () => void (await t.lossOn(records.slice(3, 5))) : undefined,
      });
      const before = await t.lossOn(held);
      const summary = await t.run();
      const after = await t.lossOn(held);
      const params = new Map(await t.clara.model.parameters());
      await t.clara.dispose();
      return { before, after, summary, params };
    };
    const plain = await run(false);
    const probed = await run(true);
    // The same weights give the trainer's own held-out figure, parts and weighting included.
    const last = plain.summary.evals.at(-1)!;
    expect(plain.after.loss).toBeCloseTo(last.loss, 5);
    expect(plain.after.parts.ce).toBeCloseTo(last.parts.ce, 5);
    expect(plain.after.loss).toBeCloseTo(plain.after.parts.ce + 0.3 * plain.after.parts.mse, 5);
    expect(plain.after.loss).not.toBeCloseTo(plain.before.loss, 3);
    // Losses computed between updates leave the updates as they were.
    expect(probed.summary.history.map((h) => h.loss)).toEqual(plain.summary.history.map((h) => h.loss));
    expect(sameTensor(probed.params.get("clara.mem_embeddings"), plain.params.get("clara.mem_embeddings"))).toBe(true);
  });

  it("E_BUSY: during a run, a second trainer or new weights on the same model are refused, and allowed again after it", async () => {
    const codes: string[] = [];
    const t = await Stage1Trainer.create(base, records, {
      ...common, ...train, out: path.join(work, "busy.npz"), maxSteps: 2, evalEvery: 1,
      probe: async () => {
        const second = new Stage1Trainer(t.clara, records, { ...train, out: path.join(work, "busy-2.npz"), maxSteps: 1 });
        for (const p of [second.run(), (async () => t.clara.model.setParameters(await t.clara.model.parameters("clara.mem_embeddings")))()]) {
          codes.push(await p.then(() => "ok", (e: ClaraError) => e.code));
        }
      },
    });
    const summary = await t.run();
    expect(codes).toEqual(["E_BUSY", "E_BUSY", "E_BUSY", "E_BUSY"]);
    expect(summary.history.map((h) => h.step)).toEqual([1, 2]);
    await t.clara.model.setParameters(await t.clara.model.parameters("clara.mem_embeddings"));
    await t.clara.dispose();
  });

  it("stage 2 starts a fresh generator on the stage-1 compressor and trains both", async () => {
    const inst = deriveInstructionRecords(records, { k: 3, seed: 1 }).slice(0, 12);
    const t = await Stage2Trainer.fromCheckpoint(s1(), inst, { ...train, out: s2(), maxSteps: 2 });
    const start = new Map(await t.clara.model.parameters());
    const stage1 = entries(s1());
    expect(loraOf(start, "generator").filter(([k]) => k.endsWith(".b")).every(([, v]) => (v.data as Float32Array).every((x) => x === 0))).toBe(true);
    expect(loraOf(start, "compressor").every(([k, v]) => sameTensor(v, stage1.get(k)))).toBe(true);
    await t.run();
    await t.clara.dispose();
    const after = entries(s2());
    expect(loraOf(after, "compressor").some(([k, v]) => !sameTensor(v, stage1.get(k)))).toBe(true);
    expect(sameTensor(after.get("clara.mem_embeddings"), stage1.get("clara.mem_embeddings"))).toBe(true); // frozen, as the reference
    expect(readCheckpoint(s2()).metadata.stage).toBe("stage2");
  });

  it("stage 3 copies the compressor into the query reasoner, keeps the compressor frozen, trains reasoner and generator", async () => {
    const e2e = deriveEndToEndRecords(records, { candidates: 6, seed: 2 }).slice(0, 8);
    const t = await Stage3Trainer.fromCheckpoint(s2(), e2e, { ...train, out: s3(), maxSteps: 2, k: 2, lr: 1e-3 });
    const start = new Map(await t.clara.model.parameters());
    for (const [k, v] of loraOf(start, "compressor")) expect(sameTensor(start.get(k.replace(".lora.compressor.", ".lora.query_reasoner.")), v)).toBe(true);
    const summary = await t.run();
    await t.clara.dispose();
    expect(summary.history.every((h) => Object.keys(h.parts).join() === "ce")).toBe(true);
    const after = entries(s3());
    const stage2 = entries(s2());
    expect(loraOf(after, "compressor").every(([k, v]) => sameTensor(v, stage2.get(k)))).toBe(true);
    expect(loraOf(after, "query_reasoner").some(([k, v]) => !sameTensor(v, stage2.get(k.replace(".query_reasoner.", ".compressor."))))).toBe(true);
    expect(loraOf(after, "generator").some(([k, v]) => !sameTensor(v, stage2.get(k)))).toBe(true);
  });

  it("stage 3 can start the query reasoner as a fresh adapter instead (the reference's other path)", async () => {
    const e2e = deriveEndToEndRecords(records, { candidates: 6, seed: 2 }).slice(0, 4);
    const out = path.join(path.dirname(s3()), "stage3-fresh.npz");
    const t = await Stage3Trainer.fromCheckpoint(s2(), e2e, { ...train, out, maxSteps: 1, k: 2, queryReasonerInit: "fresh" });
    const start = new Map(await t.clara.model.parameters());
    const fresh = loraOf(start, "query_reasoner");
    expect(fresh.length).toBe(loraOf(start, "compressor").length);
    // A new LoRA adapter: B = 0, so the query starts as the base model encodes it.
    expect(fresh.filter(([k]) => k.endsWith(".b")).every(([, v]) => (v.data as Float32Array).every((x) => x === 0))).toBe(true);
    await t.clara.dispose();
    await expect(Stage3Trainer.fromCheckpoint(s2(), e2e, { ...train, out, queryReasonerInit: "random" as never })).rejects.toMatchObject({
      code: "E_INVALID_ARGUMENT",
      field: "queryReasonerInit",
    });
  });

  it("a stage-3 model retrieves and answers", async () => {
    const clara = await ClaraModel.load(s3());
    const docs = records.slice(0, 5).map((r) => r.doc);
    const cands = await clara.compressDocuments(docs);
    const r = await clara.retrieve([records[2].questions[0]], [cands], 2);
    expect(r.indices[0].length).toBe(2);
    expect(r.scores[0].length).toBe(5);
    expect(r.scores[0].every((s) => s >= -1 && s <= 1)).toBe(true);
    const answers = await clara.generateFromCompressed([records[2].questions[0]], [r.selected[0]], { maxTokens: 6 });
    expect(typeof answers[0]).toBe("string");
    // k > N raises, as the reference's topk does, instead of clamping silently.
    await expect(clara.retrieve([records[2].questions[0]], [cands], 6)).rejects.toMatchObject({ code: "E_INVALID_ARGUMENT", field: "k", message: expect.stringMatching(/k = 6 must be 1\.\.5/) });
    await clara.dispose();
  });

  it("a compression rate that does not divide the document length takes the floor, as the reference does", async () => {
    expect(memoryTokenCount({ compressionRate: 24, docMaxLength: 64 })).toBe(2);
    expect(memoryTokenCount({ compressionRate: 3, docMaxLength: 256 })).toBe(85);
    expect(() => memoryTokenCount({ compressionRate: 65, docMaxLength: 64 })).toThrow(/no memory token is left/);
    const clara = await ClaraModel.create(base, { compressionRate: 24, docMaxLength: 64, lora: { rank: 4, alpha: 8, dropout: 0 } });
    const v = await clara.compressDocuments([records[0].doc]);
    expect(v.shape).toEqual([1, 2, v.shape[2]]);
    await clara.dispose();
  });

  it("refuses a checkpoint for another base model", async () => {
    await expect(ClaraModel.load(s1(), { modelPath: otherBase })).rejects.toMatchObject({ code: "E_CHECKPOINT_MISMATCH", field: "base.fingerprint" });
  });
});

describe("a padded vocabulary (config vocab_size above the tokenizer's length, as Qwen ships)", () => {
  const itOracle = oracleTest(...MLX_LM_MODULES);
  const PAD = 20;
  itOracle("the new tokens follow the tokenizer's last id, take the table's own rows there, and the logits leave the padding out", async () => {
    const dir = tempDir("clara-padded-");
    try {
      const plain = await makeTinyModel("qwen2", path.join(dir, "plain"), { tie: true, seed: 31 });
      const padded = path.join(dir, "padded");
      fs.cpSync(plain, padded, { recursive: true });
      // The same model with PAD more embedding rows (random, as Qwen's unused rows are) and vocab_size raised to match.
      await pythonEval(
        "import sys, json, mlx.core as mx\n" +
          "d, pad = sys.argv[1], int(sys.argv[2])\n" +
          "w = mx.load(d + '/model.safetensors')\n" +
          "e = w['model.embed_tokens.weight']\n" +
          "w['model.embed_tokens.weight'] = mx.concatenate([e, mx.random.normal((pad, e.shape[1]), key=mx.random.key(3)).astype(e.dtype)])\n" +
          "mx.save_safetensors(d + '/model.safetensors', w, metadata={'format': 'mlx'})\n" +
          "c = json.load(open(d + '/config.json')); c['vocab_size'] += pad; json.dump(c, open(d + '/config.json', 'w'))\n",
        padded,
        String(PAD),
      );
      const options = { compressionRate: 8, docMaxLength: 64, lora: { rank: 4, alpha: 8, dropout: 0 }, seed: 5 };
      const a = await ClaraModel.create(plain, options);
      const b = await ClaraModel.create(padded, options);
      const V = a.model.tokenizer.vocabSize - a.nMem - 3;
      expect(b.model.config.vocab_size).toBe(V + PAD);
      expect(b.templates.tokens.mem[0]).toBe(V);
      expect(a.templates.tokens.mem[0]).toBe(V);
      // The rows the reference's resize keeps: the padded table's own rows V..V+n-1.
      const [[, mem]] = await b.model.parameters("clara.mem_embeddings");
      const rows = JSON.parse(
        await pythonEval(
          "import sys, json, mlx.core as mx\nw = mx.load(sys.argv[1] + '/model.safetensors')['model.embed_tokens.weight']\n" +
            "print(json.dumps(w[int(sys.argv[2]):int(sys.argv[2]) + int(sys.argv[3])].astype(mx.float32).tolist()))",
          padded,
          String(V),
          String(b.nMem),
        ),
      ) as number[][];
      expect(Array.from(mem.data as Float32Array)).toEqual(rows.flat().map((x) => Math.fround(x)));
      // With the same CLaRa parameters, the padded base gives the plain base's losses: the padding
      // columns are not in the softmax, and the appended ids address the same rows.
      await b.model.setParameters(await a.model.parameters(), await a.model.adapters());
      const held = records.slice(0, 4);
      const lossOf = async (clara: ClaraModel) => (await new Stage1Trainer(clara, records, { out: path.join(dir, "unused.npz") }).lossOn(held)).loss;
      expect(await lossOf(b)).toBeCloseTo(await lossOf(a), 5);
      const [ga] = await a.generateFromCompressed([held[0].questions[0]], [await a.compressDocuments([held[0].doc])], { maxTokens: 8 });
      const [gb] = await b.generateFromCompressed([held[0].questions[0]], [await b.compressDocuments([held[0].doc])], { maxTokens: 8 });
      expect(gb).toBe(ga);
      await a.dispose();
      await b.dispose();
    } finally {
      removeDir(dir);
    }
  });
});

describe("resume", () => {
  const run = async (out: string, extra: { resume?: boolean; stopAfter?: number }) => {
    const controller = new AbortController();
    const t = await Stage1Trainer.create(base, records, {
      ...common,
      out,
      batchSize: 4,
      microBatchSize: 2,
      maxSteps: 6,
      lr: 1e-3,
      seed: 11,
      resume: extra.resume,
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === "step" && e.step === extra.stopAfter) controller.abort();
      },
    });
    const s = await t.run();
    await t.clara.dispose();
    return s;
  };

  it("an interrupted run resumed gives the same losses and weights as an uninterrupted one, bit for bit", async () => {
    const straight = path.join(work, "resume", "straight.npz");
    const split = path.join(work, "resume", "split.npz");
    const a = await run(straight, {});
    const b1 = await run(split, { stopAfter: 3 });
    expect(b1.interrupted).toBe(true);
    expect(readCheckpoint(split).metadata).toMatchObject({ complete: false, step: 3 });
    const b2 = await run(split, { resume: true });
    expect(b2.interrupted).toBe(false);
    expect(b2.history.map((h) => h.loss)).toEqual(a.history.map((h) => h.loss));
    const ea = entries(straight);
    const eb = entries(split);
    expect([...ea.keys()].sort()).toEqual([...eb.keys()].sort());
    for (const [k, v] of ea) expect(sameTensor(v, eb.get(k))).toBe(true);
  });

  it("writes resumable checkpoints by time as well as at the end (checkpointMinutes)", async () => {
    const kinds: boolean[] = [];
    const t = await Stage1Trainer.create(base, records, {
      ...common,
      out: path.join(work, "resume", "timed.npz"),
      batchSize: 4,
      microBatchSize: 2,
      maxSteps: 3,
      lr: 1e-3,
      seed: 11,
      checkpointMinutes: 1e-6,
      onEvent: (e) => e.type === "checkpoint" && kinds.push(e.complete),
    });
    await t.run();
    await t.clara.dispose();
    expect(kinds).toEqual([false, false, true]);
  });

  it("refuses to resume with another configuration, naming the option", async () => {
    const file = path.join(work, "resume", "other.npz");
    await run(file, { stopAfter: 1 });
    const t = await Stage1Trainer.create(base, records, { ...common, out: file, batchSize: 4, microBatchSize: 2, maxSteps: 6, lr: 5e-4, seed: 11, resume: true });
    await expect(t.run()).rejects.toMatchObject({ code: "E_CHECKPOINT_MISMATCH", field: "lr" });
    await t.clara.dispose();
  });

  it("resumes a checkpoint written before mseWeight was recorded when it is left at the value those runs used", async () => {
    const file = path.join(work, "resume", "before-mse-weight.npz");
    await run(file, { stopAfter: 1 });
    const { entries: saved, metadata } = readCheckpoint(file);
    delete (metadata.config as Record<string, unknown>).mseWeight;
    writeCheckpoint(file, saved, metadata);
    const resume = async (mseWeight?: number) => {
      const t = await Stage1Trainer.create(base, records, { ...common, out: file, batchSize: 4, microBatchSize: 2, maxSteps: 6, lr: 1e-3, seed: 11, resume: true, mseWeight });
      try {
        return await t.run();
      } finally {
        await t.clara.dispose();
      }
    };
    await expect(resume(0)).rejects.toMatchObject({ code: "E_CHECKPOINT_MISMATCH", field: "mseWeight" });
    expect((await resume()).steps).toBe(6);
  });

  it("stops on a non-finite loss without touching the last checkpoint", async () => {
    const file = path.join(work, "resume", "nan.npz");
    await run(file, { stopAfter: 1 });
    const before = fs.readFileSync(file);
    const t = await Stage1Trainer.create(base, records, { ...common, out: file, batchSize: 4, microBatchSize: 2, maxSteps: 4, lr: 1e-3, seed: 3 });
    // Weights gone bad (as after a diverged run): the first loss is NaN.
    const [[name, mem]] = await t.clara.model.parameters("clara.mem_embeddings");
    await t.clara.model.setParameters([[name, { ...mem, data: new Float32Array(mem.data.length).fill(NaN) }]]);
    const err = await t.run().catch((e: unknown) => e);
    await t.clara.dispose();
    expect(err).toBeInstanceOf(ClaraError);
    expect((err as ClaraError).code).toBe("E_NONFINITE");
    expect((err as ClaraError).message).toMatch(/stage1 stopped at update \d+/);
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(readNpz(file).size).toBeGreaterThan(0);
  });
});

function maxRelativeDifference(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}
