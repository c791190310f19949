// The three CLaRa stages as typed trainers (spec §2.1–2.3). Each turns its records into
// native micro-batches and names what it trains; the loop itself is runStage's.

import { ClaraError } from "../errors";
import { leftPad } from "../data/batches";
import { subSeed } from "../data/random";
import type { EndToEndRecord, InstructionRecord, PretrainRecord } from "../data/records";
import type { NativeStageBatch } from "../native";
import { ADAPTERS, ClaraModel, type ClaraCreateOptions } from "../clara/clara-model";
import { DEFAULTS, type QueryReasonerInit } from "../clara/config";
import type { EncodedExample } from "../clara/templates";
import { runStage, splitRecords, stageSpec, summedLosses, type StagePlan, type TrainOptions, type TrainSummary } from "./trainer";
import {
  checkStageRecords,
  checkStartingShape,
  resolveStageConfig,
  type LoopConfig,
  type Stage1Config,
  type Stage1Settings,
  type Stage2Config,
  type Stage2Settings,
  type Stage3Config,
  type Stage3Settings,
} from "./stage-config";

export type { QueryReasonerInit };

export interface StageOptions extends TrainOptions {
  /** Held-out records; otherwise `evalSplit` of the training records are held out. */
  evalRecords?: unknown[];
}

export type Stage1Options = StageOptions & ClaraCreateOptions & Stage1Settings;
export type Stage2Options = StageOptions & Stage2Settings & { modelPath?: string };
export type Stage3Options = StageOptions & Stage3Settings & { modelPath?: string };

const LOSS_ON_KEYS = -1e12;

abstract class StageTrainer<R, C extends LoopConfig> {
  protected readonly examples = new Map<number, EncodedExample>();
  readonly train: R[];
  readonly heldOut: R[];

  /** `config`: the stage's settings resolved from `options` (resolveStageConfig), with the model's shape. */
  constructor(readonly clara: ClaraModel, records: R[], readonly options: StageOptions, readonly config: C) {
    if (options.evalRecords) {
      this.train = records;
      this.heldOut = options.evalRecords as R[];
    } else {
      const split = splitRecords(records, config.evalSplit, config.seed);
      this.train = split.train;
      this.heldOut = split.eval;
    }
  }

  protected abstract plan(): Promise<StagePlan<R>>;

  async run(): Promise<TrainSummary> {
    return runStage(this.clara, await this.plan(), this.config, this.options);
  }

  /**
   * The mean loss and its parts over `records` with the current weights, one record at a time,
   * without making an optimizer: safe between updates (a probe) and before or after a run.
   */
  async lossOn(records: R[]): Promise<{ loss: number; parts: Record<string, number> }> {
    if (records.length === 0) throw new ClaraError("E_INVALID_ARGUMENT", "lossOn needs at least one record", { field: "records" });
    const plan = await this.plan();
    const spec = stageSpec(this.clara, plan, this.config.mseWeight);
    // Keys in a band of their own, dropped after: the training and held-out examples' cache stays as it was.
    const keys = records.map((_, i) => LOSS_ON_KEYS - i);
    try {
      const sums = await summedLosses(this.clara, plan, spec, records.map((r, i) => [r, keys[i]] as const));
      const mean = (v: number) => v / records.length;
      return { loss: mean(sums.loss), parts: Object.fromEntries(Object.entries(sums.parts).map(([k, v]) => [k, mean(v)])) };
    } finally {
      for (const k of keys) this.examples.delete(k);
    }
  }

  /** Tokenizes each example once (per role: training or held-out). */
  protected cached(key: number, make: () => EncodedExample): EncodedExample {
    let e = this.examples.get(key);
    if (!e) this.examples.set(key, (e = make()));
    return e;
  }

  protected promptBatch(examples: EncodedExample[]) {
    return leftPad(
      examples.map((e) => e.tokens),
      this.clara.templates.padId,
      { lossMasks: examples.map((e) => e.lossMask) },
    );
  }
}

/** The model's ρ and document length, after checking given ones against them. */
function shapeOf(clara: ClaraModel, options: { compressionRate?: number; docMaxLength?: number }) {
  const shape = { compressionRate: clara.compressionRate, docMaxLength: clara.docMaxLength };
  checkStartingShape(options, shape);
  return shape;
}

/** Disposes `clara` when `make` fails: a factory's caller never sees the model. */
async function orDispose<T>(clara: ClaraModel, make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (err) {
    await clara.dispose();
    throw err;
  }
}

/** Stage 1, salient compressor pretraining: one document per record, QA or paraphrase target. */
export class Stage1Trainer extends StageTrainer<PretrainRecord, Stage1Config> {
  constructor(clara: ClaraModel, records: PretrainRecord[], options: Stage1Options) {
    const shape = shapeOf(clara, options);
    super(clara, records, options, resolveStageConfig("stage1", { ...options, ...shape, lora: clara.lora, memoryInput: clara.memoryInput }));
  }

  static async create(modelPath: string, records: PretrainRecord[], options: Stage1Options): Promise<Stage1Trainer> {
    const config = resolveStageConfig("stage1", options);
    const clara = await ClaraModel.create(modelPath, {
      compressionRate: config.compressionRate,
      docMaxLength: config.docMaxLength,
      lora: config.lora,
      seed: config.seed,
      dtype: options.dtype,
      quantize: config.quantize,
    });
    return orDispose(clara, async () => {
      // Calibrated on the untrained compressor's view of the training documents; a resumed run
      // puts its own saved map back over this one.
      if (config.memoryInput === "standardised") {
        const docs = [...new Set(records.map((r) => r.doc))].slice(0, DEFAULTS.memoryInputCalibrationDocs);
        await clara.calibrateMemoryInput(docs);
      }
      return new Stage1Trainer(clara, records, options);
    });
  }

  /**
   * Stage 1 continued from a checkpoint's weights (an earlier stage-1 run, finished or not) with
   * a fresh optimizer and schedule, as mlx-lm's --resume-adapter-file: more updates on the same or
   * new records. Its shape, LoRA and memory-input map are the checkpoint's; a setting that
   * contradicts them is refused. To continue an interrupted run exactly, use `resume` instead.
   */
  static async fromCheckpoint(checkpoint: string, records: PretrainRecord[], options: Stage1Options & { modelPath?: string }): Promise<Stage1Trainer> {
    const clara = await ClaraModel.load(checkpoint, { modelPath: options.modelPath });
    return orDispose(clara, async () => {
      checkStartingShape(options, clara, { file: checkpoint });
      if (options.memoryInput !== undefined && options.memoryInput !== clara.memoryInput) {
        throw new ClaraError(
          "E_CHECKPOINT_MISMATCH",
          `${checkpoint} was trained with memoryInput "${clara.memoryInput}", not "${options.memoryInput}"; leave memoryInput out to keep the checkpoint's`,
          { file: checkpoint, field: "clara.memoryInput" },
        );
      }
      return new Stage1Trainer(clara, records, options);
    });
  }

  protected async plan(): Promise<StagePlan<PretrainRecord>> {
    const { maxLength, seed } = this.config;
    const t = this.clara.templates;
    const encode = (r: PretrainRecord, key: number) =>
      this.cached(key, () =>
        r.dataType === "paraphrase"
          ? t.paraphraseExample(r.answers[0], subSeed(seed, `paraphrase-${key}`), maxLength)
          : t.qaExample(r.questions, r.answers, maxLength),
      );
    return {
      stage: "stage1",
      nativeStage: "stage12",
      k: 1,
      train: this.train,
      eval: this.heldOut,
      trainable: [ADAPTERS.compressor, ADAPTERS.generator, "clara.mem_embeddings"],
      batch: (examples, keys) => ({
        docs: this.clara.encoderBatch(examples.map((r) => r.doc)),
        prompt: this.promptBatch(examples.map((r, i) => encode(r, keys[i]))),
      }),
      config: this.describe(maxLength),
    };
  }

  protected describe(maxLength: number): Record<string, unknown> {
    // The base's precision is part of the run: resuming on another would change every update.
    return {
      stage: "stage1",
      compressionRate: this.clara.compressionRate,
      docMaxLength: this.clara.docMaxLength,
      maxLength,
      lora: this.clara.lora,
      quantization: this.clara.model.quantization,
      memoryInput: this.clara.memoryInput,
    };
  }
}

/** Stage 2, instruction tuning over k compressed documents; the generator starts fresh by default (spec §7 Q1). */
export class Stage2Trainer extends StageTrainer<InstructionRecord, Stage2Config> {
  /** k is the records' own count of documents unless given. */
  constructor(clara: ClaraModel, records: InstructionRecord[], options: Stage2Options) {
    const shape = shapeOf(clara, options);
    super(clara, records, options, resolveStageConfig("stage2", { ...options, ...shape, k: options.k ?? records[0]?.docs.length }));
    checkStageRecords(this.config, [...this.train, ...this.heldOut]);
  }

  static async fromCheckpoint(checkpoint: string, records: InstructionRecord[], options: Stage2Options): Promise<Stage2Trainer> {
    const config = resolveStageConfig("stage2", { ...options, k: options.k ?? records[0]?.docs.length });
    const clara = await ClaraModel.load(checkpoint, { modelPath: options.modelPath });
    return orDispose(clara, async () => {
      checkStartingShape(options, clara, { file: checkpoint });
      if (!config.keepGenerator) {
        await clara.model.removeAdapter(ADAPTERS.generator);
        await clara.addAdapter(ADAPTERS.generator, config.seed + 20);
      }
      return new Stage2Trainer(clara, records, options);
    });
  }

  protected async plan(): Promise<StagePlan<InstructionRecord>> {
    const { k, maxLength, keepGenerator, trainMemoryTokens } = this.config;
    const t = this.clara.templates;
    return {
      stage: "stage2",
      nativeStage: "stage12",
      k,
      train: this.train,
      eval: this.heldOut,
      trainable: [ADAPTERS.compressor, ADAPTERS.generator, ...(trainMemoryTokens ? ["clara.mem_embeddings"] : [])],
      batch: (examples, keys) => ({
        docs: this.clara.encoderBatch(examples.flatMap((r) => r.docs)),
        prompt: this.promptBatch(
          examples.map((r, i) => this.cached(keys[i], () => t.answerExample(r.question, r.answer, k, maxLength))),
        ),
      }),
      config: { stage: "stage2", k, maxLength, keepGenerator, trainMemoryTokens },
    };
  }
}

/**
 * Stage 3, end to end: the frozen compressor encodes N candidates, the query reasoner (a copy
 * of the compressor at first) scores them, the differentiable top-k fills k slots in rank
 * order, and only the next-token loss trains the query reasoner and the generator.
 */
export class Stage3Trainer extends StageTrainer<EndToEndRecord, Stage3Config> {
  constructor(clara: ClaraModel, records: EndToEndRecord[], options: Stage3Options) {
    const shape = shapeOf(clara, options);
    super(clara, records, options, resolveStageConfig("stage3", { ...options, ...shape }));
    checkStageRecords(this.config, [...this.train, ...this.heldOut]);
  }

  static async fromCheckpoint(checkpoint: string, records: EndToEndRecord[], options: Stage3Options): Promise<Stage3Trainer> {
    const config = resolveStageConfig("stage3", options);
    const clara = await ClaraModel.load(checkpoint, { modelPath: options.modelPath });
    return orDispose(clara, async () => {
      checkStartingShape(options, clara, { file: checkpoint });
      if (!(await clara.hasAdapter(ADAPTERS.queryReasoner))) {
        if (config.queryReasonerInit === "compressor") await clara.model.copyAdapter(ADAPTERS.compressor, ADAPTERS.queryReasoner);
        else await clara.addAdapter(ADAPTERS.queryReasoner, config.seed + 30);
      }
      return new Stage3Trainer(clara, records, options);
    });
  }

  protected async plan(): Promise<StagePlan<EndToEndRecord>> {
    const { k, tau, maxLength } = this.config;
    const N = this.train[0].docs.length;
    const t = this.clara.templates;
    return {
      stage: "stage3",
      nativeStage: "stage3",
      k,
      tau,
      train: this.train,
      eval: this.heldOut,
      trainable: [ADAPTERS.queryReasoner, ADAPTERS.generator],
      batch: (examples, keys): NativeStageBatch => ({
        query: this.clara.encoderBatch(examples.map((r) => r.question)),
        candidates: this.clara.encoderBatch(examples.flatMap((r) => r.docs)),
        numCandidates: N,
        prompt: this.promptBatch(
          examples.map((r, i) => this.cached(keys[i], () => t.answerExample(r.question, r.answer, k, maxLength))),
        ),
      }),
      config: { stage: "stage3", k, candidates: N, maxLength, tau },
    };
  }
}
