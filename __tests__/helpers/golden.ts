// The golden CLaRa cases (__tests__/fixtures/golden/): one place for everything the case writer
// (__tests__/oracle/golden-cases.ts) and golden.test.ts must build alike — the tiny base model,
// the CLaRa settings, the records and the training options — so that the test runs exactly the
// step the Python MLX peer computed.

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ADAPTERS, ClaraModel, type ClaraCreateOptions } from "../../lib/clara/clara-model";
import { packageRoot } from "../../lib/native";
import { readEndToEndRecords, readInstructionRecords, readPretrainRecords } from "../../lib/data/records";
import type { StageOptions } from "../../lib/trainers/stages";
import { plannedTrainer, type PlannedTrainer } from "../../bench/clara-case";
import { writeTinyModel, type TinyModelOptions } from "../../tools/tiny-model";

// packageRoot, not __dirname: the case writer runs compiled from dist/.
export const GOLDEN_DIR = path.join(packageRoot(), "__tests__", "fixtures", "golden");
export const STAGES = [1, 2, 3] as const;
export type GoldenStage = (typeof STAGES)[number];

/** Hidden 64 with rank-2 adapters keeps the committed fp32 golden files under 0.5 MB. */
export const TINY: TinyModelOptions = { hiddenSize: 64, layers: 2, heads: 4, kvHeads: 2, intermediateSize: 128, merges: 300, seed: 1 };

/** Dropout 0: the peer must see the same forward pass, not the same random masks. */
export const CREATE: ClaraCreateOptions = { compressionRate: 8, docMaxLength: 32, lora: { rank: 2, alpha: 4, dropout: 0 }, seed: 5 };

export const BATCH = 2;
/** Documents per prompt in stages 2-3 and stage-3 candidates per question. */
export const K = 2;
export const CANDIDATES = 4;

/**
 * Three updates on the same batch: with the stage-1/2 cosine schedule the first has lr 0 (its
 * warmup step, as in the reference's HF schedule), the second the full lr and the third a decayed
 * one; stage 3 is constant. A weight decay that the defaults leave at 0 is on so that its term counts.
 */
export function trainOptions(stage: GoldenStage, out: string, extra: Partial<StageOptions> = {}): StageOptions {
  return {
    ...extra,
    out,
    batchSize: BATCH,
    microBatchSize: BATCH,
    epochs: 3,
    weightDecay: 0.1,
    evalSplit: 0,
    seed: 42,
    checkpointMinutes: 0,
    ...(stage === 3 ? { k: K } : {}),
  } as StageOptions;
}

export const recordsFile = (dir: string) => path.join(dir, "records.jsonl");

export function readStageRecords(stage: GoldenStage, dir: string) {
  const file = recordsFile(dir);
  if (stage === 1) return readPretrainRecords(file).records;
  if (stage === 2) return readInstructionRecords(file, { k: K }).records;
  return readEndToEndRecords(file, { candidates: CANDIDATES }).records;
}

/** Every text of the three stages' records: the corpus the tiny tokenizer is learned from. */
export function goldenCorpus(root = GOLDEN_DIR): string[] {
  const texts: string[] = [];
  for (const stage of STAGES) {
    for (const r of readStageRecords(stage, path.join(root, `stage${stage}`)) as unknown as Array<Record<string, unknown>>) {
      for (const v of Object.values(r)) {
        if (typeof v === "string") texts.push(v);
        else if (Array.isArray(v)) texts.push(...v.filter((x): x is string => typeof x === "string"));
      }
    }
  }
  return texts;
}

/** Writes the tiny base (into a fresh temp dir unless `dir` is given); `sha256` covers the files that decide the numbers. */
export function writeGoldenModel(root = GOLDEN_DIR, dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-golden-"))): { dir: string; sha256: string } {
  fs.mkdirSync(dir, { recursive: true });
  writeTinyModel(dir, goldenCorpus(root), TINY);
  const hash = createHash("sha256");
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) hash.update(fs.readFileSync(path.join(dir, f)));
  return { dir, sha256: hash.digest("hex") };
}


export interface GoldenSetup {
  clara: ClaraModel;
  trainer: PlannedTrainer;
}

/** A fresh CLaRa model on the tiny base, with the adapters the stage expects, and its trainer. */
export async function openStage(
  stage: GoldenStage,
  modelDir: string,
  out: string,
  options: { root?: string; extra?: Partial<StageOptions> } = {},
): Promise<GoldenSetup> {
  const root = options.root ?? GOLDEN_DIR;
  const clara = await ClaraModel.create(modelDir, CREATE);
  // Stage 3 starts its query reasoner as a copy of the compressor (Stage3Trainer.fromCheckpoint).
  if (stage === 3) await clara.model.copyAdapter(ADAPTERS.compressor, ADAPTERS.queryReasoner);
  const records = readStageRecords(stage, path.join(root, `stage${stage}`));
  const o = trainOptions(stage, out, options.extra);
  return { clara, trainer: plannedTrainer(stage, clara, records, o) };
}
