// Model: a loaded Llama-family model with its tokenizer and named LoRA adapters. Weights live
// on the MLX thread behind a private handle; this class validates, converts and forwards.

import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError, invalidArgument } from "../errors";
import { leftPad, type TokenBatch } from "../data/batches";
import { jsonTensor, METADATA_KEY, readJsonTensor } from "../io/checkpoint";
import { readNpz, writeNpz } from "../io/npz";
import { native, type NamedTensor, type NativeAdapterInfo, type NativeModel, type NativeStepResult } from "../native";
import type { Tensor } from "../tensor";
import { resolveQuantization, type Quantization, type QuantizeOption } from "./quantization";
import { Tokenizer } from "../tokenizer";
import type { ModelConfig } from "./config";
import { DEFAULTS } from "../clara/config";
import { locateModel, type ModelFiles } from "./files";

export type ComputeDType = "float32" | "bfloat16" | "float16";

export interface LoadModelOptions {
  /** Compute dtype of the frozen base: float32 on CPU (BLAS), bfloat16 on GPUs. */
  dtype?: ComputeDType;
  /** How the projection weights are held (lib/model/quantization.ts): 4-/8-bit bases for QLoRA. */
  quantize?: QuantizeOption;
}

export interface AdapterOptions {
  rank?: number;
  alpha?: number;
  dropout?: number;
  seed?: number;
}

export interface GenerateOptions {
  adapter?: string;
  maxTokens?: number;
  /** 0 (default) decodes greedily. */
  temperature?: number;
  topP?: number;
  /** Token ids that end a sequence; defaults to the tokenizer's stop tokens. */
  stopTokens?: number[];
  seed?: number;
}

export interface Generation {
  tokens: number[][];
  texts: string[];
  stopped: boolean[];
  promptTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
}

export interface TrainerOptions {
  /** Adapter names, exact parameter names, or prefixes ending in "." */
  trainable: string[];
  lr?: number;
  schedule?: "cosine" | "constant";
  minLrRatio?: number;
  warmupSteps?: number;
  totalSteps?: number;
  maxGradNorm?: number;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Average gradients over the ranks of this distributed backend (see clara-train launch). */
  distributed?: string;
  /**
   * Micro-batches of one update evaluated at once, each on a CPU stream (thread) of its own:
   * 2 (default) keeps both cores of a small machine busy outside matrix products; 1 runs them
   * in turn and holds one micro-batch's activations instead of two. Same update either way.
   */
  lanes?: 1 | 2;
  /**
   * Keep only each decoder layer's input for the backward pass and run the layer again there
   * (mlx-lm's --grad-checkpoint): less activation memory for more compute, same gradients
   * (SmolLM2 stage 1: peak 10.1 GB -> 6.0 GB, 1.5x the step time).
   */
  gradCheckpoint?: boolean;
}

/** One micro-batch for the language-model loss: token sequences and which tokens are targets. */
export interface LmExample {
  tokens: number[];
  /** 1 where tokens[t] is supervised; all ones when omitted. */
  lossMask?: number[];
}

/** New tokens per prompt when a call names none (the reference evaluation's stage-1/2 answer length). */
export const DEFAULT_MAX_NEW_TOKENS = 128;

const ADAPTER_FILE_FORMAT = "clara-mlx-adapters";

/**
 * MLX's GGUF reader (gguflib) opens the file read-write, so a model on a read-only mount, owned
 * by another user or immutable fails with "gguf_init failed". Such a file is read through a
 * private temporary copy, removed once the weights are loaded (they are copied into memory);
 * null when the file can be opened for writing and is read in place.
 */
function writableGgufCopy(file: string): { file: string; remove(): void } | null {
  try {
    fs.closeSync(fs.openSync(file, "r+"));
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EACCES" && code !== "EPERM" && code !== "EROFS") throw e;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-gguf-"));
  const copy = path.join(dir, path.basename(file));
  try {
    fs.copyFileSync(file, copy);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new ClaraError("E_MODEL_FILES", `${file} is read-only and could not be copied to ${dir} to be read (${(e as Error).message}); free space in the temp folder or make the file writable`, { file, cause: e });
  }
  return { file: copy, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

let handleOf: (model: Model) => NativeModel;

/**
 * The native handle behind a model, for the lib/ modules that build on it (CLaRa, the trainers,
 * the index) and for tests and benches that call the addon directly. No entry point of the
 * package exports it: a user's model is driven through its methods.
 * @internal
 */
export function nativeModel(model: Model): NativeModel {
  return handleOf(model);
}

export class Model {
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly files: ModelFiles;
  readonly dtype: ComputeDType;
  /** How the projection weights are held. */
  readonly quantization: Quantization;
  #native: NativeModel;
  #fingerprint?: string;

  private constructor(files: ModelFiles, tokenizer: Tokenizer, handle: NativeModel, dtype: ComputeDType, quantization: Quantization) {
    this.files = files;
    this.quantization = quantization;
    this.config = files.config;
    this.tokenizer = tokenizer;
    this.#native = handle;
    this.dtype = dtype;
  }

  /** Loads a Hugging Face folder (config.json + safetensors + tokenizer.json) or a .gguf file. */
  static async load(modelPath: string, options: LoadModelOptions = {}): Promise<Model> {
    const dtype = options.dtype ?? "float32";
    if (!["float32", "bfloat16", "float16"].includes(dtype)) throw invalidArgument("dtype", "float32, bfloat16 or float16", dtype);
    const files = locateModel(modelPath);
    const quantization = resolveQuantization(options.quantize, files.format, files.sourceQuantization);
    const tokenizer = files.format === "gguf"
      ? Tokenizer.fromGgufMetadata(files.ggufMetadata!, modelPath)
      : Tokenizer.fromHfDir(modelPath);
    const readable = files.format === "gguf" ? writableGgufCopy(files.files[0]) : null;
    try {
      const handle = await native().loadModel({
        config: files.config,
        format: files.format,
        files: readable ? [readable.file] : files.files,
        ggufRopePermuted: files.ropePermuted,
        sourceGroupSize: files.sourceQuantization?.groupSize ?? 0,
        quantization,
        dtype,
      });
      return new Model(files, tokenizer, handle, dtype, quantization);
    } finally {
      readable?.remove();
    }
  }

  /** Identifies the base weights: config, and size plus head and tail bytes of every file. */
  fingerprint(): string {
    return (this.#fingerprint ??= modelFingerprint(this.files));
  }

  static {
    handleOf = (model) => model.#native;
  }

  /** Left-pads token sequences with the tokenizer's batchPadId (its pad, else BOS as the reference does). */
  batch(sequences: number[][], lossMasks?: number[][]): TokenBatch {
    return leftPad(sequences, this.padId, lossMasks ? { lossMasks } : {});
  }

  get padId(): number {
    return this.tokenizer.batchPadId;
  }

  /** Logits [B, L, V] (or [B, 1, V] with lastOnly) for left-padded token sequences. */
  logits(sequences: number[][], options: { adapter?: string; lastOnly?: boolean } = {}): Promise<Tensor> {
    return this.#native.logits(this.batch(sequences), options);
  }

  /** Final-norm hidden states [B, L, H]. */
  hidden(sequences: number[][], options: { adapter?: string } = {}): Promise<Tensor> {
    return this.#native.hidden(this.batch(sequences), options);
  }

  async generate(prompts: number[][], options: GenerateOptions = {}): Promise<Generation> {
    const maxTokens = options.maxTokens ?? DEFAULT_MAX_NEW_TOKENS;
    this.checkContext(prompts, maxTokens);
    // Every setting is sent: the binding holds no defaults.
    const r = await this.#native.generate(this.batch(prompts), {
      ...options,
      maxTokens,
      temperature: options.temperature ?? 0,
      topP: options.topP ?? 1,
      seed: options.seed ?? 0,
      stopTokens: options.stopTokens ?? this.tokenizer.stopTokenIds,
    });
    return { ...r, texts: r.tokens.map((t) => this.tokenizer.decode(t, { skipSpecialTokens: true })) };
  }

  /**
   * Refuses prompts that, with `maxTokens` new tokens, run past the model's context
   * (max_position_embeddings): MLX would otherwise allocate for them without bound (a
   * 126,000-character question asked for 46.8 GB and crashed).
   */
  checkContext(prompts: number[][], maxTokens: number): void {
    const limit = this.config.max_position_embeddings;
    if (!limit || prompts.length === 0) return;
    const longest = prompts.reduce((m, p) => Math.max(m, p.length), 0);
    if (longest + maxTokens > limit) {
      throw new ClaraError(
        "E_INVALID_ARGUMENT",
        `a prompt of ${longest} tokens plus ${maxTokens} new tokens runs past the model's context of ${limit} tokens; shorten the question (or its documents) or ask for fewer new tokens`,
        { field: "prompt" },
      );
    }
  }

  /** Renders `user` (and an optional system message) with the chat template and generates. */
  async chat(user: string, options: GenerateOptions & { system?: string } = {}): Promise<string> {
    const messages = [...(options.system ? [{ role: "system", content: options.system }] : []), { role: "user", content: user }];
    const prompt = this.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    const g = await this.generate([this.tokenizer.encode(prompt)], options);
    return g.texts[0];
  }

  addAdapter(name: string, options: AdapterOptions = {}): Promise<void> {
    if (typeof name !== "string" || !/^[A-Za-z0-9_-]+$/.test(name)) throw invalidArgument("name", "an adapter name of letters, digits, _ or -", name);
    const lora = DEFAULTS.lora;
    return this.#native.addAdapter(name, { rank: options.rank ?? lora.rank, alpha: options.alpha ?? lora.alpha, dropout: options.dropout ?? lora.dropout, seed: options.seed ?? 0 });
  }

  copyAdapter(from: string, to: string): Promise<void> {
    return this.#native.copyAdapter(from, to);
  }

  removeAdapter(name: string): Promise<void> {
    return this.#native.removeAdapter(name);
  }

  adapters(): Promise<NativeAdapterInfo[]> {
    return this.#native.adapters();
  }

  /** Trainable-kind parameters (adapters, extra embedding rows) whose names start with `prefix`. */
  parameters(prefix = ""): Promise<NamedTensor[]> {
    return this.#native.getParameters(prefix);
  }

  setParameters(entries: NamedTensor[], adapters: NativeAdapterInfo[] = []): Promise<void> {
    this.#refuseDuringRun("setParameters");
    return this.#native.setParameters(entries, { adapters });
  }

  #runInProgress: string | null = null;

  /**
   * Marks a training run over this model's trainer until the returned release is called. Meanwhile
   * createTrainer and setParameters, which would silently discard the run's optimizer state and
   * step, are refused (a probe or callback that built a second trainer used to restart the run).
   */
  holdForTraining(run: string): () => void {
    this.#refuseDuringRun("holdForTraining");
    this.#runInProgress = run;
    return () => {
      this.#runInProgress = null;
    };
  }

  #refuseDuringRun(call: string): void {
    if (this.#runInProgress !== null) {
      throw new ClaraError(
        "E_BUSY",
        `${call} during the ${this.#runInProgress} run on this model would discard its optimizer state; wait for the run to end, or use another model`,
        { field: call },
      );
    }
  }

  /** Saves the named adapters (all when omitted) to an .npz that Python's mlx.core.load opens. */
  async saveAdapters(file: string, names?: string[]): Promise<void> {
    const all = await this.adapters();
    const chosen = names ? all.filter((a) => names.includes(a.name)) : all;
    const missingName = names?.find((n) => !all.some((a) => a.name === n));
    if (missingName) throw invalidArgument("names", `existing adapter names (${all.map((a) => a.name).join(", ")})`, missingName);
    const entries = new Map<string, Tensor>();
    const params = await this.parameters();
    for (const a of chosen) {
      for (const [k, v] of params) if (k.includes(`.lora.${a.name}.`)) entries.set(k, v);
    }
    const metadata = { format: ADAPTER_FILE_FORMAT, version: 1, base: { source: this.files.source, fingerprint: this.fingerprint() }, adapters: chosen };
    entries.set(METADATA_KEY, jsonTensor(metadata));
    writeNpz(file, entries);
  }

  /** Loads adapters saved by saveAdapters; refuses files made for another base model. */
  async loadAdapters(file: string): Promise<NativeAdapterInfo[]> {
    const entries = readNpz(file);
    const meta = readJsonTensor(entries.get(METADATA_KEY), file) as {
      format?: string;
      base?: { fingerprint?: string };
      adapters?: NativeAdapterInfo[];
    };
    if (meta.format !== ADAPTER_FILE_FORMAT || !Array.isArray(meta.adapters)) {
      throw new ClaraError("E_CHECKPOINT", `${file} is not an adapter file written by @clara/mlx`, { file, field: METADATA_KEY });
    }
    if (meta.base?.fingerprint !== this.fingerprint()) {
      throw new ClaraError(
        "E_CHECKPOINT_MISMATCH",
        `${file} was saved for another base model (fingerprint ${meta.base?.fingerprint}, this model ${this.fingerprint()})`,
        { file, field: "base.fingerprint" },
      );
    }
    entries.delete(METADATA_KEY);
    await this.setParameters([...entries], meta.adapters);
    return meta.adapters;
  }

  /** Prepares the optimizer over `trainable`; returns the number of trainable values. */
  createTrainer(options: TrainerOptions): Promise<{ parameters: number; tensors: number; rank: number; worldSize: number }> {
    this.#refuseDuringRun("createTrainer");
    if (!Array.isArray(options.trainable) || options.trainable.length === 0) {
      throw invalidArgument("trainable", "a non-empty list of adapter or parameter names", options.trainable);
    }
    // Every value explicitly (DEFAULTS, the one table; a stage's come resolved): the addon's own
    // fallbacks are never used.
    const adamw = DEFAULTS.adamw;
    return this.#native.createTrainer({
      trainable: options.trainable,
      adamw: {
        beta1: options.beta1 ?? adamw.beta1,
        beta2: options.beta2 ?? adamw.beta2,
        eps: options.eps ?? adamw.eps,
        weightDecay: options.weightDecay ?? adamw.weightDecay,
      },
      schedule: {
        kind: options.schedule ?? DEFAULTS.schedule.stage1,
        lr: options.lr ?? DEFAULTS.lr.stage1,
        minLrRatio: options.minLrRatio ?? DEFAULTS.minLrRatio,
        warmupSteps: options.warmupSteps ?? 0,
        totalSteps: options.totalSteps ?? 1,
      },
      maxGradNorm: options.maxGradNorm ?? DEFAULTS.maxGradNorm,
      distributed: options.distributed,
      lanes: options.lanes ?? DEFAULTS.lanes,
      gradCheckpoint: options.gradCheckpoint ?? DEFAULTS.gradCheckpoint,
    });
  }

  /**
   * One optimizer update over micro-batches of language-model examples (gradient accumulation:
   * the update uses the mean of the micro-batches' token-mean losses).
   */
  trainStep(microBatches: LmExample[][], options: { adapter?: string; seed?: number } = {}): Promise<NativeStepResult> {
    return this.#native.trainStep({
      loss: "lm",
      microBatches: microBatches.map((examples) => this.lmBatch(examples)),
      adapter: options.adapter,
      seed: options.seed,
    });
  }

  /** Loss and gradients of one batch, without an update (finite-difference checks). */
  lossAndGradients(examples: LmExample[], options: { adapter?: string; train?: boolean; seed?: number } = {}) {
    return this.#native.lmLossAndGrad({ batch: this.lmBatch(examples), ...options });
  }

  optimizerState() {
    return this.#native.optimizerState();
  }

  dispose(): Promise<void> {
    return this.#native.dispose();
  }

  private lmBatch(examples: LmExample[]): TokenBatch {
    return this.batch(
      examples.map((e) => e.tokens),
      examples.map((e) => e.lossMask ?? e.tokens.map(() => 1)),
    );
  }
}

/** Model.fingerprint() of the model in `files`, without loading its weights (config, and size plus head and tail bytes of every file). */
export function modelFingerprint(files: ModelFiles): string {
  const h = crypto.createHash("sha256").update(JSON.stringify(files.config));
  for (const f of files.files) {
    const fd = fs.openSync(f, "r");
    try {
      const size = fs.fstatSync(fd).size;
      const span = Math.min(size, 1 << 20);
      const buf = Buffer.alloc(span);
      fs.readSync(fd, buf, 0, span, 0);
      h.update(String(size)).update(buf);
      fs.readSync(fd, buf, 0, span, size - span);
      h.update(buf);
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest("hex").slice(0, 16);
}

export function loadModel(modelPath: string, options: LoadModelOptions = {}): Promise<Model> {
  return Model.load(modelPath, options);
}
