// ClaraModel: a base model with CLaRa's memory tokens and its three adapters (compressor,
// generator, query reasoner), built fresh or from a checkpoint. The API people know from the
// reference: compress documents, generate from compressed documents or from text, retrieve.

import { ClaraError, invalidArgument } from "../errors";
import { leftPad } from "../data/batches";
import {
  readCheckpoint,
  writeCheckpoint,
  writeTrainingCheckpoint,
  type CheckpointMetadata,
  type Stage,
} from "../io/checkpoint";
import { Model, nativeModel, type ComputeDType } from "../model/model";
import { quantizeOptionOf, type QuantizeOption } from "../model/quantization";
import type { NamedTensor, NativeAdapterInfo, NativeBatch, NativeClaraSpec, NativeModel, NativeOptimizerState } from "../native";
import { tensor, type Tensor } from "../tensor";
import { DEFAULTS, memoryTokenCount, TEMPLATE_VERSION, type LoraOptions, type MemoryInput } from "./config";
import { installMistralTemplate } from "./mistral-template";
import { ClaraTemplates } from "./templates";
import { addClaraTokens } from "./tokens";

export const ADAPTERS = { compressor: "compressor", generator: "generator", queryReasoner: "query_reasoner" } as const;

export interface ClaraCreateOptions {
  compressionRate?: number;
  docMaxLength?: number;
  lora?: Partial<LoraOptions>;
  seed?: number;
  dtype?: ComputeDType;
  /** How the base's projection weights are held (QLoRA: { bits: 4 }); lib/model/quantization.ts. */
  quantize?: QuantizeOption;
}

export interface ClaraGenerateOptions {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Token ids that end a sequence; defaults to the tokenizer's stop tokens. */
  stopTokens?: number[];
  /** Prompts per native call. */
  batchSize?: number;
}

export class ClaraModel {
  readonly model: Model;
  readonly compressionRate: number;
  readonly docMaxLength: number;
  readonly templates: ClaraTemplates;
  readonly lora: LoraOptions;
  /** How compressed vectors enter the generator (DEFAULTS.memoryInput); set by calibrateMemoryInput or a checkpoint. */
  memoryInput: MemoryInput = "raw";
  /** Documents whose tokens exceeded docMaxLength and were truncated, since load. */
  truncatedDocuments = 0;

  private constructor(model: Model, compressionRate: number, docMaxLength: number, templates: ClaraTemplates, lora: LoraOptions) {
    this.model = model;
    this.compressionRate = compressionRate;
    this.docMaxLength = docMaxLength;
    this.templates = templates;
    this.lora = lora;
  }

  /** A fresh CLaRa model on `modelPath`: memory tokens added, compressor and generator adapters new. */
  static async create(modelPath: string, options: ClaraCreateOptions = {}): Promise<ClaraModel> {
    const model = await Model.load(modelPath, { dtype: options.dtype, quantize: options.quantize });
    const clara = await ClaraModel.attach(model, options.compressionRate ?? DEFAULTS.compressionRate, options.docMaxLength ?? DEFAULTS.docMaxLength, {
      ...DEFAULTS.lora,
      ...options.lora,
    });
    const seed = options.seed ?? DEFAULTS.seed;
    await clara.addTokenRows(seed);
    await clara.addAdapter(ADAPTERS.compressor, seed + 1);
    await clara.addAdapter(ADAPTERS.generator, seed + 2);
    return clara;
  }

  /**
   * Opens a checkpoint. The base model comes from the checkpoint's record unless `modelPath`
   * names it; a checkpoint made for another base model is refused.
   */
  static async load(checkpoint: string, options: { modelPath?: string; dtype?: ComputeDType; quantize?: QuantizeOption } = {}): Promise<ClaraModel> {
    const { entries, metadata } = readCheckpoint(checkpoint);
    // Adapters trained on a quantized base (QLoRA) run on it again unless told otherwise.
    const recorded = metadata.base.quantization;
    const quantize = options.quantize ?? (recorded ? quantizeOptionOf(recorded) : undefined);
    const model = await Model.load(options.modelPath ?? metadata.base.source, { dtype: options.dtype, quantize });
    if (model.fingerprint() !== metadata.base.fingerprint) {
      await model.dispose();
      throw new ClaraError(
        "E_CHECKPOINT_MISMATCH",
        `${checkpoint} was trained on another base model (fingerprint ${metadata.base.fingerprint}, ` +
          `${options.modelPath ?? metadata.base.source} has ${model.fingerprint()})`,
        { file: checkpoint, field: "base.fingerprint" },
      );
    }
    const lora = metadata.adapters[0] ?? { ...DEFAULTS.lora };
    const clara = await ClaraModel.attach(model, metadata.clara.compressionRate, metadata.clara.docMaxLength, {
      rank: lora.rank,
      alpha: lora.alpha,
      dropout: lora.dropout,
    });
    await clara.addTokenRows(0);
    await model.setParameters(entries, metadata.adapters);
    clara.memoryInput = metadata.clara.memoryInput ?? "raw";
    return clara;
  }

  /**
   * A CLaRa model on a loaded base whose trained tensors come from elsewhere (e.g. Apple's
   * reference checkpoints, lib/clara/reference-checkpoint.ts): memory tokens added, then
   * `entries` (our parameter names) and the `adapters` they declare set.
   */
  static async fromParameters(
    model: Model,
    options: { compressionRate: number; docMaxLength: number; lora: LoraOptions; entries: NamedTensor[]; adapters: NativeAdapterInfo[] },
  ): Promise<ClaraModel> {
    const clara = await ClaraModel.attach(model, options.compressionRate, options.docMaxLength, options.lora);
    await clara.addTokenRows(0);
    await model.setParameters(options.entries, options.adapters);
    return clara;
  }

  private static async attach(model: Model, compressionRate: number, docMaxLength: number, lora: LoraOptions): Promise<ClaraModel> {
    const n = memoryTokenCount({ compressionRate, docMaxLength });
    const tokens = addClaraTokens(model.tokenizer, n, model.config.vocab_size);
    // Mistral bases get the June 2024 v0.2 template (system turns) when theirs refuses one (spec §1.5).
    if (model.config.model_type === "mistral") installMistralTemplate(model.tokenizer);
    return new ClaraModel(model, compressionRate, docMaxLength, new ClaraTemplates(model.tokenizer, tokens, docMaxLength, model.padId), lora);
  }

  get nMem(): number {
    return this.templates.nMem;
  }

  private get handle(): NativeModel {
    return nativeModel(this.model);
  }

  spec(k: number): NativeClaraSpec {
    return {
      nMem: this.nMem,
      k,
      mem0Id: this.templates.tokens.mem[0],
      mseWeight: DEFAULTS.mseWeight,
      tau: DEFAULTS.tau,
      compressor: ADAPTERS.compressor,
      generator: ADAPTERS.generator,
      queryReasoner: ADAPTERS.queryReasoner,
    };
  }

  /** The memory and special tokens' embedding rows, right after the tokenizer's last id (once). */
  private addTokenRows(seed: number): Promise<void> {
    return this.handle.claraInit({ nMem: this.nMem, seed, firstId: this.templates.tokens.baseVocab });
  }

  async addAdapter(name: string, seed: number): Promise<void> {
    await this.model.addAdapter(name, { ...this.lora, seed });
  }

  async hasAdapter(name: string): Promise<boolean> {
    return (await this.model.adapters()).some((a) => a.name === name);
  }

  /**
   * Makes compressed vectors enter the generator standardised to the input embeddings'
   * per-dimension mean and deviation, measured on `docs` as the compressor now compresses them.
   * The map is two saved, untrained parameters (native/clara/memory_input.h).
   */
  async calibrateMemoryInput(docs: string[]): Promise<void> {
    if (docs.length === 0) throw invalidArgument("docs", "at least one document", docs);
    await this.handle.claraCalibrateMemoryInput({ vectors: await this.compressDocuments(docs) });
    this.memoryInput = "standardised";
  }

  /** Encoder inputs for documents (or questions, for the query reasoner) as one batch. */
  encoderBatch(texts: string[]): NativeBatch {
    if (!Array.isArray(texts) || texts.length === 0) throw invalidArgument("texts", "a non-empty array of strings", texts);
    const inputs = texts.map((t, i) => {
      if (typeof t !== "string") throw invalidArgument(`texts[${i}]`, "a string", t);
      const e = this.templates.encoderInput(t);
      if (e.truncated) this.truncatedDocuments++;
      return e;
    });
    // Every input is left-padded to the reference's full width (docMaxLength + 3 + n). Columns that
    // are padding in every row are not computed: the batch starts at the first real column and its
    // RoPE positions at that column's, so the vectors are the full-width batch's (same positions,
    // pads masked) for a fraction of the work when documents are shorter than docMaxLength.
    const width = inputs[0].ids.length;
    const skip = Math.min(...inputs.map((e) => e.valid.indexOf(1)));
    const L = width - skip;
    const ids = new Int32Array(inputs.length * L);
    const valid = new Uint8Array(inputs.length * L);
    inputs.forEach((e, b) => {
      ids.set(e.ids.slice(skip), b * L);
      valid.set(e.valid.slice(skip), b * L);
    });
    return { ids: tensor("int32", [inputs.length, L], ids), keyValid: tensor("uint8", [inputs.length, L], valid), positionOffset: skip };
  }

  /** Compressed documents: [B, n, H] float32 (the compressor's memory-token states). */
  async compressDocuments(texts: string[], options: { batchSize?: number } = {}): Promise<Tensor> {
    const batchSize = options.batchSize ?? 8;
    const parts: Tensor[] = [];
    for (let i = 0; i < texts.length; i += batchSize) {
      const r = await this.handle.claraCompress({ docs: this.encoderBatch(texts.slice(i, i + batchSize)), spec: this.spec(1) });
      parts.push(r.vectors);
    }
    return concatRows(parts);
  }

  /**
   * Answers each question from its k compressed documents: compressed[i] is [k, n, H]
   * (documents in slot order), with the stage 2/3 answer template.
   */
  generateFromCompressed(questions: string[], compressed: Tensor[], options: ClaraGenerateOptions = {}): Promise<string[]> {
    if (questions.length !== compressed.length) throw invalidArgument("compressed", `${questions.length} tensors (one per question)`, compressed);
    return this.generateFromPrompts(
      questions.map((q, i) => this.templates.answerPrompt(q, compressed[i].shape[0])),
      compressed,
      options,
    );
  }

  /** Generates after token prompts whose memory slots take compressed[i] ([k, n, H]). */
  async generateFromPrompts(prompts: number[][], compressed: Tensor[], options: ClaraGenerateOptions = {}): Promise<string[]> {
    this.model.checkContext(prompts, this.generation(options).maxTokens);
    const out: string[] = [];
    const batchSize = options.batchSize ?? 4;
    for (let i = 0; i < prompts.length; i += batchSize) {
      const docs = compressed.slice(i, i + batchSize);
      const k = docs[0].shape[0];
      if (docs.some((d) => d.shape[0] !== k)) throw invalidArgument("compressed", "the same number of documents for every prompt in a batch", docs);
      const g = await this.handle.claraGenerate({
        prompt: leftPad(prompts.slice(i, i + batchSize), this.templates.padId),
        compressed: concatRows(docs),
        spec: this.spec(k),
        generation: this.generation(options),
      });
      out.push(...g.tokens.map((t) => this.model.tokenizer.decode(t, { skipSpecialTokens: true }).trim()));
    }
    return out;
  }

  /** Compresses each question's documents on the fly and answers from them. */
  async generateFromText(questions: string[], docs: string[][], options: ClaraGenerateOptions = {}): Promise<string[]> {
    if (questions.length !== docs.length) throw invalidArgument("docs", `${questions.length} document lists`, docs);
    const compressed: Tensor[] = [];
    for (const d of docs) compressed.push(await this.compressDocuments(d));
    return this.generateFromCompressed(questions, compressed, options);
  }

  /**
   * The query reasoner's ranking of each question's candidates (compressed [N, n, H] each):
   * cosine scores and the top-k indices, best first.
   */
  async retrieve(questions: string[], candidates: Tensor[], k: number): Promise<{ scores: number[][]; indices: number[][]; selected: Tensor[] }> {
    if (!(await this.hasAdapter(ADAPTERS.queryReasoner))) {
      throw new ClaraError("E_INVALID_ARGUMENT", "this model has no query_reasoner adapter: retrieval needs a stage-3 checkpoint", {
        field: "query_reasoner",
      });
    }
    const scores: number[][] = [];
    const indices: number[][] = [];
    const selected: Tensor[] = [];
    for (let i = 0; i < questions.length; i++) {
      const N = candidates[i].shape[0];
      // The reference raises here (torch.topk with k > N): no silent clamping.
      if (!Number.isInteger(k) || k < 1 || k > N) {
        throw new ClaraError("E_INVALID_ARGUMENT", `k = ${k} must be 1..${N}: question ${i} has ${N} candidate documents`, { field: "k" });
      }
      const r = await this.handle.claraRetrieve({
        query: this.encoderBatch([questions[i]]),
        candidates: { ...candidates[i], shape: [1, ...candidates[i].shape] },
        spec: this.spec(k),
      });
      scores.push(Array.from(r.scores.data as Float32Array));
      indices.push(Array.from(r.indices.data as Int32Array));
      selected.push(r.selected);
    }
    return { scores, indices, selected };
  }

  /**
   * Writes the trained tensors and their metadata (atomically); with `optimizer`, a training
   * checkpoint whose optimizer state is committed together with it.
   */
  async save(
    file: string,
    info: { stage: Stage; step: number; complete: boolean; config?: Record<string, unknown>; progress?: Record<string, unknown> },
    optimizer?: NativeOptimizerState,
  ): Promise<void> {
    const metadata: CheckpointMetadata = {
      format: "clara-mlx-checkpoint",
      version: 1,
      stage: info.stage,
      step: info.step,
      complete: info.complete,
      base: { source: this.model.files.source, fingerprint: this.model.fingerprint(), modelType: this.model.config.model_type, quantization: this.model.quantization },
      clara: { compressionRate: this.compressionRate, docMaxLength: this.docMaxLength, nMem: this.nMem, templateVersion: TEMPLATE_VERSION, memoryInput: this.memoryInput },
      adapters: await this.model.adapters(),
      config: info.config,
      progress: info.progress,
      createdAt: new Date().toISOString(),
    };
    const entries = await this.model.parameters();
    if (optimizer) writeTrainingCheckpoint(file, entries, metadata, optimizer);
    else writeCheckpoint(file, entries, metadata);
  }

  dispose(): Promise<void> {
    return this.model.dispose();
  }

  private generation(o: ClaraGenerateOptions) {
    return {
      maxTokens: o.maxTokens ?? DEFAULTS.maxNewTokens.stage12,
      temperature: o.temperature ?? 0,
      topP: o.topP ?? 1,
      seed: o.seed ?? 0,
      stopTokens: o.stopTokens ?? this.model.tokenizer.stopTokenIds,
    };
  }
}

/** Stacks [b_i, ...] float32 tensors along the first axis. */
export function concatRows(parts: Tensor[]): Tensor {
  if (parts.length === 1) return parts[0];
  const rest = parts[0].shape.slice(1);
  const rows = parts.reduce((a, p) => a + p.shape[0], 0);
  const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
  let offset = 0;
  for (const p of parts) {
    data.set(p.data as Float32Array, offset);
    offset += p.data.length;
  }
  return tensor("float32", [rows, ...rest], data);
}

/** Rows [start, start + count) of a float32 tensor, as a tensor of its own. */
export function sliceRows(t: Tensor, start: number, count: number): Tensor {
  const row = t.shape.slice(1).reduce((a, b) => a * b, 1);
  return tensor("float32", [count, ...t.shape.slice(1)], (t.data as Float32Array).slice(start * row, (start + count) * row));
}
