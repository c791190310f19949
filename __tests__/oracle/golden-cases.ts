// Writes the inputs of the golden CLaRa cases into OUT_DIR, for make_golden.py: a records file
// per stage (a few example/ records, shortened), then one case folder per stage in the format of
// bench/clara-case.ts (meta.json, batch.npz, params.npz) extended with the training options that
// runStage receives, so that the Python MLX peer can compute the same updates.
//
// usage (after `npm run build`): node dist/__tests__/oracle/golden-cases.js OUT_DIR

import * as fs from "node:fs";
import * as path from "node:path";
import { DEFAULTS } from "../../lib/clara/config";
import { nativeModel } from "../../lib/model/model";
import {
  endToEndRecordToJson,
  instructionRecordToJson,
  pretrainRecordToJson,
  readEndToEndRecords,
  readInstructionRecords,
  readPretrainRecords,
  type EndToEndRecord,
  type PretrainRecord,
} from "../../lib/data/records";
import { packageRoot } from "../../lib/native";
import { resolveStageConfig } from "../../lib/trainers/stage-config";
import { stageSpec } from "../../lib/trainers/trainer";
import { perturbLoraB, stageCaseFields, writeCase, type CaseMeta } from "../../bench/clara-case";
import { BATCH, CANDIDATES, K, openStage, recordsFile, STAGES, TINY, trainOptions, writeGoldenModel, type GoldenStage } from "../helpers/golden";

/** What make_golden.py needs beyond a bench case: runStage's inputs and the base it must rebuild. */
export interface GoldenCaseMeta extends CaseMeta {
  train: {
    batchSize: number;
    microBatchSize: number;
    epochs: number;
    records: number;
    schedule: "cosine" | "constant";
    warmupRatio: number;
    minLrRatio: number;
  };
  tinyModel: { options: typeof TINY; sha256: string };
}

const exampleFile = (name: string) => path.join(packageRoot(), "example", name);

/** Documents are truncated to docMaxLength tokens anyway; shorter texts keep the fixture small. */
function shorten(text: string, chars = 300): string {
  if (text.length <= chars) return text;
  const cut = text.lastIndexOf(" ", chars);
  return text.slice(0, cut > 0 ? cut : chars);
}

function writeJsonl(file: string, rows: Array<Record<string, unknown>>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
}

/** One QA and one paraphrase record for stage 1 (the paraphrase prompt is picked by a seeded draw). */
function stage1Records(): PretrainRecord[] {
  const all = readPretrainRecords(exampleFile("pretrain.jsonl")).records;
  const qa = all.find((r) => r.dataType === "qa")!;
  const para = all.find((r) => r.dataType === "paraphrase")!;
  return [
    { ...qa, doc: shorten(qa.doc), questions: qa.questions.slice(0, 3), answers: qa.answers.slice(0, 3) },
    { ...para, doc: shorten(para.doc), answers: [shorten(para.answers[0], 200)] },
  ];
}

function stage2Records() {
  return readInstructionRecords(exampleFile("instruction.jsonl")).records.slice(0, BATCH).map((r) => ({ ...r, docs: r.docs.slice(0, K).map((d) => shorten(d)) }));
}

/** The gold document and the first others, in their original order. */
function stage3Records(): EndToEndRecord[] {
  return readEndToEndRecords(exampleFile("end_to_end.jsonl"))
    .records.slice(0, BATCH)
    .map((r) => {
      const gold = r.posIndex[0] ?? 0;
      const keep = [gold, ...r.docs.map((_, i) => i).filter((i) => i !== gold).slice(0, CANDIDATES - 1)].sort((a, b) => a - b);
      return { ...r, docs: keep.map((i) => shorten(r.docs[i])), posIndex: [keep.indexOf(gold)] };
    });
}


async function writeStage(stage: GoldenStage, root: string, model: { dir: string; sha256: string }): Promise<void> {
  const dir = path.join(root, `stage${stage}`);
  const { clara, trainer } = await openStage(stage, model.dir, path.join(root, "unused.ckpt"), { root });
  try {
    await perturbLoraB(clara, 100 + stage, 0.05);
    const plan = await trainer.plan();
    const o = resolveStageConfig(`stage${stage}`, trainOptions(stage, ""));
    const spec = stageSpec(clara, plan, o.mseWeight);
    // The canonical order; runStage shuffles the rows of each update, which changes only rounding.
    const batch = plan.batch(plan.train, plan.train.map((_, i) => i));
    const expected = (await nativeModel(clara.model).evalLosses({ loss: plan.nativeStage, batches: [batch], spec }))[0];
    const meta: GoldenCaseMeta = {
      ...stageCaseFields(stage, clara, plan, spec, batch, expected),
      model: model.dir,
      lr: o.lr,
      adamw: { ...DEFAULTS.adamw, weightDecay: o.weightDecay },
      maxGradNorm: o.maxGradNorm,
      steps: 0,
      warmup: 0,
      train: {
        batchSize: o.batchSize,
        microBatchSize: o.microBatchSize,
        epochs: o.epochs,
        records: plan.train.length,
        schedule: o.schedule,
        warmupRatio: o.warmupRatio,
        minLrRatio: o.minLrRatio,
      },
      tinyModel: { options: TINY, sha256: model.sha256 },
    };
    writeCase(dir, meta, batch, await clara.model.parameters());
  } finally {
    await clara.dispose();
  }
}

async function main(out: string) {
  writeJsonl(recordsFile(path.join(out, "stage1")), stage1Records().map(pretrainRecordToJson));
  writeJsonl(recordsFile(path.join(out, "stage2")), stage2Records().map(instructionRecordToJson));
  writeJsonl(recordsFile(path.join(out, "stage3")), stage3Records().map(endToEndRecordToJson));
  const model = writeGoldenModel(out, path.join(out, "model"));
  for (const stage of STAGES) await writeStage(stage, out, model);
  console.log(JSON.stringify(model));
}

const out = process.argv[2];
if (!out) {
  console.error("usage: node dist/__tests__/oracle/golden-cases.js OUT_DIR");
  process.exit(2);
}
main(path.resolve(out)).catch((err) => {
  console.error(err);
  process.exit(1);
});
