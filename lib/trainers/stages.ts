// The three CLaRa stages as typed trainers (spec §2.1–2.3). Each turns its records into
// native micro-batches and names what it trains; the loop itself is runStage's.

import { ClaraError, invalidArgument } from "../errors";
import { leftPad } from "../data/batches";
import { subSeed } from "../data/random";
import type { EndToEndRecord, InstructionRecord, PretrainRecord } from "../data/records";
import type { NativeStageBatch } from "../native";
import { ADAPTERS, ClaraModel, type ClaraCreateOptions } from "../clara/clara-model";
import { DEFAULTS, type MemoryInput } from "../clara/config";
import type { EncodedExample } from "../clara/templates";
import { resolved, runStage, splitRecords, stageSpec, summedLosses, type StagePlan, type TrainOptions, type TrainSummary } from "./trainer";

export interface StageOptions extends TrainOptions {
  /** Generator sequence limit in tokens (the reference's max_len). */
  maxLength?: number;
  /** Held-out records; otherwise `evalSplit` of the training records are held out. */
  evalRecords?: unknown[];
}

const LOSS_ON_KEYS = -1e12;

abstract class StageTrainer<R> {
  protected readonly examples = new Map<number, EncodedExample>();
  readonly train: R[];
  readonly heldOut: R[];

  constructor(readonly clara: ClaraModel, records: R[], readonly options: StageOptions) {
    if (options.evalRecords) {
      this.train = records;
      this.heldOut = options.evalRecords as R[];
    } else {
      const split = splitRecords(records, options.evalSplit ?? 0, options.seed ?? DEFAULTS.seed);
      this.train = split.train;
      this.heldOut = split.eval;
    }
  }

  protected abstract plan(): Promise<StagePlan<R>>;

  async run(): Promise<TrainSummary> {
    return runStage(this.clara, await this.plan(), this.options);
  }

  /**
   * The mean loss and its parts over `records` with the current weights, one record at a time,
   * without making an optimizer: safe between updates (a probe) and before or after a run.
   */
  async lossOn(records: R[]): Promise<{ loss: number; parts: Record<string, number> }> {
    if (records.length === 0) throw new ClaraError("E_INVALID_ARGUMENT", "lossOn needs at least one record", { field: "records" });
    const plan = await this.plan();
    const spec = stageSpec(this.clara, plan, resolved(this.options, plan.defaults).mseWeight);
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

/** Stage 1, salient compressor pretraining: one document per record, QA or paraphrase target. */
export class Stage1Trainer extends StageTrainer<PretrainRecord> {
  static async create(
    modelPath: string,
    records: PretrainRecord[],
    options: StageOptions & ClaraCreateOptions & { memoryInput?: MemoryInput },
  ): Promise<Stage1Trainer> {
    const clara = await ClaraModel.create(modelPath, options);
    const memoryInput = options.memoryInput ?? DEFAULTS.memoryInput;
    if (memoryInput !== "raw" && memoryInput !== "standardised") {
      await clara.dispose();
      throw invalidArgument("memoryInput", '"raw" or "standardised"', memoryInput);
    }
    // Calibrated on the untrained compressor's view of the training documents; a resumed run
    // puts its own saved map back over this one.
    if (memoryInput === "standardised") {
      const docs = [...new Set(records.map((r) => r.doc))].slice(0, DEFAULTS.memoryInputCalibrationDocs);
      await clara.calibrateMemoryInput(docs);
    }
    return new Stage1Trainer(clara, records, options);
  }

  protected async plan(): Promise<StagePlan<PretrainRecord>> {
    const maxLength = this.options.maxLength ?? DEFAULTS.maxLength.stage1;
    const seed = this.options.seed ?? DEFAULTS.seed;
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
      defaults: { lr: DEFAULTS.lr.stage1, schedule: DEFAULTS.schedule.stage1, batchSize: DEFAULTS.batchSize.stage1 },
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
export class Stage2Trainer extends StageTrainer<InstructionRecord> {
  static async fromCheckpoint(
    checkpoint: string,
    records: InstructionRecord[],
    options: StageOptions & { modelPath?: string; keepGenerator?: boolean; trainMemoryTokens?: boolean },
  ): Promise<Stage2Trainer> {
    const clara = await ClaraModel.load(checkpoint, { modelPath: options.modelPath });
    if (!options.keepGenerator) {
      await clara.model.removeAdapter(ADAPTERS.generator);
      await clara.addAdapter(ADAPTERS.generator, (options.seed ?? DEFAULTS.seed) + 20);
    }
    return new Stage2Trainer(clara, records, options);
  }

  protected async plan(): Promise<StagePlan<InstructionRecord>> {
    const o = this.options as StageOptions & { keepGenerator?: boolean; trainMemoryTokens?: boolean };
    const maxLength = o.maxLength ?? DEFAULTS.maxLength.stage2;
    const k = this.train[0]?.docs.length ?? DEFAULTS.k.stage2;
    for (const r of [...this.train, ...this.heldOut]) {
      if (r.docs.length !== k) {
        throw new ClaraError("E_DATA_FIELD", `every stage-2 record needs the same number of documents (${k}); one has ${r.docs.length}`, {
          line: r.line,
          field: "docs",
        });
      }
    }
    const t = this.clara.templates;
    return {
      stage: "stage2",
      nativeStage: "stage12",
      k,
      train: this.train,
      eval: this.heldOut,
      trainable: [ADAPTERS.compressor, ADAPTERS.generator, ...(o.trainMemoryTokens ? ["clara.mem_embeddings"] : [])],
      batch: (examples, keys) => ({
        docs: this.clara.encoderBatch(examples.flatMap((r) => r.docs)),
        prompt: this.promptBatch(
          examples.map((r, i) => this.cached(keys[i], () => t.answerExample(r.question, r.answer, k, maxLength))),
        ),
      }),
      config: { stage: "stage2", k, maxLength, keepGenerator: Boolean(o.keepGenerator), trainMemoryTokens: Boolean(o.trainMemoryTokens) },
      defaults: { lr: DEFAULTS.lr.stage2, schedule: DEFAULTS.schedule.stage2, batchSize: DEFAULTS.batchSize.stage2 },
    };
  }
}

/**
 * How stage 3 starts a query reasoner when the checkpoint has none: a copy of the compressor (the
 * reference's default), or a fresh LoRA adapter, so the query starts as the base model encodes it
 * (the reference's other path; the paper compares the two in Table 15).
 */
export type QueryReasonerInit = "compressor" | "fresh";

/**
 * Stage 3, end to end: the frozen compressor encodes N candidates, the query reasoner (a copy
 * of the compressor at first) scores them, the differentiable top-k fills k slots in rank
 * order, and only the next-token loss trains the query reasoner and the generator.
 */
export class Stage3Trainer extends StageTrainer<EndToEndRecord> {
  static async fromCheckpoint(
    checkpoint: string,
    records: EndToEndRecord[],
    options: StageOptions & { modelPath?: string; k?: number; tau?: number; queryReasonerInit?: QueryReasonerInit },
  ): Promise<Stage3Trainer> {
    const init = options.queryReasonerInit ?? "compressor";
    if (init !== "compressor" && init !== "fresh") {
      throw new ClaraError("E_INVALID_ARGUMENT", `queryReasonerInit must be "compressor" or "fresh", got ${JSON.stringify(init)}`, { field: "queryReasonerInit" });
    }
    const clara = await ClaraModel.load(checkpoint, { modelPath: options.modelPath });
    if (!(await clara.hasAdapter(ADAPTERS.queryReasoner))) {
      if (init === "compressor") await clara.model.copyAdapter(ADAPTERS.compressor, ADAPTERS.queryReasoner);
      else await clara.addAdapter(ADAPTERS.queryReasoner, (options.seed ?? DEFAULTS.seed) + 30);
    }
    return new Stage3Trainer(clara, records, options);
  }

  protected async plan(): Promise<StagePlan<EndToEndRecord>> {
    const o = this.options as StageOptions & { k?: number; tau?: number };
    const maxLength = o.maxLength ?? DEFAULTS.maxLength.stage3;
    const tau = o.tau ?? DEFAULTS.tau;
    const N = this.train[0].docs.length;
    const k = o.k ?? DEFAULTS.k.stage3;
    for (const r of [...this.train, ...this.heldOut]) {
      if (r.docs.length !== N) {
        throw new ClaraError("E_DATA_FIELD", `every stage-3 record needs the same number of candidates (${N}); one has ${r.docs.length}`, {
          line: r.line,
          field: "docs",
        });
      }
    }
    if (k > N) throw new ClaraError("E_INVALID_ARGUMENT", `k = ${k} is larger than the ${N} candidates per question`, { field: "k" });
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
      defaults: { lr: DEFAULTS.lr.stage3, schedule: DEFAULTS.schedule.stage3, batchSize: DEFAULTS.batchSize.stage3 },
    };
  }
}
