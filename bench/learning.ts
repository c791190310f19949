// bench:learning — does stage 1 teach SmolLM2-135M to answer from compressed documents? A short
// stage-1 run on 200 records of Apple's pretraining sample at ρ = 16, then Cover-EM ("ACC",
// spec §4.1) on 50 held-out records: from the compressed document (before and after training),
// from the full text with the same base model, and with no context. Writes
// results/bench/learning.json.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraModel, readPretrainRecords, Stage1Trainer, type PretrainRecord } from "../lib";
import { sliceRows } from "../lib/clara/clara-model";
import { SYSTEM_PROMPTS } from "../lib/clara/templates";
import { coverExactMatch, f1Score } from "../lib/eval/metrics";
import { packageRoot } from "../lib/native";
import { machine, writeBenchResult } from "./machine";

const TRAIN = Number(process.env.LEARNING_TRAIN ?? 200);
const HELD_OUT = Number(process.env.LEARNING_HELD_OUT ?? 50);
const MAX_NEW = 24;

interface Probe {
  question: string;
  answer: string;
  doc: string;
}

function score(predictions: string[], probes: Probe[]) {
  const n = probes.length;
  return {
    coverEm: +(predictions.reduce((a, p, i) => a + Number(coverExactMatch(p, probes[i].answer)), 0) / n).toFixed(4),
    f1: +(predictions.reduce((a, p, i) => a + f1Score(p, probes[i].answer), 0) / n).toFixed(4),
    examples: predictions.slice(0, 5).map((p, i) => ({ question: probes[i].question, gold: probes[i].answer, prediction: p })),
  };
}

/** Stage 1's own template: the question written into the answer, the continuation's first line is the answer. */
async function fromCompressed(clara: ClaraModel, probes: Probe[]): Promise<string[]> {
  const compressed = await clara.compressDocuments(probes.map((p) => p.doc));
  const outs = await clara.generateFromPrompts(
    probes.map((p) => clara.templates.qaProbePrompt(p.question)),
    probes.map((_, i) => sliceRows(compressed, i, 1)),
    { maxTokens: MAX_NEW, batchSize: 10 },
  );
  return outs.map((o) => o.split("\n")[0].trim());
}

/** The base model (no adapter) with the stage-2/3 system prompt, reading `background` or nothing. */
async function fromText(clara: ClaraModel, probes: Probe[], withText: boolean): Promise<string[]> {
  const tok = clara.model.tokenizer;
  const prompts = probes.map((p) =>
    tok.encode(
      tok.applyChatTemplate(
        [
          { role: "system", content: SYSTEM_PROMPTS.answer },
          { role: "user", content: withText ? `Background:\n${p.doc}\n\nQuestion:${p.question}` : `Question:${p.question}` },
        ],
        { addGenerationPrompt: true },
      ),
    ),
  );
  const out: string[] = [];
  for (let i = 0; i < prompts.length; i += 10) {
    const g = await clara.model.generate(prompts.slice(i, i + 10), { maxTokens: MAX_NEW });
    out.push(...g.texts.map((t) => t.trim().split("\n")[0]));
  }
  return out;
}

async function main() {
  const modelPath = path.join(packageRoot(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  const dataPath = path.join(packageRoot(), "..", "shared", "data", "ml-clara", "pretrain_data.jsonl");
  for (const [what, p] of [["model", modelPath], ["Apple's sample data", dataPath]]) {
    if (!fs.existsSync(p)) throw new Error(`${what} not found at ${p} (npm run fetch-model fetches the model)`);
  }
  const all = readPretrainRecords(dataPath).records.filter((r) => r.dataType === "qa");
  const train: PretrainRecord[] = all.slice(0, TRAIN);
  const probes: Probe[] = all.slice(TRAIN, TRAIN + HELD_OUT).map((r) => ({ question: r.questions[0], answer: r.answers[0], doc: r.doc }));
  const out = path.join(packageRoot(), "checkpoints", "bench", "learning-stage1.npz");
  const options = { compressionRate: 16, docMaxLength: 256, batchSize: 8, microBatchSize: 4, epochs: 1, lr: 2e-4, seed: 42, out };
  const started = performance.now();
  const trainer = await Stage1Trainer.create(modelPath, train, {
    ...options,
    onEvent: (e) => {
      if (e.type === "step") console.error(`step ${e.step}/${e.totalSteps} loss ${e.loss.toFixed(3)} (ce ${e.parts.ce.toFixed(3)}, mse ${e.parts.mse.toFixed(3)}) ${e.stepSeconds.toFixed(1)} s`);
    },
  });
  const clara = trainer.clara;
  const before = score(await fromCompressed(clara, probes), probes);
  const summary = await trainer.run();
  const trainSeconds = (performance.now() - started) / 1000;
  const after = score(await fromCompressed(clara, probes), probes);
  const fullText = score(await fromText(clara, probes, true), probes);
  const noContext = score(await fromText(clara, probes, false), probes);
  await clara.dispose();
  const record = {
    bench: "learning",
    machine: await machine(),
    model: path.basename(modelPath),
    data: { file: "ml-clara pretrain_data.jsonl (Apple)", train: train.length, heldOut: probes.length, question: "first QA pair of each held-out record" },
    training: { ...options, steps: summary.steps, seconds: +trainSeconds.toFixed(1), firstLoss: summary.history[0]?.loss, lastLoss: summary.history.at(-1)?.loss },
    coverEm: { compressedUntrained: before.coverEm, compressedStage1: after.coverEm, fullText: fullText.coverEm, noContext: noContext.coverEm },
    f1: { compressedUntrained: before.f1, compressedStage1: after.f1, fullText: fullText.f1, noContext: noContext.f1 },
    examples: { compressedStage1: after.examples, fullText: fullText.examples, noContext: noContext.examples },
    notes:
      "Compressed answers use stage 1's QA template with the question written in (a stage-1 model has not seen the stage-2 template); " +
      "full text and no context use the base model without adapters and the stage-2/3 system prompt. n = 256/16 = 16 memory tokens per document.",
  };
  console.log(JSON.stringify(record.coverEm), JSON.stringify(record.f1));
  console.log(`wrote ${writeBenchResult("learning", record)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
