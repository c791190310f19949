// Does CLaRa learn on the project's example data? A tiny model built by the test goes through the
// three stages and is judged on held-out documents it never saw:
// - stage 1: answer F1 on their questions, from their compressed form alone, must rise well above
//   the untrained model's, and the answer loss must be far lower with the document than with
//   another one (so the gain is reading, not guessing the likely answer to a kind of question);
// - stage 2: in the stage-2/3 answer template, the answer loss must be lower with the gold
//   document than with another one;
// - stage 3: recall@1 of the gold document among 20 candidates must rise, and the generator must
//   still answer.
//
// Two choices make a 64-wide model able to learn this in a test-sized run:
// - Its embedding rows start from the corpus (tools/tiny-model.ts, contextEmbeddings): words used
//   alike start close together, as in a pretrained model. From pure noise it learns more slowly.
// - It trains on the 400 committed documents plus 3,000 more from the same seeded generator
//   (tools/make-example-data.ts). On the committed ones alone it memorises them instead of
//   learning to read: after 3,000 updates it answers F1 0.71 on training documents but 0.04 on
//   held-out ones.
// LoRA rank = hidden size, so the adapters can change every projection fully: the frozen random
// base has nothing worth keeping.
//
// Runs are seeded and repeat exactly on one machine, but another machine's float rounding sends
// 3,000 updates elsewhere (CI and a dev box gave stage-1 F1 0.060 and 0.049 for one commit), so
// every bound below is set from several runs, on measures chosen for their low noise.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraModel, readPretrainRecords, Stage1Trainer, Stage2Trainer, Stage3Trainer, type EndToEndRecord, type InstructionRecord, type PretrainRecord } from "../../lib";
import { deriveEndToEndRecords, deriveInstructionRecords } from "../../lib/data/derive";
import { concatRows, sliceRows } from "../../lib/clara/clara-model";
import { f1Score, meanRecallAtK, type RetrievalSample } from "../../lib/eval/metrics";
import { generateExampleData } from "../../tools/make-example-data";
import { examplePretrain, makeTinyClaraBase } from "../helpers/tiny-clara";

const HIDDEN = 64;
const heldOutDocs = examplePretrain("heldout/pretrain.jsonl").filter((r) => r.dataType === "qa");
// Stage 1, measured on 2 cores, on CI and a dev box (3,000 updates, 13-19 minutes). Answer F1
// over held-out questions: 0.000 untrained -> 0.049-0.060 trained. Reading shows mostly on answers
// from closed sets (colours, trades, materials), not on invented names, so F1 given another document
// stays close (0.026-0.040 over 243 questions) and that gap of 0.009-0.031 is too small a signal
// to bound. The answer loss tells reading apart far more clearly: over the 366 questions of the 60
// held-out documents, CE 1.05 with the document vs 2.13 with another.
const MIN_GAIN = 0.03;
const MIN_STAGE1_CE_GAP = 0.5;
// Stage 2, measured over 240 held-out questions: answer CE 2.32 with the gold document vs 2.65
// with another (2.40 vs 2.62 from another stage-1 run).
const MIN_STAGE2_CE_GAP = 0.1;
// Stage 3, measured over 1,053 held-out questions (all of each held-out document's questions,
// three draws of 19 distractors) after 200 updates of 16: recall@1 0.055 -> 0.146, mean rank of
// the gold document 10.7 -> 8.0 (seed 4: 0.055 -> 0.199, 10.7 -> 7.3). Chance is 0.05 and 10.5.
// At 4 questions per update (400 updates) the query reasoner took off for two seeds of four
// (0.055 -> 0.166 and -> 0.116, rank -> 6.7) and stayed at chance for the other two (0.051,
// 0.054, rank 10.3, also after 700 updates), likely because with 4 noisy top-k gradients per
// update the generator learns to answer without the document (its CE with another document falls
// from 2.70 to 2.42) before the query reasoner finds the gold one. The generator keeps answering:
// held-out answer CE with the gold document 2.35 before stage 3, 2.23-2.32 after.
const STAGE3_STEPS = 200;
const MIN_RECALL_GAIN = 0.02;
const MIN_RANK_GAIN = 1.0;
const MAX_STAGE3_CE_RISE = 0.1;
const shape = { compressionRate: 4, docMaxLength: 128, lora: { rank: HIDDEN, alpha: HIDDEN, dropout: 0 }, seed: 4 };

let base: string;
let work: string;

beforeAll(() => {
  base = makeTinyClaraBase({ hiddenSize: HIDDEN, merges: 800, initStd: 0.1, embedStd: 0.5, contextEmbeddings: 0.8 });
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-learning-"));
});
afterAll(() => {
  for (const d of [base, work]) fs.rmSync(d, { recursive: true, force: true });
});

const entity = (doc: string) => /^This is a document about (.+?)\./.exec(doc)?.[1] ?? doc;

let training: PretrainRecord[] | undefined;
/** The committed training records plus 3,000 generated documents about entities not held out. */
function trainingRecords(): PretrainRecord[] {
  if (training) return training;
  const file = path.join(work, "more-pretrain.jsonl");
  fs.writeFileSync(file, generateExampleData({ seed: 43, trainDocs: 3000, heldoutDocs: 60 }).get("pretrain.jsonl")!);
  const heldOutNames = new Set(heldOutDocs.map((r) => entity(r.doc)));
  const more = readPretrainRecords(file).records.filter((r) => !heldOutNames.has(entity(r.doc)));
  training = [...examplePretrain(), ...more];
  return training;
}

/**
 * Mean answer F1 over every question of `records`, each asked in stage 1's own format after the
 * earlier pairs of its record (as training presents them), reading the compressed document of
 * record i + `shift` (0: its own document).
 */
async function answerF1(clara: ClaraModel, records: PretrainRecord[], shift = 0) {
  const probes = records.flatMap((r, i) =>
    r.questions.map((q, j) => ({
      prompt: clara.templates.qaProbePrompt(q, { questions: r.questions.slice(0, j), answers: r.answers.slice(0, j) }),
      answer: r.answers[j],
      doc: (i + shift) % records.length,
    })),
  );
  const compressed = await clara.compressDocuments(records.map((r) => r.doc), { batchSize: 32 });
  const outputs = await clara.generateFromPrompts(
    probes.map((p) => p.prompt),
    probes.map((p) => sliceRows(compressed, p.doc, 1)),
    { maxTokens: 10, batchSize: 32 },
  );
  const predictions = outputs.map((o) => o.split("\n")[0].trim());
  const f1 = predictions.reduce((s, p, i) => s + f1Score(p, probes[i].answer), 0) / probes.length;
  return { f1, questions: probes.length, examples: predictions.slice(0, 6).map((p, i) => `${probes[i].answer} -> ${p}`) };
}

/** Recall@1 of the gold document among each record's candidates by the query reasoner, and its mean rank. */
async function retrieval(clara: ClaraModel, records: EndToEndRecord[]) {
  const docs = [...new Set(records.flatMap((r) => r.docs))];
  const compressed = await clara.compressDocuments(docs, { batchSize: 32 });
  const row = new Map(docs.map((d, i) => [d, i]));
  const samples: RetrievalSample[] = [];
  for (let i = 0; i < records.length; i += 16) {
    const batch = records.slice(i, i + 16);
    const candidates = batch.map((r) => concatRows(r.docs.map((d) => sliceRows(compressed, row.get(d)!, 1))));
    const { indices } = await clara.retrieve(batch.map((r) => r.question), candidates, batch[0].docs.length);
    batch.forEach((r, j) => samples.push({ ranked: indices[j], positives: r.posIndex }));
  }
  const meanRank = samples.reduce((s, x) => s + x.ranked.indexOf(x.positives[0]) + 1, 0) / samples.length;
  return { recall: meanRecallAtK(samples, 1), meanRank };
}

/** Mean answer CE of stage 1's QA targets for `records`, read from their compressed documents. */
async function stage1AnswerCe(clara: ClaraModel, records: PretrainRecord[]) {
  const t = new Stage1Trainer(clara, records, { out: path.join(work, "ce-only.npz"), evalRecords: records });
  return (await t.lossOn(records)).parts.ce;
}

/** Mean held-out answer CE of a stage-2/3 generator in the answer template, one document per question. */
async function answerCe(checkpoint: string, records: InstructionRecord[]) {
  const t = await Stage2Trainer.fromCheckpoint(checkpoint, records, { out: path.join(work, "ce-only.npz"), keepGenerator: true, evalRecords: records });
  try {
    return (await t.lossOn(records)).parts.ce;
  } finally {
    await t.clara.dispose();
  }
}

/** Held-out questions in the stage-2/3 answer template, one document each. */
const heldOutInstructions = deriveInstructionRecords(heldOutDocs, { k: 1, seed: 5, questionsPerDoc: 4 });

/** Each record with the document(s) `field` of the record 7 places on: "another document". */
const withOtherDocs = <R, K extends keyof R>(records: R[], field: K) => records.map((r, i) => ({ ...r, [field]: records[(i + 7) % records.length][field] }));

describe("learning on the example data (tiny model)", () => {
  const stage1 = () => path.join(work, "stage1.npz");

  it("stage 1 teaches the generator to answer held-out questions from compressed documents", async () => {
    const t = await Stage1Trainer.create(base, trainingRecords(), { ...shape, out: stage1(), batchSize: 8, microBatchSize: 8, epochs: 10, maxSteps: 3000, lr: 2e-3, schedule: "cosine" });
    const untrained = await answerF1(t.clara, heldOutDocs);
    const summary = await t.run();
    const trained = await answerF1(t.clara, heldOutDocs);
    const otherDocument = await answerF1(t.clara, heldOutDocs, 7);
    const ce = await stage1AnswerCe(t.clara, heldOutDocs);
    const ceOther = await stage1AnswerCe(t.clara, withOtherDocs(heldOutDocs, "doc"));
    await t.clara.dispose();
    console.log(
      `stage 1, ${trained.questions} held-out questions: answer F1 ${untrained.f1.toFixed(3)} untrained -> ${trained.f1.toFixed(3)} trained ` +
        `(${otherDocument.f1.toFixed(3)} given another document); answer CE ${ce.toFixed(3)} with the document, ${ceOther.toFixed(3)} with another; ` +
        `train loss ${summary.history[0].loss.toFixed(2)} -> ${summary.history.at(-1)!.loss.toFixed(2)}\n` +
        trained.examples.join("\n"),
    );
    expect(trained.f1).toBeGreaterThan(untrained.f1 + MIN_GAIN);
    expect(ceOther).toBeGreaterThan(ce + MIN_STAGE1_CE_GAP);
  }, 40 * 60_000);

  // Stage 2 with one document per question, keeping stage 1's generator: the generator learns the
  // answer template that stage 3 trains in. Stage 3 can only learn retrieval from this gap.
  const stage2 = () => path.join(work, "stage2.npz");
  const stage3 = () => path.join(work, "stage3.npz");
  // Stage 2's held-out answer CE with the gold document: stage 2 is judged by it, stage 3 must keep it.
  let stage2GoldCe: number | undefined;
  const stage2AnswerCe = async () => (stage2GoldCe ??= await answerCe(stage2(), heldOutInstructions));
  it("stage 2 teaches the generator to read in the answer template", async () => {
    const inst = deriveInstructionRecords(trainingRecords(), { k: 1, seed: 7, questionsPerDoc: 2 });
    const t = await Stage2Trainer.fromCheckpoint(stage1(), inst, { out: stage2(), keepGenerator: true, batchSize: 8, microBatchSize: 8, maxSteps: 600, lr: 1e-3, schedule: "cosine", seed: 3 });
    await t.run();
    await t.clara.dispose();
    const gold = await stage2AnswerCe();
    const other = await answerCe(stage2(), withOtherDocs(heldOutInstructions, "docs"));
    console.log(`stage 2, ${heldOutInstructions.length} held-out questions: answer CE ${gold.toFixed(3)} with the gold document, ${other.toFixed(3)} with another`);
    expect(other).toBeGreaterThan(gold + MIN_STAGE2_CE_GAP);
  }, 15 * 60_000);

  // The query reasoner starts as a fresh adapter here, not as the reference's default copy of the
  // compressor. Stage 3 moves the retriever towards the documents the generator answers best
  // from, and this generator is a weak judge: ranking the 20 candidates by its own answer loss
  // finds the gold document first for only 0.12-0.17 of held-out questions (mean rank 6.2-6.6).
  // The compressor copy already does better by word overlap (recall@1 0.33-0.49, mean rank about
  // 3.3), so from it stage 3 can only pull recall down (0.49 -> 0.36 in 300 updates; no rise at
  // lr 2e-4, at bs 16, at k = 5, or with the generator frozen). From a fresh start, at chance,
  // the generator's judgement is the better one, and recall rises.
  it("stage 3 trains the query reasoner and generator end to end: recall@1 among 20 rises, and the generator still answers", async () => {
    const train = deriveEndToEndRecords(trainingRecords(), { candidates: 20, seed: 9, questionsPerDoc: 1 });
    const held = [5, 6, 7].flatMap((seed) => deriveEndToEndRecords(heldOutDocs, { candidates: 20, seed, questionsPerDoc: 7 }));
    const t = await Stage3Trainer.fromCheckpoint(stage2(), train, {
      out: stage3(),
      queryReasonerInit: "fresh",
      batchSize: 16,
      microBatchSize: 8,
      maxSteps: STAGE3_STEPS,
      k: 1,
      lr: 5e-4,
      schedule: "constant",
      seed: 2,
    });
    const before = await retrieval(t.clara, held);
    await t.run();
    const after = await retrieval(t.clara, held);
    const sample = held.slice(0, 8);
    const answers = await t.clara.generateFromText(sample.map((r) => r.question), sample.map((r) => [r.docs[r.posIndex[0]]]), { maxTokens: 10 });
    await t.clara.dispose();
    const ceBefore = await stage2AnswerCe();
    const ceAfter = await answerCe(stage3(), heldOutInstructions);
    console.log(
      `stage 3, ${held.length} held-out questions among ${held[0].docs.length} candidates: recall@1 ${before.recall.toFixed(3)} -> ${after.recall.toFixed(3)}, ` +
        `mean rank of the gold document ${before.meanRank.toFixed(2)} -> ${after.meanRank.toFixed(2)}; ` +
        `answer CE with the gold document ${ceBefore.toFixed(3)} -> ${ceAfter.toFixed(3)}\n` +
        sample.map((r, i) => `${r.answer} -> ${answers[i]}`).join("\n"),
    );
    expect(after.recall).toBeGreaterThan(before.recall + MIN_RECALL_GAIN);
    expect(after.meanRank).toBeLessThan(before.meanRank - MIN_RANK_GAIN);
    expect(ceAfter).toBeLessThan(ceBefore + MAX_STAGE3_CE_RISE);
    expect(answers.filter((a) => a.trim().length > 0).length).toBeGreaterThanOrEqual(6);
  }, 30 * 60_000);
});
