// resolveStageConfig: every default from DEFAULTS, every check once with its field named, and the
// CLI (flags and --config parsed by tools/commands/stage-settings.ts) and the API reaching the same
// config for the same settings. Beside it: the checks against records and the starting
// checkpoint, what a checkpoint records for resume, and the one pad-id fallback.

import { ClaraError } from "../lib/errors";
import { DEFAULTS } from "../lib/clara/config";
import { Tokenizer } from "../lib/tokenizer";
import {
  checkStageRecords,
  checkStartingShape,
  recordedLoopSettings,
  resolveStageConfig,
  settingsDiffering,
  type StageSettings,
} from "../lib/trainers/stage-config";
import type { Stage1Options } from "../lib/trainers/stages";
import { readConfigFile } from "../tools/commands/config-file";
import { commandSettings } from "../tools/commands/resolve";
import { flagOf, stageCommandSettings, trainingSettings } from "../tools/commands/stage-settings";
import { formatError } from "../tools/commands/ui";
import { tinyConfig, tinyTokenizerJson, tinyTokens } from "./helpers/tiny-tokenizers";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const STAGES = ["stage1", "stage2", "stage3"] as const;

function thrown(f: () => unknown): ClaraError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ClaraError);
    return e as ClaraError;
  }
  throw new Error("expected a ClaraError");
}

const loopDefaults = (stage: (typeof STAGES)[number]) => ({
  batchSize: DEFAULTS.batchSize[stage],
  microBatchSize: DEFAULTS.microBatchSize,
  lanes: DEFAULTS.lanes,
  gradCheckpoint: DEFAULTS.gradCheckpoint,
  epochs: DEFAULTS.epochs,
  maxSteps: undefined,
  lr: DEFAULTS.lr[stage],
  schedule: DEFAULTS.schedule[stage],
  warmupRatio: DEFAULTS.warmupRatio,
  minLrRatio: DEFAULTS.minLrRatio,
  maxGradNorm: DEFAULTS.maxGradNorm,
  weightDecay: DEFAULTS.adamw.weightDecay,
  seed: DEFAULTS.seed,
  evalSplit: DEFAULTS.evalSplit,
  evalEvery: DEFAULTS.evalEvery,
  checkpointEvery: DEFAULTS.checkpointEvery,
  checkpointMinutes: DEFAULTS.checkpointMinutes,
  mseWeight: DEFAULTS.mseWeight,
  maxLength: DEFAULTS.maxLength[stage],
});

describe("defaults", () => {
  test("every setting of every stage is filled in from DEFAULTS", () => {
    expect(resolveStageConfig("stage1", {})).toStrictEqual({
      stage: "stage1",
      ...loopDefaults("stage1"),
      compressionRate: DEFAULTS.compressionRate,
      docMaxLength: DEFAULTS.docMaxLength,
      lora: DEFAULTS.lora,
      memoryInput: DEFAULTS.memoryInput,
      quantize: undefined,
    });
    expect(resolveStageConfig("stage2", {})).toStrictEqual({
      stage: "stage2",
      ...loopDefaults("stage2"),
      compressionRate: undefined,
      docMaxLength: undefined,
      k: DEFAULTS.k.stage2,
      keepGenerator: false,
      trainMemoryTokens: false,
    });
    expect(resolveStageConfig("stage3", {})).toStrictEqual({
      stage: "stage3",
      ...loopDefaults("stage3"),
      compressionRate: undefined,
      docMaxLength: undefined,
      k: DEFAULTS.k.stage3,
      tau: DEFAULTS.tau,
      queryReasonerInit: "compressor",
    });
  });

  test("given settings win; a partial lora keeps the other defaults; resolving a config gives it back", () => {
    const c = resolveStageConfig("stage1", { lr: 3e-4, lora: { rank: 4 }, batchSize: 8, accumulation: 4, maxSteps: 10, quantize: { bits: 4 } });
    expect(c).toMatchObject({ lr: 3e-4, lora: { rank: 4, alpha: DEFAULTS.lora.alpha, dropout: DEFAULTS.lora.dropout }, batchSize: 8, microBatchSize: 2, maxSteps: 10, quantize: { bits: 4 } });
    for (const stage of STAGES) {
      const once = resolveStageConfig(stage, { seed: 3, evalSplit: 0.1, lanes: 1 });
      expect(resolveStageConfig(stage, once)).toStrictEqual(once);
    }
  });
});

describe("each check raises E_INVALID_ARGUMENT naming its field", () => {
  const cases: Array<[stage: (typeof STAGES)[number], settings: StageSettings, field: string, message: RegExp]> = [
    ["stage1", { batchSize: 0 }, "batchSize", /^batchSize must be at least 1, got 0$/],
    ["stage1", { batchSize: 2.5 }, "batchSize", /must be an integer, got 2\.5/],
    ["stage1", { microBatchSize: 0 }, "microBatchSize", /at least 1/],
    ["stage1", { batchSize: 4, microBatchSize: 8 }, "microBatchSize", /^microBatchSize must be at most batchSize \(4\), got 8$/],
    ["stage1", { batchSize: 8, accumulation: 3 }, "accumulation", /^accumulation 3 must divide batchSize 8$/],
    ["stage1", { batchSize: 8, accumulation: 2, microBatchSize: 2 }, "microBatchSize", /microBatchSize 2 disagrees with batchSize \/ accumulation = 4/],
    ["stage1", { lanes: 3 }, "lanes", /^lanes must be 1 or 2, got 3$/],
    ["stage1", { gradCheckpoint: "yes" as never }, "gradCheckpoint", /^gradCheckpoint must be true or false, got "yes"$/],
    ["stage1", { epochs: 0 }, "epochs", /greater than 0/],
    ["stage1", { maxSteps: 0 }, "maxSteps", /at least 1/],
    ["stage1", { lr: 0 }, "lr", /^lr must be greater than 0, got 0$/],
    ["stage1", { lr: Number.NaN }, "lr", /must be a number/],
    ["stage1", { schedule: "linear" as never }, "schedule", /must be one of cosine, constant, got "linear"/],
    ["stage1", { warmupRatio: -0.1 }, "warmupRatio", /0 or more/],
    ["stage1", { minLrRatio: 2 }, "minLrRatio", /in \[0, 1\]/],
    ["stage1", { maxGradNorm: 0 }, "maxGradNorm", /greater than 0/],
    ["stage1", { weightDecay: -1 }, "weightDecay", /0 or more/],
    ["stage1", { seed: -1 }, "seed", /0 or more/],
    ["stage1", { evalSplit: 1 }, "evalSplit", /^evalSplit must be in \[0, 1\), got 1$/],
    ["stage1", { evalEvery: -1 }, "evalEvery", /0 or more/],
    ["stage1", { checkpointEvery: -1 }, "checkpointEvery", /0 or more/],
    ["stage1", { checkpointMinutes: -1 }, "checkpointMinutes", /0 or more/],
    ["stage1", { mseWeight: -1 }, "mseWeight", /0 or more/],
    ["stage1", { maxLength: 0 }, "maxLength", /at least 1/],
    ["stage1", { compressionRate: 0 }, "compressionRate", /at least 1/],
    ["stage1", { docMaxLength: 0 }, "docMaxLength", /at least 1/],
    ["stage1", { compressionRate: 128, docMaxLength: 64 }, "compressionRate", /^compressionRate 128 is larger than docMaxLength 64: no memory token is left.*; e\.g\. docMaxLength 256 compressionRate 32$/],
    ["stage1", { lora: { rank: 0 } }, "lora.rank", /at least 1/],
    ["stage1", { lora: { alpha: 0 } }, "lora.alpha", /greater than 0/],
    ["stage1", { lora: { dropout: 1 } }, "lora.dropout", /in \[0, 1\)/],
    ["stage1", { memoryInput: "whitened" as never }, "memoryInput", /^memoryInput must be one of raw, standardised, got "whitened"$/],
    ["stage2", { k: 0 }, "k", /at least 1/],
    ["stage2", { keepGenerator: "yes" as never }, "keepGenerator", /true or false/],
    ["stage2", { trainMemoryTokens: 1 as never }, "trainMemoryTokens", /true or false/],
    ["stage2", { compressionRate: 64, docMaxLength: 32 }, "compressionRate", /no memory token is left/],
    ["stage3", { tau: 0 }, "tau", /greater than 0/],
    ["stage3", { queryReasonerInit: "random" as never }, "queryReasonerInit", /must be one of compressor, fresh/],
  ];
  test.each(cases)("%s %j → %s", (stage, settings, field, message) => {
    const e = thrown(() => resolveStageConfig(stage, settings));
    expect(e).toMatchObject({ code: "E_INVALID_ARGUMENT", field });
    expect(e.message).toMatch(message);
  });

  test("with the CLI's naming the field is the flag and the message does not repeat it", () => {
    const cli = (settings: StageSettings) => thrown(() => resolveStageConfig("stage1", settings, { name: flagOf }));
    expect(formatError(cli({ lanes: 3 }))).toBe("clara-train: --lanes: must be 1 or 2, got 3");
    expect(formatError(cli({ lora: { rank: 0 } }))).toBe("clara-train: --lora-rank: must be at least 1, got 0");
    expect(formatError(cli({ batchSize: 4, microBatchSize: 8 }))).toBe("clara-train: --micro-batch-size: must be at most --batch-size (4), got 8");
    expect(formatError(cli({ batchSize: 8, accumulation: 3 }))).toBe("clara-train: --accumulation: --accumulation 3 must divide --batch-size 8");
    expect(formatError(cli({ compressionRate: 128, docMaxLength: 64 }))).toMatch(
      /^clara-train: --compression-rate: compressionRate 128 is larger than docMaxLength 64: no memory token is left .*; e\.g\. --doc-max-length 256 --compression-rate 32$/,
    );
  });
});

describe("the CLI and the API reach the same config", () => {
  test("flags, a --config file and trainer options for the same settings", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-stage-config-"));
    try {
      const file = path.join(dir, "run.yaml");
      fs.writeFileSync(file, "lr: 0.0003\nstage1:\n  loraRank: 4\n  memoryInput: standardised\n  batchSize: 8\n");
      // --accumulation 4 --lanes 1 --quantize 4 --seed 7 on the command line (yargs gives numbers and strings).
      const flags = { data: "d.jsonl", accumulation: 4, lanes: 1, quantize: "4", seed: 7 };
      const cli = stageCommandSettings("stage1", commandSettings("stage1", flags, readConfigFile(file)));
      const api = resolveStageConfig("stage1", { lr: 3e-4, lora: { rank: 4 }, memoryInput: "standardised", batchSize: 8, microBatchSize: 2, lanes: 1, quantize: { bits: 4 }, seed: 7 });
      expect(cli.config).toEqual(api); // (--quantize 4 without --group-size: groupSize undefined)
      // The trainer gets the resolved settings with the run's wiring (train.ts createTrainer), and resolves them to the same.
      if (cli.config.stage !== "stage1") throw new Error("a stage-1 config");
      const options: Stage1Options = { ...cli.config, out: "x.npz", resume: false };
      expect(resolveStageConfig("stage1", options)).toStrictEqual(cli.config);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    for (const stage of ["stage2", "stage3"] as const) {
      const cli = stageCommandSettings(stage, { data: "d.jsonl", k: 3, tau: 0.1, keepGenerator: true, lr: 1e-3 });
      expect(cli.config).toStrictEqual(resolveStageConfig(stage, { k: 3, tau: 0.1, keepGenerator: true, lr: 1e-3 }));
    }
  });

  test("the CLI's record of a run keeps its keys and values (checkpoints and the pipeline's skip compare it)", () => {
    // --grad-checkpoint changes the memory a run needs, not its weights: it is not in the record.
    const { effective, run } = stageCommandSettings("stage1", { data: "d.jsonl", accumulation: 2, batchSize: 4, lanes: 1, gradCheckpoint: true });
    expect(run).toMatchObject({ data: "d.jsonl", out: "checkpoints/stage1/compressor.npz", results: "results", plots: true, model: "models/SmolLM2-135M-Instruct.Q4_1.gguf" });
    expect(trainingSettings(effective)).toStrictEqual({
      batchSize: 4,
      checkpointEvery: 0,
      compressionRate: 32,
      data: "d.jsonl",
      docMaxLength: 256,
      epochs: 1,
      evalEvery: 0,
      evalSplit: 0,
      lanes: 1,
      loraAlpha: 32,
      loraDropout: 0.1,
      loraRank: 16,
      lr: 1e-4,
      maxGradNorm: 1,
      maxLength: 2048,
      microBatchSize: 2,
      minLrRatio: 0.1,
      model: "models/SmolLM2-135M-Instruct.Q4_1.gguf",
      out: "checkpoints/stage1/compressor.npz",
      schedule: "cosine",
      seed: 42,
      warmupRatio: 0.03,
      weightDecay: 0,
    });
    const s3 = stageCommandSettings("stage3", { data: "d.jsonl", candidates: 8 }).effective;
    expect(trainingSettings(s3)).toMatchObject({ candidates: 8, from: "checkpoints/stage2/generator.npz", k: 5, tau: 0.02, queryReasonerInit: "compressor", lr: 5e-6, batchSize: 32, maxLength: 1024 });
    expect(s3).not.toHaveProperty("mseWeight");
  });

  test("the CLI's own settings: --data is needed, counts are positive", () => {
    expect(thrown(() => stageCommandSettings("stage2", {}))).toMatchObject({ field: "--data", message: expect.stringMatching(/^stage2 needs training records/) });
    expect(formatError(thrown(() => stageCommandSettings("stage3", { data: "d.jsonl", candidates: 0 })))).toBe("clara-train: --candidates: must be at least 1, got 0");
  });
});

describe("checks against the records and the starting checkpoint", () => {
  const docs = (n: number, line?: number) => ({ docs: Array.from({ length: n }, (_, i) => `d${i}`), line });

  test("stage 2: every record has k documents", () => {
    const c = resolveStageConfig("stage2", { k: 2 });
    checkStageRecords(c, [docs(2), docs(2)]);
    expect(thrown(() => checkStageRecords(c, [docs(2), docs(3, 7)]))).toMatchObject({ code: "E_DATA_FIELD", line: 7, field: "docs" });
  });

  test("stage 3: the same candidate count in every record, and k ≤ N", () => {
    const c = resolveStageConfig("stage3", { k: 3 });
    checkStageRecords(c, [docs(4), docs(4)]);
    const uneven = thrown(() => checkStageRecords(c, [docs(4), docs(5, 2)], { file: "s3.jsonl", name: flagOf }));
    expect(uneven).toMatchObject({ code: "E_DATA_FIELD", file: "s3.jsonl", line: 2, field: "docs" });
    expect(uneven.message).toBe("has 5 candidate documents but the first record has 4; every stage-3 record needs the same number (or pass --candidates N to keep N of each)");
    expect(thrown(() => checkStageRecords(c, [docs(2)]))).toMatchObject({ code: "E_INVALID_ARGUMENT", field: "k", message: "k = 3 is larger than the 2 candidates per question; lower k" });
    expect(formatError(thrown(() => checkStageRecords(c, [docs(2)], { file: "s3.jsonl", name: flagOf })))).toBe(
      "clara-train: --k: k = 3 is larger than the 2 candidates per question in s3.jsonl; lower --k",
    );
  });

  test("stages 2-3: a given ρ or document length must be the checkpoint's", () => {
    checkStartingShape({}, { compressionRate: 16, docMaxLength: 64 });
    checkStartingShape({ compressionRate: 16 }, { compressionRate: 16, docMaxLength: 64 });
    const e = thrown(() => checkStartingShape({ docMaxLength: 128 }, { compressionRate: 16, docMaxLength: 64 }, { file: "s1.npz", stage: "stage1", name: flagOf }));
    expect(e).toMatchObject({ code: "E_CHECKPOINT_MISMATCH", file: "s1.npz", field: "clara.docMaxLength" });
    expect(formatError(e)).toBe("clara-train: s1.npz: clara.docMaxLength: was trained with docMaxLength 64, not 128; pass --doc-max-length 64 (or leave it out), or retrain stage1 with --doc-max-length 128");
  });
});

describe("what a checkpoint records, and resume's comparison", () => {
  test("the loop's recorded settings, in the order checkpoints hold them (no lanes, no checkpoint timing)", () => {
    expect(Object.keys(recordedLoopSettings(resolveStageConfig("stage1", {})))).toEqual([
      "batchSize", "microBatchSize", "epochs", "lr", "schedule", "warmupRatio", "minLrRatio", "maxGradNorm", "weightDecay", "seed", "evalEvery", "checkpointEvery", "mseWeight", "maxSteps",
    ]);
  });

  test("a setting a checkpoint predates counts as the value those runs used", () => {
    const now = { lr: 1e-4, mseWeight: DEFAULTS.mseWeight, memoryInput: "raw", quantization: { mode: "float", bits: 0, groupSize: 0 } };
    expect(settingsDiffering(now, { lr: 1e-4 })).toEqual([]);
    expect(settingsDiffering({ ...now, mseWeight: 0 }, { lr: 1e-4 })).toEqual(["mseWeight"]);
    expect(settingsDiffering({ ...now, lr: 2e-4, memoryInput: "standardised" }, { lr: 1e-4 })).toEqual(["lr", "memoryInput"]);
    expect(settingsDiffering({ maxSteps: undefined }, { lr: 1e-4 })).toEqual([]);
  });
});

test("batches are padded with the pad token, else BOS (the reference), else EOS, else 0", () => {
  const tokens = tinyTokens();
  const id = (t: string) => tokens.indexOf(t);
  const tok = (config: Record<string, string>) => new Tokenizer(tinyTokenizerJson(), { ...tinyConfig(), bos_token: undefined, eos_token: undefined, ...config });
  expect(tok({ pad_token: "<|im_end|>", bos_token: "<|im_start|>" }).batchPadId).toBe(id("<|im_end|>"));
  expect(tok({ bos_token: "<|im_start|>", eos_token: "<|endoftext|>" }).batchPadId).toBe(id("<|im_start|>"));
  expect(tok({ eos_token: "<|endoftext|>" }).batchPadId).toBe(id("<|endoftext|>"));
  expect(tok({}).batchPadId).toBe(0);
});
