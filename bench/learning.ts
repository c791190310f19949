// bench:learning — does this package train a CLaRa that answers from its own compressed documents?
// SmolLM2-135M-Instruct through stages 1 → 2 → 3 on fictional-entity records (example/ plus
// generated ones), judged only on example/heldout/ entities, whose names appear in no training
// record. Every figure carries its standard error and sits next to its baselines:
//   stage 1  a learning curve of held-out answer F1 / Cover-EM from the compressed document (the
//            stage-1 QA probe), with the untrained compressor at update 0, against the same base
//            reading the full text and with no context;
//   stage 2  k = 5 compressed documents against the same five as text;
//   stage 3  recall@1/@5 of the gold document among 20 for the trained query reasoner, the
//            untrained one (the compressor copy) and BM25 over the text; answer F1 end to end;
//   and prompt tokens and seconds of generation from compressed vs full-text context.
// Resumable: --resume continues the unfinished stage from its last checkpoint and skips finished
// ones. Writes results/bench/learning.json (partial while running) and learning.png.
//
//   node dist/bench/learning.js [--resume] [--recipe recipe.json] [--name learning]

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import {
  ClaraModel,
  readEndToEndRecords,
  readInstructionRecords,
  readPretrainRecords,
  Stage1Trainer,
  Stage2Trainer,
  Stage3Trainer,
} from "../lib";
import { concatRows, sliceRows } from "../lib/clara/clara-model";
import { trimCandidates, type PretrainRecord } from "../lib/data/records";
import { readCheckpoint } from "../lib/io/checkpoint";
import { writeFileAtomic } from "../lib/io/atomic";
import { Bm25 } from "../lib/eval/bm25";
import { recallAtK } from "../lib/eval/metrics";
import {
  answerFromCompressed,
  answerFromCompressedDocs,
  compressDistinct,
  answerFromText,
  heldOutProbes,
  meanSe,
  pairedGap,
  readingGap,
  type HeldOutAnswers,
  type HeldOutProbe,
  type HeldOutScores,
  type MemoryDiversity,
} from "../lib/eval/heldout";
import { packageRoot } from "../lib/native";
import { lineChartPng, writePng } from "../lib/report/plot";
import type { MemoryInput } from "../lib/clara/config";
import type { TrainEvent } from "../lib/trainers/trainer";
import type { Stage1Options } from "../lib/trainers/stages";
import { generateExampleData } from "../tools/make-example-data";
import { machine, writeBenchResult } from "./machine";

/** The settings under test; a --recipe JSON file overrides any of them. */
const RECIPE = {
  compressionRate: 4,
  docMaxLength: 160,
  lora: { rank: 16, alpha: 32, dropout: 0 },
  seed: 42,
  /** How compressed vectors enter the generator (lib/clara/config.ts DEFAULTS.memoryInput). */
  memoryInput: "raw" as MemoryInput,
  /** Generated fictional-entity documents added to example/pretrain.jsonl (0: none). */
  extraDocs: 2500,
  /**
   * Fraction of the training documents that also get a reconstruction record: the paraphrase
   * template with the document itself as the target, so every document token is supervised.
   */
  reconstruction: 1,
  stage1: {
    steps: 150,
    lr: 1e-3,
    batchSize: 4,
    microBatchSize: 2,
    warmupRatio: 0.03,
    evalEvery: 50,
    mseWeight: 0,
    /**
     * A stage-1 checkpoint (relative to the package root) to continue with a fresh optimizer and
     * schedule (Stage1Trainer.fromCheckpoint); "" trains from the base model.
     */
    from: "",
    /** The seed of the data order when continuing (another run's seed would replay its order); null: the recipe's seed. */
    orderSeed: null as number | null,
  },
  stage2: { steps: 16, lr: 5e-4, batchSize: 8, microBatchSize: 4, warmupRatio: 0.05, evalEvery: 0 },
  stage3: { steps: 16, lr: 1e-4, batchSize: 8, microBatchSize: 4, warmupRatio: 0, evalEvery: 0, candidates: 10, k: 5 },
  /** Held-out probes: documents (up to 60) × questions per document. */
  heldOutDocs: 60,
  questionsPerDoc: 2,
  maxNewTokens: 24,
};
type Recipe = typeof RECIPE;

type Scores = HeldOutScores;
type Probe = HeldOutProbe;

// ---------------------------------------------------------------------------------------
// Data: training records and held-out probes

function entityName(doc: string): string | null {
  return /^This is a document about (?:the )?([^.]+)\./.exec(doc)?.[1] ?? null;
}

function loadData(recipe: Recipe) {
  const root = packageRoot();
  const heldPretrain = readPretrainRecords(path.join(root, "example", "heldout", "pretrain.jsonl")).records;
  const heldNames = new Set(heldPretrain.map((r) => entityName(r.doc)).filter((n): n is string => n !== null));
  let train = readPretrainRecords(path.join(root, "example", "pretrain.jsonl")).records;
  let extra = 0;
  if (recipe.extraDocs > 0) {
    // Another world (another seed) for more documents; any entity that shares a name with a
    // held-out one is dropped, so held-out names stay unseen.
    const files = generateExampleData({ seed: recipe.seed + 1000, trainDocs: recipe.extraDocs, heldoutDocs: 30 });
    const tmp = path.join(root, "checkpoints", "bench", "learning-extra.jsonl");
    fs.mkdirSync(path.dirname(tmp), { recursive: true });
    fs.writeFileSync(tmp, files.get("pretrain.jsonl")!);
    const more = readPretrainRecords(tmp).records.filter((r) => !heldNames.has(entityName(r.doc) ?? ""));
    extra = more.length;
    train = [...train, ...more];
  }
  const qaDocs = train.filter((r) => r.dataType === "qa");
  const reconstructions: PretrainRecord[] = qaDocs
    .slice(0, Math.round(recipe.reconstruction * qaDocs.length))
    .map((r) => ({ dataType: "paraphrase", questions: [], answers: [r.doc], doc: r.doc }));
  train = [...train, ...reconstructions];
  const probeDocs = heldPretrain.filter((r) => r.dataType === "qa").slice(0, recipe.heldOutDocs);
  const probes: Probe[] = heldOutProbes(probeDocs, recipe.questionsPerDoc);
  const heldOutLoss = probeDocs.slice(0, 24);
  const instruction = readInstructionRecords(path.join(root, "example", "instruction.jsonl")).records;
  const heldInstruction = readInstructionRecords(path.join(root, "example", "heldout", "instruction.jsonl")).records.slice(0, recipe.heldOutDocs);
  const e2eFile = path.join(root, "example", "end_to_end.jsonl");
  const endToEnd = trimCandidates(readEndToEndRecords(e2eFile).records, recipe.stage3.candidates, e2eFile);
  const heldEndToEnd = readEndToEndRecords(path.join(root, "example", "heldout", "end_to_end.jsonl")).records.slice(0, recipe.heldOutDocs);
  return { train, extra, reconstructions: reconstructions.length, probes, heldOutLoss, instruction, heldInstruction, endToEnd, heldEndToEnd };
}

// ---------------------------------------------------------------------------------------
// The run and its resumable state

interface CurvePoint {
  step: number;
  seconds: number;
  compressed: Scores;
  memory?: MemoryDiversity;
  /** Held-out stage-1 answer CE from the record's own compressed document and from another's: equal when nothing is read. */
  answerCe?: { ownDocument: number; otherDocument: number };
  examples: Array<{ question: string; gold: string; prediction: string }>;
}

interface State {
  recipe: Recipe;
  machine?: Record<string, unknown>;
  data?: Record<string, unknown>;
  baselines?: { fullText: Scores; noContext: Scores; perQuestion: { fullText: number[]; noContext: number[] }; generation: Record<string, unknown> };
  stage1?: { curve: CurvePoint[]; trainSeconds: number; done: boolean; heldOutLoss: Array<{ step: number; loss: number }>; targets?: Record<string, unknown> };
  stage2?: Record<string, unknown>;
  stage3?: Record<string, unknown>;
}


async function main() {
  const { values } = parseArgs({
    options: { resume: { type: "boolean", default: false }, recipe: { type: "string" }, name: { type: "string", default: "learning" } },
  });
  const root = packageRoot();
  const recipe: Recipe = values.recipe ? deepMerge(RECIPE, JSON.parse(fs.readFileSync(values.recipe, "utf8"))) : RECIPE;
  const modelPath = path.join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!fs.existsSync(modelPath)) throw new Error(`model not found at ${modelPath} (npm run fetch-model fetches it)`);
  const dir = path.join(root, "checkpoints", "bench", values.name!);
  fs.mkdirSync(dir, { recursive: true });
  const stateFile = path.join(dir, "state.json");
  let state: State = { recipe };
  if (values.resume && fs.existsSync(stateFile)) {
    state = JSON.parse(fs.readFileSync(stateFile, "utf8"));
    // Settings added to the recipe since the run started count at their defaults.
    state.recipe = deepMerge(RECIPE, state.recipe);
    if (JSON.stringify(state.recipe) !== JSON.stringify(recipe)) throw new Error(`${stateFile} was run with another recipe; rerun without --resume`);
  }
  const save = async () => {
    writeFileAtomic(stateFile, new TextEncoder().encode(JSON.stringify(state, null, 2)));
    const done = Boolean(state.stage1?.done && state.stage2?.done && state.stage3?.done);
    writeBenchResult(values.name!, { bench: "learning", partial: !done, ...state });
    if (state.stage1 && state.baselines) await writeCurve(path.join(root, "results", "bench", `${values.name}.png`), state);
  };
  state.machine = await machine();
  const data = loadData(recipe);
  state.data = {
    train: `example/pretrain.jsonl + ${data.extra} generated fictional-entity records (seed ${recipe.seed + 1000}) + ${data.reconstructions} reconstruction records`,
    trainRecords: data.train.length,
    heldOut: `example/heldout/pretrain.jsonl: first ${recipe.questionsPerDoc} questions of ${recipe.heldOutDocs} held-out documents (entities never seen in training)`,
    probes: data.probes.length,
  };
  const golds = data.probes.map((p) => p.answer);
  const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

  // ---- Stage 1
  const s1 = path.join(dir, "stage1.npz");
  if (!state.stage1?.done) {
    const resume = values.resume && fs.existsSync(s1) && !readCheckpoint(s1).metadata.complete;
    const o = recipe.stage1;
    const continued = o.from ? path.resolve(root, o.from) : null;
    const created = {
      compressionRate: recipe.compressionRate,
      docMaxLength: recipe.docMaxLength,
      lora: recipe.lora,
      memoryInput: recipe.memoryInput,
    };
    const options: Stage1Options = {
      ...(continued ? { modelPath } : created),
      seed: o.orderSeed ?? recipe.seed,
      out: s1,
      batchSize: o.batchSize,
      microBatchSize: o.microBatchSize,
      lr: o.lr,
      warmupRatio: o.warmupRatio,
      mseWeight: o.mseWeight,
      maxSteps: o.steps,
      epochs: 100,
      evalEvery: o.evalEvery,
      checkpointEvery: o.evalEvery,
      evalRecords: data.heldOutLoss,
      resume,
      onEvent: (e: TrainEvent) => {
        if (e.type === "step") log(`stage1 ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(3)} (${Object.entries(e.parts).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ")}) ${e.stepSeconds.toFixed(1)} s`);
        if (e.type === "eval") {
          log(`stage1 held-out loss ${e.loss.toFixed(3)}`);
          state.stage1!.heldOutLoss.push({ step: e.step, loss: +e.loss.toFixed(4) });
        }
      },
      probe: async (step) => {
        const r = await answerFromCompressed(trainer.clara, data.probes, recipe.maxNewTokens);
        const s = r.scores;
        const reads = await answerCeOwnAndOther(trainer, data.heldOutLoss);
        state.stage1!.curve = state.stage1!.curve.filter((p) => p.step < step);
        state.stage1!.curve.push({ step, seconds: +trainSecondsSoFar().toFixed(0), compressed: s, memory: r.memory, answerCe: reads, examples: examples(r.texts) });
        log(`stage1 @${step}: compressed F1 ${s.f1} ± ${s.f1Se}, Cover-EM ${s.coverEm} ± ${s.coverEmSe}; memory cosine between documents ${r.memory?.betweenDocuments}, first/last slot ${r.memory?.firstLastSlot}; held-out answer CE ${reads.ownDocument} own document, ${reads.otherDocument} another`);
        if (step === o.steps) {
          state.stage1!.targets = stage1Targets(r, state);
          // Generation cost from compressed context, for the same questions as the full-text baseline.
          state.baselines!.generation.compressed = { meanPromptTokens: r.promptTokens, seconds: r.seconds };
        }
        await save();
      },
    };
    const trainer = continued
      ? await Stage1Trainer.fromCheckpoint(continued, data.train, options)
      : await Stage1Trainer.create(modelPath, data.train, options);
    const clara = trainer.clara;
    const examples = (texts: string[]) => texts.slice(0, 6).map((p, i) => ({ question: data.probes[i].question, gold: golds[i], prediction: p }));
    if (!state.stage1 || !resume) state.stage1 = { curve: [], trainSeconds: 0, done: false, heldOutLoss: [] };
    // The baselines depend only on the base model and the probes: cached across recipes.
    const baselineFile = path.join(root, "checkpoints", "bench", `baselines-${baselineKey(clara, data.probes, recipe.maxNewTokens)}.json`);
    if (!state.baselines && fs.existsSync(baselineFile)) state.baselines = JSON.parse(fs.readFileSync(baselineFile, "utf8"));
    if (!state.baselines) {
      log("baselines: base model with the full text, and with no context");
      const full = await answerFromText(clara, data.probes.map((p) => ({ question: p.question, answer: p.answer, background: p.doc })), recipe.maxNewTokens);
      const none = await answerFromText(clara, data.probes.map((p) => ({ question: p.question, answer: p.answer })), recipe.maxNewTokens);
      state.baselines = {
        fullText: full.scores,
        noContext: none.scores,
        perQuestion: { fullText: full.perQuestionF1, noContext: none.perQuestionF1 },
        generation: {
          fullText: { meanPromptTokens: full.promptTokens, seconds: full.seconds },
          noContext: { meanPromptTokens: none.promptTokens, seconds: none.seconds },
        },
      };
      writeFileAtomic(baselineFile, new TextEncoder().encode(JSON.stringify(state.baselines)));
      const [f, n] = [full.scores, none.scores];
      log(`full text F1 ${f.f1} ± ${f.f1Se}, Cover-EM ${f.coverEm}; no context F1 ${n.f1} ± ${n.f1Se}, Cover-EM ${n.coverEm}`);
    }
    const startedBefore = state.stage1.trainSeconds;
    const t0 = performance.now();
    const trainSecondsSoFar = () => startedBefore + (performance.now() - t0) / 1000;
    // A continued run starts where its checkpoint's own curve ended: no update-0 probe.
    if (!resume && !continued) {
      const r = await answerFromCompressed(clara, data.probes, recipe.maxNewTokens);
      const reads = await answerCeOwnAndOther(trainer, data.heldOutLoss);
      state.stage1.curve = [{ step: 0, seconds: 0, compressed: r.scores, memory: r.memory, answerCe: reads, examples: examples(r.texts) }];
      log(`stage1 @0 (untrained): compressed F1 ${r.scores.f1}, Cover-EM ${r.scores.coverEm}; memory cosine between documents ${r.memory?.betweenDocuments}, first/last slot ${r.memory?.firstLastSlot}; held-out answer CE ${reads.ownDocument} own document, ${reads.otherDocument} another`);
      await save();
    }
    const summary = await trainer.run();
    state.stage1.trainSeconds = +trainSecondsSoFar().toFixed(0);
    if (summary.interrupted) return;
    state.stage1.done = true;
    await save();
    await clara.dispose();
  }
  // Stages 2 and 3 are added on top of the stage-1 checkpoint below.
  await stagesTwoAndThree(state, data, dir, save, log);
}

/** Held-out answer CE with each record's own document and with another record's (the generator reads the slots only if the second is higher). */
async function answerCeOwnAndOther(trainer: Stage1Trainer, records: PretrainRecord[]) {
  const { own, other } = await readingGap(trainer, records, 7);
  return { ownDocument: +own.toFixed(4), otherDocument: +other.toFixed(4) };
}

function baselineKey(clara: ClaraModel, probes: Probe[], maxNewTokens: number): string {
  const h = createHash("sha256").update(clara.model.fingerprint()).update(JSON.stringify(probes)).update(String(maxNewTokens));
  return h.digest("hex").slice(0, 16);
}

/** The issue's stage-1 targets: compressed Cover-EM ≥ 0.5 × full text, and F1 above no context by > 2 SE. */
function stage1Targets(r: HeldOutAnswers, state: State) {
  const b = state.baselines!;
  const s = r.scores;
  const gap = pairedGap(r.perQuestionF1, b.perQuestion.noContext);
  return {
    coverEmRatioToFullText: +(s.coverEm / Math.max(1e-9, b.fullText.coverEm)).toFixed(3),
    coverEmRatioMet: s.coverEm >= 0.5 * b.fullText.coverEm,
    f1OverNoContext: gap,
    f1OverNoContextMet: gap.mean > 2 * gap.se,
  };
}

// ---------------------------------------------------------------------------------------
// Stages 2 and 3

type Data = ReturnType<typeof loadData>;

async function stagesTwoAndThree(state: State, data: Data, dir: string, save: () => Promise<void>, log: (s: string) => void) {
  const recipe = state.recipe;
  const s1 = path.join(dir, "stage1.npz");
  const s2 = path.join(dir, "stage2.npz");
  const s3 = path.join(dir, "stage3.npz");
  if (!state.stage2?.done) {
    const o = recipe.stage2;
    const t0 = performance.now();
    const trainer = await Stage2Trainer.fromCheckpoint(s1, data.instruction, {
      out: s2, batchSize: o.batchSize, microBatchSize: o.microBatchSize, lr: o.lr, warmupRatio: o.warmupRatio, maxSteps: o.steps, epochs: 100, seed: recipe.seed,
      onEvent: (e: TrainEvent) => e.type === "step" && log(`stage2 ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(3)} ${e.stepSeconds.toFixed(1)} s`),
    });
    await trainer.run();
    const trainSeconds = (performance.now() - t0) / 1000;
    const clara = trainer.clara;
    const held = data.heldInstruction;
    const cache = (await compressDistinct(clara, held.flatMap((r) => r.docs))).byText;
    const compressed = await answerFromCompressedDocs(
      clara,
      held.map((r) => ({ question: r.question, answer: r.answer, compressed: concatRows(r.docs.map((d) => cache.get(d)!)) })),
      recipe.maxNewTokens,
    );
    const text = await answerFromText(clara, held.map((r) => ({ question: r.question, answer: r.answer, background: r.docs.join("\n\n") })), recipe.maxNewTokens);
    const none = await answerFromText(clara, held.map((r) => ({ question: r.question, answer: r.answer })), recipe.maxNewTokens);
    const c = compressed.scores;
    state.stage2 = {
      done: true,
      trainSeconds: +trainSeconds.toFixed(0),
      heldOut: held.length,
      compressedK5: c,
      textK5: text.scores,
      noContext: none.scores,
      generation: {
        compressed: { meanPromptTokens: compressed.promptTokens, seconds: compressed.seconds },
        text: { meanPromptTokens: text.promptTokens, seconds: text.seconds },
      },
      examples: compressed.texts.slice(0, 6).map((p, i) => ({ question: held[i].question, gold: held[i].answer, prediction: p })),
    };
    log(`stage2: compressed k=5 F1 ${c.f1} ± ${c.f1Se}, text k=5 F1 ${text.scores.f1} ± ${text.scores.f1Se}`);
    await save();
    await clara.dispose();
  }
  if (!state.stage3?.done) {
    const o = recipe.stage3;
    const held = data.heldEndToEnd;
    const t0 = performance.now();
    const trainer = await Stage3Trainer.fromCheckpoint(s2, data.endToEnd, {
      out: s3, batchSize: o.batchSize, microBatchSize: o.microBatchSize, lr: o.lr, warmupRatio: o.warmupRatio, maxSteps: o.steps, epochs: 100, seed: recipe.seed, k: o.k,
      onEvent: (e: TrainEvent) => e.type === "step" && log(`stage3 ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(3)} ${e.stepSeconds.toFixed(1)} s`),
    });
    const clara = trainer.clara;
    const cache = (await compressDistinct(clara, held.flatMap((r) => r.docs))).byText;
    const candidates = held.map((r) => concatRows(r.docs.map((d) => cache.get(d)!)));
    const questions = held.map((r) => r.question);
    const recalls = async () => {
      const { indices, selected } = await clara.retrieve(questions, candidates, 20);
      return { at1: meanSe(indices.map((ix, i) => recallAtK(ix, held[i].posIndex, 1))), at5: meanSe(indices.map((ix, i) => recallAtK(ix, held[i].posIndex, 5))), selected: selected.map((s) => sliceRows(s, 0, 5)) };
    };
    const untrained = await recalls();
    await trainer.run();
    const trainSeconds = (performance.now() - t0) / 1000;
    const trained = await recalls();
    const bm25 = held.map((r) => new Bm25(r.docs).rank(r.question));
    const answers = await answerFromCompressedDocs(
      clara,
      held.map((r, i) => ({ question: r.question, answer: r.answer, compressed: trained.selected[i] })),
      recipe.maxNewTokens,
    );
    const e2e = answers.scores;
    state.stage3 = {
      done: true,
      trainSeconds: +trainSeconds.toFixed(0),
      heldOut: held.length,
      candidates: held[0]?.docs.length,
      recall: {
        trained: { at1: trained.at1, at5: trained.at5 },
        untrained: { at1: untrained.at1, at5: untrained.at5 },
        bm25: { at1: meanSe(bm25.map((ix, i) => recallAtK(ix, held[i].posIndex, 1))), at5: meanSe(bm25.map((ix, i) => recallAtK(ix, held[i].posIndex, 5))) },
        chanceAt1: 1 / (held[0]?.docs.length ?? 20),
      },
      endToEnd: e2e,
    };
    log(`stage3: recall@5 trained ${trained.at5[0]}, untrained ${untrained.at5[0]}; e2e F1 ${e2e.f1}`);
    await save();
    await clara.dispose();
  }
}

async function writeCurve(file: string, state: State) {
  const curve = state.stage1!.curve;
  const b = state.baselines!;
  const last = curve.at(-1)?.step ?? 0;
  const flat = (name: string, y: number) => ({ name, points: [[0, y], [last, y]] as Array<[number, number]> });
  await writePng(
    file,
    lineChartPng({
      title: "Stage 1, held-out questions: answer F1",
      xLabel: "update",
      yLabel: "F1",
      series: [
        { name: "compressed document", points: curve.map((p) => [p.step, p.compressed.f1]) },
        flat("full text (base)", b.fullText.f1),
        flat("no context (base)", b.noContext.f1),
      ],
    }),
  );
}

function deepMerge<T>(base: T, over: unknown): T {
  if (typeof over !== "object" || over === null || Array.isArray(over)) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? deepMerge(out[k], v) : v;
  return out as T;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
