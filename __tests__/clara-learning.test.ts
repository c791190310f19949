// Does CLaRa learn on the project's example data? A tiny random model trained by the test:
// stage 1 lowers the answer loss on held-out documents it never saw (compressed, then read by
// the generator), and stage 3 trains on top of it with the generator still answering. A model
// this small barely learns to copy answers out of memory vectors in a test-sized run, so answer
// F1 and retrieval recall are measured with SmolLM2 instead (npm run bench:learning ->
// results/bench/learning.json); the stage-3 ranking measured here is printed, not asserted.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraModel, Stage1Trainer, Stage3Trainer } from "../lib";
import { deriveEndToEndRecords } from "../lib/data/derive";
import { leftPad } from "../lib/data/batches";
import { examplePretrain, makeTinyClaraBase } from "./helpers/tiny-clara";

let base: string;
let work: string;
const train = examplePretrain().filter((r) => r.dataType === "qa").slice(0, 160);
const heldOut = examplePretrain("heldout/pretrain.jsonl").filter((r) => r.dataType === "qa").slice(0, 24);
const shape = { compressionRate: 4, docMaxLength: 128, lora: { rank: 16, alpha: 32, dropout: 0.1 }, seed: 4 };

beforeAll(() => {
  base = makeTinyClaraBase({ hiddenSize: 64, merges: 800 });
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-learning-"));
});
afterAll(() => {
  for (const d of [base, work]) fs.rmSync(d, { recursive: true, force: true });
});

/** Mean stage-1 loss (CE + 0.1·MSE) over held-out documents and their QA targets. */
async function heldOutLoss(clara: ClaraModel): Promise<number> {
  let total = 0;
  for (const r of heldOut) {
    const ex = clara.templates.qaExample(r.questions, r.answers, 2048);
    const out = await clara.handle.claraEvalLoss({
      stage: "stage12",
      batch: { docs: clara.encoderBatch([r.doc]), prompt: leftPad([ex.tokens], clara.templates.padId, { lossMasks: [ex.lossMask] }) },
      spec: clara.spec(1),
    });
    total += out.parts.ce;
  }
  return total / heldOut.length;
}

/** Mean rank (0 = best) of the gold document by the query reasoner, and recall@1. */
async function goldRank(clara: ClaraModel, records: ReturnType<typeof deriveEndToEndRecords>) {
  let rankSum = 0;
  let top1 = 0;
  for (const r of records) {
    const candidates = await clara.compressDocuments(r.docs);
    const { indices } = await clara.retrieve([r.question], [candidates], r.docs.length);
    const rank = indices[0].indexOf(r.posIndex[0]);
    rankSum += rank;
    top1 += rank === 0 ? 1 : 0;
  }
  return { meanRank: rankSum / records.length, recallAt1: top1 / records.length };
}

describe("learning on the example data (tiny model)", () => {
  const stage1 = () => path.join(work, "stage1.npz");

  it("stage 1 lowers the answer loss on held-out documents by a fifth", async () => {
    const t = await Stage1Trainer.create(base, train, { ...shape, out: stage1(), batchSize: 8, microBatchSize: 8, epochs: 3, maxSteps: 60, lr: 3e-3, schedule: "constant" });
    const before = await heldOutLoss(t.clara);
    const summary = await t.run();
    const after = await heldOutLoss(t.clara);
    await t.clara.dispose();
    console.log(`stage 1: held-out CE ${before.toFixed(3)} -> ${after.toFixed(3)}; train loss ${summary.history[0].loss.toFixed(3)} -> ${summary.history.at(-1)!.loss.toFixed(3)}`);
    expect(after).toBeLessThan(0.8 * before);
  });

  it("stage 3 trains the query reasoner and generator on top of stage 1, and the generator still answers", async () => {
    const e2e = deriveEndToEndRecords(train, { candidates: 8, seed: 3 });
    const evalSet = deriveEndToEndRecords(heldOut, { candidates: 8, seed: 4 }).slice(0, 16);
    const t = await Stage3Trainer.fromCheckpoint(stage1(), e2e, { out: path.join(work, "stage3.npz"), batchSize: 8, microBatchSize: 8, maxSteps: 20, k: 2, lr: 1e-3, schedule: "constant", seed: 2 });
    const before = await goldRank(t.clara, evalSet);
    await t.run();
    const after = await goldRank(t.clara, evalSet);
    const answers = await t.clara.generateFromText([evalSet[0].question], [evalSet[0].docs.slice(0, 2)], { maxTokens: 12 });
    await t.clara.dispose();
    console.log(`stage 3: gold mean rank ${before.meanRank.toFixed(2)} -> ${after.meanRank.toFixed(2)}, recall@1 ${before.recallAt1} -> ${after.recallAt1}; answer "${answers[0]}"`);
    expect(after.meanRank).toBeGreaterThanOrEqual(0);
    expect(after.meanRank).toBeLessThanOrEqual(7);
    expect(answers[0].length).toBeGreaterThan(0);
  });
});
