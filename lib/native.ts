// Loads the addon (a prebuilt binary from prebuilds/ wins, else build/Release) and gives it
// the ClaraError class, so native failures arrive as ClaraErrors. Nothing else in lib/ calls
// node-gyp-build; everything native goes through `native()`.

import * as path from "node:path";
import { ClaraError } from "./errors";
import type { Tensor } from "./tensor";

export interface RuntimeInfo {
  mlxVersion: string;
  backend: "metal" | "cuda" | "cpu";
  device: "gpu" | "cpu";
  deviceName: string;
  /** The shared library that defines cblas_sgemm in this process (links resolved). */
  blasLibrary: string;
  lapackLibrary: string;
  memoryLimit: number;
}

export interface MemoryInfo {
  active: number;
  peak: number;
  cache: number;
  limit: number;
}

export interface MatmulTiming {
  n: number;
  dtype: string;
  seconds: number[];
  bestGflops: number;
  medianGflops: number;
  maxAbsError: number;
}

/** A batch as native code takes it (see lib/data/batches.ts). */
export interface NativeBatch {
  ids: Tensor;
  keyValid?: Tensor;
  lossMask?: Tensor;
  /** Encoder batches: all-padding columns left out before column 0 (RoPE positions start after them). */
  positionOffset?: number;
}

export type NamedTensor = [string, Tensor];

export interface NativeStepResult {
  loss: number;
  tokens: number;
  gradNorm: number;
  lr: number;
  step: number;
  /** Loss components, e.g. {ce, mse}, averaged over the micro-batches. */
  parts: Record<string, number>;
  /** Seconds spent averaging gradients across ranks (0 in one process). */
  allreduceSeconds: number;
  /** The allocator's bytes in use after the update, and its high-water mark so far. */
  memory: { active: number; peak: number };
}

/** Which loss a step or an evaluation computes: next-token CE through one adapter, or a CLaRa stage loss. */
export type NativeLoss = { loss: "lm"; adapter?: string } | { loss: "stage12" | "stage3"; spec: NativeClaraSpec };

export interface NativeLossResult {
  loss: number;
  tokens: number;
  parts: Record<string, number>;
}

export interface NativeAdapterInfo {
  name: string;
  rank: number;
  alpha: number;
  dropout: number;
}

export interface NativeGenerateResult {
  tokens: number[][];
  stopped: boolean[];
  promptTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
}

/** Every value given (Model.createTrainer fills them from DEFAULTS): the addon's fallbacks are not relied on. */
export interface NativeTrainerOptions {
  trainable: string[];
  adamw: { beta1: number; beta2: number; eps: number; weightDecay: number };
  schedule: { kind: "cosine" | "constant"; lr: number; minLrRatio: number; warmupSteps: number; totalSteps: number };
  maxGradNorm: number;
  /** A distributed backend ("ring", "mpi", "jaccl", "nccl", "any") to average gradients over. */
  distributed?: string;
  /** Micro-batches evaluated at once on separate CPU streams (1 or 2). */
  lanes: 1 | 2;
  /** Recompute each decoder layer in the backward pass. */
  gradCheckpoint: boolean;
}

export interface NativeOptimizerState {
  step: number;
  m: NamedTensor[];
  v: NamedTensor[];
}

/** A model living on the MLX thread; every method queues work there. */
export interface NativeModel {
  logits(batch: NativeBatch, options?: { adapter?: string; lastOnly?: boolean }): Promise<Tensor>;
  hidden(batch: NativeBatch, options?: { adapter?: string }): Promise<Tensor>;
  generate(
    batch: NativeBatch,
    options: { adapter?: string; maxTokens: number; temperature: number; topP: number; stopTokens: number[]; seed: number },
  ): Promise<NativeGenerateResult>;
  addAdapter(name: string, options: { rank: number; alpha: number; dropout: number; seed: number }): Promise<void>;
  copyAdapter(from: string, to: string): Promise<void>;
  removeAdapter(name: string): Promise<void>;
  adapters(): Promise<NativeAdapterInfo[]>;
  getParameters(prefix?: string): Promise<NamedTensor[]>;
  setParameters(entries: NamedTensor[], options?: { adapters?: NativeAdapterInfo[] }): Promise<void>;
  createTrainer(options: NativeTrainerOptions): Promise<{ parameters: number; tensors: number; rank: number; worldSize: number }>;
  /** One optimizer update over micro-batches (token batches for "lm", stage batches for the stages). */
  trainStep(
    options: NativeLoss & {
      microBatches: NativeBatch[] | NativeStageBatch[];
      seed?: number;
      /** Global index of the first micro-batch (data parallelism). */
      microOffset?: number;
    },
  ): Promise<NativeStepResult>;
  /** Each batch's loss with dropout off and no gradient, in one crossing. */
  evalLosses(options: NativeLoss & { batches: NativeBatch[] | NativeStageBatch[] }): Promise<NativeLossResult[]>;
  lmLossAndGrad(options: { batch: NativeBatch; adapter?: string; train?: boolean; seed?: number }): Promise<{
    loss: number;
    tokens: number;
    grads: NamedTensor[];
  }>;
  optimizerState(): Promise<NativeOptimizerState>;
  setOptimizerState(state: NativeOptimizerState): Promise<void>;
  dispose(): Promise<void>;

  // CLaRa (binding/model_clara.cpp)
  claraInit(options: { nMem: number; seed?: number; firstId: number }): Promise<void>;
  claraCalibrateMemoryInput(options: { vectors: Tensor }): Promise<void>;
  claraCompress(options: { docs: NativeBatch; spec: NativeClaraSpec; adapter?: string }): Promise<{ vectors: Tensor; mse: number }>;
  /** Mean of each value over the trainer's ranks. */
  meanOverRanks(values: number[]): Promise<number[]>;
  claraGenerate(options: {
    prompt: NativeBatch;
    compressed?: Tensor;
    docs?: NativeBatch;
    spec: NativeClaraSpec;
    generation?: { maxTokens?: number; temperature?: number; topP?: number; stopTokens?: number[]; seed?: number };
  }): Promise<NativeGenerateResult>;
  claraRetrieve(options: { query: NativeBatch; candidates: Tensor; spec: NativeClaraSpec }): Promise<{ scores: Tensor; indices: Tensor; selected: Tensor }>;

  // In-memory cosine indexes of flattened compressed documents (lib/retrieval/clara-index.ts)
  indexAdd(name: string, vectors: Tensor): Promise<number>;
  indexSearch(name: string, queries: Tensor, k: number): Promise<{ scores: Tensor; indices: Tensor; rows: Tensor }>;
  indexDrop(name: string): Promise<void>;
}

export interface NativeClaraSpec {
  nMem: number;
  k: number;
  mem0Id: number;
  mseWeight: number;
  tau: number;
  compressor: string;
  generator: string;
  queryReasoner: string;
}

/** One micro-batch of a CLaRa stage: documents (stages 1–2) or query + candidates (stage 3), and the prompt. */
export interface NativeStageBatch {
  prompt: NativeBatch;
  docs?: NativeBatch;
  query?: NativeBatch;
  candidates?: NativeBatch;
  numCandidates?: number;
}

export interface NativeModelSpec {
  config: object;
  format: "safetensors" | "gguf";
  files: string[];
  ggufRopePermuted: boolean;
  /** An MLX-quantized folder's group size; 0 otherwise. */
  sourceGroupSize: number;
  quantization: { mode: "float" | "source" | "affine"; bits: number; groupSize: number };
  dtype: "float32" | "bfloat16" | "float16";
}

/** The addon's surface. Every call that touches MLX returns a Promise served by the MLX thread. */
export interface NativeAddon {
  setErrorClass(cls: typeof ClaraError): void;
  mlxVersion(): string;
  runtimeInfo(): Promise<RuntimeInfo>;
  memoryInfo(resetPeak?: boolean): Promise<MemoryInfo>;
  compute(op: string, inputs: Tensor[], dtype?: string): Promise<Tensor>;
  matmulBenchmark(options: { n?: number; iterations?: number; warmup?: number; dtype?: string }): Promise<MatmulTiming>;
  loadModel(spec: NativeModelSpec): Promise<NativeModel>;
  /** CLaRa's straight-through top-k and d(Σ cotangent·W)/d(scores), for tests. */
  differentiableTopK(scores: Tensor, k: number, tau: number, cotangent: Tensor): Promise<{ weights: Tensor; indices: Tensor; gradScores: Tensor }>;
}

let addon: NativeAddon | undefined;

/** The package folder, whether this runs compiled (dist/lib/) or from sources (lib/). */
export function packageRoot(): string {
  const up = path.resolve(__dirname, "..");
  return path.basename(up) === "dist" ? path.dirname(up) : up;
}

export function native(): NativeAddon {
  if (addon) return addon;
  const root = packageRoot();
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const load = require("node-gyp-build") as (dir: string) => NativeAddon;
    addon = load(root);
  } catch (err) {
    throw new ClaraError(
      "E_NATIVE_LOAD",
      `The @clara/mlx native addon could not be loaded from ${root}: ${(err as Error).message}\n` +
        "Possible solutions:\n" +
        "- Run `npm install` (or `npm run build:native`) in the package folder to fetch MLX and build the addon.\n" +
        "- If libmlx cannot be found, remove .mlx-sdk/ and build/ and run `npm install` again.\n" +
        "- Set MLX_DIR to an MLX install prefix (a folder holding share/cmake/MLX) and rebuild.",
      { cause: err },
    );
  }
  addon.setErrorClass(ClaraError);
  return addon;
}
