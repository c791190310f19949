// Stage1Trainer.fromCheckpoint: more stage-1 updates on top of a checkpoint, with a fresh
// optimizer and schedule. It starts from exactly the checkpoint's weights (same loss), keeps its
// shape and memory-input map, trains, and refuses settings that contradict the checkpoint.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError, Stage1Trainer } from "../lib";
import { examplePretrain, makeTinyClaraBase } from "./helpers/tiny-clara";

let base: string;
let work: string;
const records = examplePretrain().slice(0, 16);
const shape = { compressionRate: 8, docMaxLength: 64, lora: { rank: 4, alpha: 8, dropout: 0 }, seed: 5 };
const loop = { batchSize: 4, microBatchSize: 2, lr: 1e-2, mseWeight: 0, evalSplit: 0 };

beforeAll(() => {
  base = makeTinyClaraBase();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-continue-"));
});
afterAll(() => {
  for (const d of [base, work]) fs.rmSync(d, { recursive: true, force: true });
});

it("continues from the checkpoint's weights, map and shape, and trains on", async () => {
  const first = path.join(work, "first.npz");
  const trainer = await Stage1Trainer.create(base, records, { ...shape, ...loop, memoryInput: "standardised", maxSteps: 2, out: first });
  await trainer.run();
  const probe = records.slice(0, 4);
  const before = (await trainer.lossOn(probe)).loss;
  await trainer.clara.dispose();

  const next = path.join(work, "next.npz");
  const more = await Stage1Trainer.fromCheckpoint(first, records, { ...loop, maxSteps: 2, seed: 6, out: next, modelPath: base });
  try {
    expect(more.clara.memoryInput).toBe("standardised");
    expect(more.clara.compressionRate).toBe(8);
    expect((await more.lossOn(probe)).loss).toBeCloseTo(before, 6);
    const summary = await more.run();
    // A fresh schedule: its own two updates, from update 0.
    expect(summary.steps).toBe(2);
    expect(summary.history.map((h) => h.step)).toEqual([1, 2]);
    expect((await more.lossOn(probe)).loss).not.toBeCloseTo(before, 3);
  } finally {
    await more.clara.dispose();
  }
});

it("refuses a shape or memory input other than the checkpoint's", async () => {
  const file = path.join(work, "raw.npz");
  const t = await Stage1Trainer.create(base, records, { ...shape, ...loop, maxSteps: 1, out: file });
  await t.run();
  await t.clara.dispose();
  const out = path.join(work, "never.npz");
  for (const [options, field] of [
    [{ compressionRate: 4 }, "clara.compressionRate"],
    [{ memoryInput: "standardised" as const }, "clara.memoryInput"],
  ] as const) {
    const err = await Stage1Trainer.fromCheckpoint(file, records, { ...loop, ...options, maxSteps: 1, out, modelPath: base }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ClaraError);
    expect((err as ClaraError).code).toBe("E_CHECKPOINT_MISMATCH");
    expect((err as ClaraError).field).toBe(field);
  }
  expect(fs.existsSync(out)).toBe(false);
});
