// One crossing per step (binding/model_train.cpp): trainStep takes the micro-batches of any loss
// ("lm" or a CLaRa stage) and returns the update's figures with the allocator's memory;
// evalLosses evaluates many batches in one call. The supervised positions and memory-slot
// sources are read on the host when a batch is made (native/train/token_batch.h,
// native/clara/generator.h), so the losses hold no host round trip; golden.test.ts shows their
// numbers are the reference's.
import * as fs from "node:fs";
import { ClaraError, ClaraModel, loadModel } from "../lib";
import { leftPad } from "../lib/data/batches";
import { nativeModel, type Model } from "../lib/model/model";
import { makeTinyClaraBase } from "./helpers/tiny-clara";

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
