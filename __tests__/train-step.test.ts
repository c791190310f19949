// One crossing per step (binding/model_train.cpp): trainStep takes the micro-batches of any loss
// ("lm" or a CLaRa stage) and returns the update's figures with the allocator's memory;
// evalLosses evaluates many batches in one call. The supervised positions and memory-slot
// sources are read on the host when a batch is made (native/train/token_batch.h,
// native/clara/generator.h), so the losses hold no host round trip; golden.test.ts shows their
// numbers are the reference's. Gradient checkpointing (ActiveAdapter::checkpoint_layers) gives
// the same gradients and updates with a lower peak.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError, ClaraModel, loadModel, Stage1Trainer } from "../lib";
import { leftPad } from "../lib/data/batches";
import { nativeModel, type Model } from "../lib/model/model";
import { memoryInfo } from "../lib/runtime";
import { examplePretrain, makeTinyClaraBase } from "./helpers/tiny-clara";

let base: string;
beforeAll(() => {
  base = makeTinyClaraBase();
});
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

async function rejection(p: () => Promise<unknown>): Promise<ClaraError> {
  try {
    await p();
  } catch (e) {
    expect(e).toBeInstanceOf(ClaraError);
    return e as ClaraError;
  }
  throw new Error("expected a rejection");
}

describe("the language-model loss", () => {
  let model: Model;
  const sequences = [
    [5, 9, 14, 3, 7, 21],
    [8, 2, 30],
    [11, 12, 13, 14],
  ];
  // Supervise the second half of each sequence.
  const masks = sequences.map((s) => s.map((_, i) => (i >= s.length / 2 ? 1 : 0)));
  beforeAll(async () => {
    model = await loadModel(base);
    await model.addAdapter("a", { rank: 2, alpha: 4, dropout: 0, seed: 3 });
  });
  afterAll(() => model.dispose());

  it("evaluates many batches in one call, each as it would alone", async () => {
    const handle = nativeModel(model);
    const batches = sequences.map((s, i) => leftPad([s], 0, { lossMasks: [masks[i]] }));
    const together = await handle.evalLosses({ loss: "lm", adapter: "a", batches });
    expect(together).toHaveLength(3);
    for (let i = 0; i < batches.length; i++) {
      const [alone] = await handle.evalLosses({ loss: "lm", adapter: "a", batches: [batches[i]] });
      expect(together[i].loss).toBe(alone.loss);
      expect(together[i].tokens).toBe(masks[i].slice(1).filter(Boolean).length);
    }
    // A padded batch of all three: the token-mean over every supervised position.
    const [all] = await handle.evalLosses({ loss: "lm", adapter: "a", batches: [leftPad(sequences, 0, { lossMasks: masks })] });
    const tokens = together.reduce((a, r) => a + r.tokens, 0);
    expect(all.tokens).toBe(tokens);
    expect(all.loss).toBeCloseTo(together.reduce((a, r) => a + r.loss * r.tokens, 0) / tokens, 5);
  });

  it("supervising nothing gives a zero loss over zero tokens, not an error or NaN", async () => {
    const [r] = await nativeModel(model).evalLosses({
      loss: "lm",
      adapter: "a",
      batches: [leftPad([sequences[0]], 0, { lossMasks: [sequences[0].map(() => 0)] })],
    });
    expect(r).toEqual({ loss: 0, tokens: 0, parts: {} });
  });

  it("returns the update's figures and the allocator's memory from the one call", async () => {
    await model.createTrainer({ trainable: ["a"], lr: 1e-2, schedule: "constant" });
    const examples = sequences.map((tokens, i) => ({ tokens, lossMask: masks[i] }));
    const first = await model.trainStep([examples.slice(0, 2), examples.slice(2)], { adapter: "a", seed: 1 });
    expect(first.step).toBe(1);
    expect(first.tokens).toBe(masks.reduce((a, m) => a + m.slice(1).filter(Boolean).length, 0));
    expect(first.memory.active).toBeGreaterThan(0);
    expect(first.memory.peak).toBeGreaterThanOrEqual(first.memory.active);
    const second = await model.trainStep([examples], { adapter: "a", seed: 1 });
    expect(second.step).toBe(2);
    expect(second.loss).toBeLessThan(first.loss);
  });

  it("names an unknown loss and a missing spec", async () => {
    const handle = nativeModel(model);
    const batches = [leftPad([sequences[0]], 0)];
    const unknown = await rejection(() => handle.evalLosses({ loss: "stage4", batches } as never));
    expect(unknown.code).toBe("E_INVALID_ARGUMENT");
    expect(unknown.message).toMatch(/"lm", "stage12" or "stage3" for loss, got "stage4"/);
    const noSpec = await rejection(() => handle.evalLosses({ loss: "stage12", batches } as never));
    expect(noSpec.code).toBe("E_INVALID_ARGUMENT");
    expect(noSpec.message).toMatch(/spec/);
  });
});

describe("gradient checkpointing", () => {
  const maxRelative = (a: Float32Array, b: Float32Array) => {
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(a[i]));
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    return scale === 0 ? worst : worst / scale;
  };

  it("gives the same loss and gradients, dropout included", async () => {
    const model = await loadModel(base);
    try {
      await model.addAdapter("d", { rank: 4, alpha: 8, dropout: 0.2, seed: 4 });
      // Nonzero B, so that the gradient of A is not zero and the comparison can fail.
      const entries = await model.parameters();
      await model.setParameters(entries.map(([n, t]) => [n, n.endsWith(".b") ? { ...t, data: t.data.map((_, i) => Math.sin(i) * 0.05) } : t]));
      const examples = [{ tokens: [5, 9, 14, 3, 7, 21, 8, 2], lossMask: [0, 0, 0, 1, 1, 1, 1, 1] }];
      const grads = async (gradCheckpoint: boolean) => {
        await model.createTrainer({ trainable: ["d"], lr: 1e-3, gradCheckpoint });
        return model.lossAndGradients(examples, { adapter: "d", train: true, seed: 11 });
      };
      const plain = await grads(false);
      const recomputed = await grads(true);
      expect(recomputed.loss).toBeCloseTo(plain.loss, 6);
      expect(recomputed.grads.map(([n]) => n)).toEqual(plain.grads.map(([n]) => n));
      for (let i = 0; i < plain.grads.length; i++) {
        const [name, g] = plain.grads[i];
        expect(maxRelative(g.data as Float32Array, recomputed.grads[i][1].data as Float32Array)).toBeLessThan(1e-5);
      }
      expect(plain.grads.some(([, g]) => (g.data as Float32Array).some((v) => v !== 0))).toBe(true);
    } finally {
      await model.dispose();
    }
  });

  it("holds fewer activations: the step's peak memory falls", async () => {
    const deep = makeTinyClaraBase({ layers: 8, hiddenSize: 64, heads: 4, kvHeads: 2 });
    const model = await loadModel(deep);
    try {
      await model.addAdapter("d", { rank: 4, alpha: 8, dropout: 0, seed: 4 });
      const tokens = Array.from({ length: 192 }, (_, i) => 5 + ((i * 7) % 200));
      const peak = async (gradCheckpoint: boolean) => {
        await model.createTrainer({ trainable: ["d"], lr: 1e-3, gradCheckpoint, lanes: 1 });
        const before = (await memoryInfo(true)).active;
        const r = await model.trainStep([[0, 1, 2, 3].map(() => ({ tokens }))], { adapter: "d" });
        return r.memory.peak - before;
      };
      const plain = await peak(false);
      const recomputed = await peak(true);
      // Measured 2026-12-07 at 256 tokens: 102 MB without, 38 MB with.
      expect(recomputed).toBeLessThan(0.6 * plain);
    } finally {
      await model.dispose();
      fs.rmSync(deep, { recursive: true, force: true });
    }
  });

  it("gives a stage-1 update equal to the one without it", async () => {
    const records = examplePretrain().slice(0, 8);
    const shape = { compressionRate: 8, docMaxLength: 32, lora: { rank: 2, alpha: 4, dropout: 0.1 }, seed: 5 };
    const after = async (gradCheckpoint: boolean) => {
      const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "clara-ckpt-")), "s1.npz");
      const t = await Stage1Trainer.create(base, records, { ...shape, batchSize: 4, microBatchSize: 2, maxSteps: 1, evalSplit: 0, out, gradCheckpoint });
      try {
        const summary = await t.run();
        return { loss: summary.history[0].loss, params: new Map(await t.clara.model.parameters("model.layers.0.self_attn.q_proj.lora.")) };
      } finally {
        await t.clara.dispose();
        fs.rmSync(path.dirname(out), { recursive: true, force: true });
      }
    };
    const plain = await after(false);
    const recomputed = await after(true);
    expect(recomputed.loss).toBeCloseTo(plain.loss, 5);
    expect(plain.params.size).toBeGreaterThan(0);
    for (const [name, t] of plain.params) expect(maxRelative(t.data as Float32Array, recomputed.params.get(name)!.data as Float32Array)).toBeLessThan(1e-5);
  });
});

describe("a stage loss", () => {
  it("refuses a prompt without memory slots, naming the prompt", async () => {
    const clara = await ClaraModel.create(base, { compressionRate: 8, docMaxLength: 32, lora: { rank: 2, alpha: 4, dropout: 0 }, seed: 5 });
    try {
      const t = clara.templates;
      const docs = clara.encoderBatch(["A short document about nothing."]);
      const withSlots = leftPad([t.answerPrompt("Why?", 1)], t.padId);
      const handle = nativeModel(clara.model);
      const [ok] = await handle.evalLosses({ loss: "stage12", spec: clara.spec(1), batches: [{ docs, prompt: withSlots }] });
      expect(Number.isFinite(ok.loss)).toBe(true);
      const noSlots = leftPad([[5, 6, 7]], t.padId);
      const err = await rejection(() => handle.evalLosses({ loss: "stage12", spec: clara.spec(1), batches: [{ docs, prompt: noSlots }] }));
      expect(err.code).toBe("E_INVALID_ARGUMENT");
      expect(err.message).toMatch(/prompt 0 has no <MEM0> placeholder/);
    } finally {
      await clara.dispose();
    }
  });
});
