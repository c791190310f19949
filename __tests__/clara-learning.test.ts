// Does CLaRa learn on the project's example data? A tiny model built by the test goes through
// stage 1 and is then asked every question of held-out documents it never saw, from their
// compressed form alone. Answer F1 must rise well above the untrained model's, and above what the
// same trained model answers when handed another document, so the gain is reading, not guessing
// the likely answer to a kind of question.
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
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraModel, readEndToEndRecords, readPretrainRecords, Stage1Trainer, Stage3Trainer, type PretrainRecord } from "../lib";
import { concatRows, sliceRows } from "../lib/clara/clara-model";
import { f1Score } from "../lib/eval/metrics";
import { generateExampleData } from "../tools/make-example-data";
import { examplePretrain, makeTinyClaraBase, REPO } from "./helpers/tiny-clara";

const HIDDEN = 64;
const heldOut = examplePretrain("heldout/pretrain.jsonl").filter((r) => r.dataType === "qa").slice(0, 40);
// Measured on the 2-core CI box over 243 held-out questions (3,000 updates, about 13 minutes):
// F1 0.000 untrained -> 0.060 trained, 0.029 given another document. Small but real: reading
// shows mostly on answers from closed sets (colours, trades, materials), not on invented names.
const MIN_GAIN = 0.03;
const MIN_READING_GAIN = 0.02;
const STAGE3_STEPS = 150;
const STAGE3_LR = 5e-4;
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

/** The committed training records plus 3,000 generated documents about entities not held out. */
function trainingRecords(): PretrainRecord[] {
  const file = path.join(work, "more-pretrain.jsonl");
  fs.writeFileSync(file, generateExampleData({ seed: 43, trainDocs: 3000, heldoutDocs: 60 }).get("pretrain.jsonl")!);
  const heldOutNames = new Set(heldOut.map((r) => entity(r.doc)));
  const more = readPretrainRecords(file).records.filter((r) => !heldOutNames.has(entity(r.doc)));
  return [...examplePretrain(), ...more];
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

/** Recall@1 of the gold document among each record's candidates, by the query reasoner. */
async function recallAt1(clara: ClaraModel, records: ReturnType<typeof readEndToEndRecords>["records"]) {
  const docs = [...new Set(records.flatMap((r) => r.docs))];
  const compressed = await clara.compressDocuments(docs, { batchSize: 32 });
  const row = new Map(docs.map((d, i) => [d, i]));
  let hits = 0;
  for (let i = 0; i < records.length; i += 16) {
    const batch = records.slice(i, i + 16);
    const candidates = batch.map((r) => concatRows(r.docs.map((d) => sliceRows(compressed, row.get(d)!, 1))));
    const { indices } = await clara.retrieve(batch.map((r) => r.question), candidates, 1);
    batch.forEach((r, j) => (hits += indices[j][0] === r.posIndex[0] ? 1 : 0));
  }
  return hits / records.length;
}

describe("learning on the example data (tiny model)", () => {
  const stage1 = () => path.join(work, "stage1.npz");

  it("stage 1 teaches the generator to answer held-out questions from compressed documents", async () => {
    const t = await Stage1Trainer.create(base, trainingRecords(), { ...shape, out: stage1(), batchSize: 8, microBatchSize: 8, epochs: 10, maxSteps: 3000, lr: 2e-3, schedule: "cosine" });
    const untrained = await answerF1(t.clara, heldOut);
    const summary = await t.run();
    const trained = await answerF1(t.clara, heldOut);
    const otherDocument = await answerF1(t.clara, heldOut, 1);
    await t.clara.dispose();
    console.log(
      `stage 1, ${trained.questions} held-out questions: answer F1 ${untrained.f1.toFixed(3)} untrained -> ${trained.f1.toFixed(3)} trained ` +
        `(${otherDocument.f1.toFixed(3)} given another document); train loss ${summary.history[0].loss.toFixed(2)} -> ${summary.history.at(-1)!.loss.toFixed(2)}\n` +
        trained.examples.join("\n"),
    );
    expect(trained.f1).toBeGreaterThan(untrained.f1 + MIN_GAIN);
    expect(trained.f1).toBeGreaterThan(otherDocument.f1 + MIN_READING_GAIN);
  }, 40 * 60_000);

  // Recall@1 is printed, not asserted: with this model it does not rise. Stage 3's only signal is
  // how much lower the answer loss is with the gold document in the slot than with a distractor,
  // and this reader does not read in the stage-2/3 answer template (over 240 held-out questions,
  // F1 0.025 with the gold document and 0.025 with another one). The top-k gradient is then
  // noise, and Adam's steps walk the query reasoner away from the compressor it was copied from:
  // recall@1 on those questions went 0.49 -> 0.36 in 300 updates at lr 5e-4 (k = 1), and did not
  // rise at lr 2e-4, after a stage 2 at k = 1 or 5, or at k = 5 with lr 1e-4 either.
  it("stage 3 trains the query reasoner and generator on top of stage 1, and the generator still answers", async () => {
    const train = readEndToEndRecords(path.join(REPO, "example", "end_to_end.jsonl")).records;
    const evalSet = readEndToEndRecords(path.join(REPO, "example", "heldout", "end_to_end.jsonl")).records;
    const t = await Stage3Trainer.fromCheckpoint(stage1(), train, { out: path.join(work, "stage3.npz"), batchSize: 4, microBatchSize: 4, maxSteps: STAGE3_STEPS, k: 1, lr: STAGE3_LR, schedule: "constant", seed: 2 });
    const before = await recallAt1(t.clara, evalSet);
    await t.run();
    const after = await recallAt1(t.clara, evalSet);
    const answers = await t.clara.generateFromText(evalSet.slice(0, 8).map((r) => r.question), evalSet.slice(0, 8).map((r) => [r.docs[r.posIndex[0]]]), { maxTokens: 10 });
    await t.clara.dispose();
    console.log(`stage 3, ${evalSet.length} held-out questions among ${evalSet[0].docs.length} candidates: recall@1 ${before.toFixed(3)} -> ${after.toFixed(3)}; answers ${JSON.stringify(answers)}`);
    expect(answers.filter((a) => a.length > 0).length).toBeGreaterThanOrEqual(6);
  }, 20 * 60_000);
});
