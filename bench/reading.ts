// bench:reading — can the generator learn to read the memory slots at all?
// The learning bench asks whether reading generalises to unseen documents; this one asks the
// prior question on a handful of documents trained on over and over. Stage 1 runs on D documents,
// each as a reconstruction record (the document itself as the paraphrase target, so every token is
// supervised) and as its QA record. Every N updates it measures the answer and reconstruction CE on
// those same documents with their own compressed document in the slot and with another's. A
// generator that reads has own < other; one that ignores the slots has them equal, however low
// the loss. Arms differ in one setting (e.g. memoryInput) and run one after another, same seed.
//
//   node dist/bench/reading.js [--docs 8] [--steps 40] [--every 10] [--arm '{"memoryInput":"standardised"}' ...] [--name reading] [--append]

import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readPretrainRecords, Stage1Trainer } from "../lib";
import type { PretrainRecord } from "../lib/data/records";
import { readingGap } from "../lib/eval/heldout";
import { packageRoot } from "../lib/native";
import type { TrainEvent } from "../lib/trainers/trainer";
import { machine, writeBenchResult } from "./machine";

const BASE = {
  compressionRate: 4,
  docMaxLength: 160,
  lora: { rank: 16, alpha: 32, dropout: 0 },
  seed: 42,
  lr: 1e-3,
  batchSize: 4,
  microBatchSize: 2,
  warmupRatio: 0.03,
  mseWeight: 0,
  memoryInput: "raw" as "raw" | "standardised",
};
type Arm = typeof BASE;

interface Point {
  step: number;
  seconds: number;
  /** Mean CE per record kind with the record's own document, with another one, and their gap. */
  qa: { own: number; other: number; gap: number };
  reconstruction: { own: number; other: number; gap: number };
}

async function main() {
  const { values } = parseArgs({
    options: {
      docs: { type: "string", default: "8" },
      steps: { type: "string", default: "40" },
      every: { type: "string", default: "10" },
      arm: { type: "string", multiple: true },
      name: { type: "string", default: "reading" },
      /** Adds the arms to those of an earlier run of the same documents and steps. */
      append: { type: "boolean", default: false },
    },
  });
  const docs = Number(values.docs), steps = Number(values.steps), every = Number(values.every);
  const arms: Arm[] = (values.arm?.length ? values.arm : ["{}"]).map((a) => ({ ...BASE, ...JSON.parse(a) }));
  const root = packageRoot();
  const modelPath = path.join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  if (!fs.existsSync(modelPath)) throw new Error(`model not found at ${modelPath} (npm run fetch-model fetches it)`);
  const qa = readPretrainRecords(path.join(root, "example", "pretrain.jsonl"))
    .records.filter((r) => r.dataType === "qa")
    .slice(0, docs);
  const reconstruction: PretrainRecord[] = qa.map((r) => ({ dataType: "paraphrase", questions: [], answers: [r.doc], doc: r.doc }));
  const log = (s: string) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${s}`);
  const result: Record<string, unknown> = {
    bench: "reading",
    machine: await machine(),
    data: `first ${docs} QA records of example/pretrain.jsonl, each also as a reconstruction record; measured on the same records`,
    steps,
    arms: [] as unknown[],
  };
  const file = path.join(root, "results", "bench", `${values.name}.json`);
  if (values.append && fs.existsSync(file)) {
    const earlier = JSON.parse(fs.readFileSync(file, "utf8"));
    if (earlier.data !== result.data || earlier.steps !== steps) throw new Error(`${file} measured other documents or steps; run without --append`);
    result.arms = earlier.arms;
  }
  for (const arm of arms) {
    const points: Point[] = [];
    const t0 = performance.now();
    const out = path.join(root, "checkpoints", "bench", `${values.name}-arm.npz`);
    const trainer: Stage1Trainer = await Stage1Trainer.create(modelPath, [...qa, ...reconstruction], {
      compressionRate: arm.compressionRate,
      docMaxLength: arm.docMaxLength,
      lora: arm.lora,
      seed: arm.seed,
      memoryInput: arm.memoryInput,
      out,
      batchSize: arm.batchSize,
      microBatchSize: arm.microBatchSize,
      lr: arm.lr,
      warmupRatio: arm.warmupRatio,
      mseWeight: arm.mseWeight,
      maxSteps: steps,
      epochs: 1000,
      evalEvery: every,
      checkpointEvery: 0,
      checkpointMinutes: 0,
      evalRecords: [],
      onEvent: (e: TrainEvent) => e.type === "step" && log(`${e.step}/${e.totalSteps} loss ${e.loss.toFixed(3)} ${e.stepSeconds.toFixed(1)} s`),
      probe: async (step) => {
        points.push(await measure(step));
      },
    });
    const gap = async (records: PretrainRecord[]) => {
      const { own, other } = await readingGap(trainer, records, 1);
      return { own: +own.toFixed(4), other: +other.toFixed(4), gap: +(other - own).toFixed(4) };
    };
    const measure = async (step: number): Promise<Point> => {
      const p = { step, seconds: +((performance.now() - t0) / 1000).toFixed(0), qa: await gap(qa), reconstruction: await gap(reconstruction) };
      log(`${JSON.stringify(arm)} @${step}: QA CE own ${p.qa.own} other ${p.qa.other}; reconstruction CE own ${p.reconstruction.own} other ${p.reconstruction.other}`);
      return p;
    };
    points.push(await measure(0));
    await trainer.run();
    await trainer.clara.dispose();
    fs.rmSync(out, { force: true });
    (result.arms as unknown[]).push({ arm, points });
    writeBenchResult(values.name!, result);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
