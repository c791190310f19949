// The public API of @clara/mlx: what a user needs to train, load and query a CLaRa model.
// The rest is in subpath entries, each an index file (package.json "exports"):
//   @clara/mlx/data     record readers and the stage-2/3 record derivation   (lib/data/index.ts)
//   @clara/mlx/eval     metrics, held-out QA, PDF extraction, QA sets, the suite (lib/eval/index.ts)
//   @clara/mlx/io       .npz, checkpoints, the reference's .pth checkpoints   (lib/io/index.ts)
//   @clara/mlx/model    the tokenizer, adapter names and CLaRa defaults      (lib/model/index.ts)
//   @clara/mlx/runtime  what MLX runs on, memory, matmul timing, one-op compute (lib/runtime.ts)
// This entry loads no PDF or chart code (__tests__/public-api.test.ts checks it and the name lists).
export { ClaraError, type ClaraErrorCode } from "./errors";
export type { DType, Tensor } from "./tensor";
export type { Tokenizer } from "./tokenizer";
export { loadModel, Model, type GenerateOptions, type Generation, type LoadModelOptions } from "./model/model";
export type { ModelConfig } from "./model/config";
export type { QuantizeOption } from "./model/quantization";
export { ClaraModel, type ClaraCreateOptions, type ClaraGenerateOptions } from "./clara/clara-model";
export { Stage1Trainer, Stage2Trainer, Stage3Trainer, type QueryReasonerInit, type StageOptions } from "./trainers/stages";
export type { TrainEvent, TrainOptions, TrainSummary } from "./trainers/trainer";
export { readCheckpoint, type CheckpointMetadata, type Stage } from "./io/checkpoint";
export {
  readPretrainRecords,
  readInstructionRecords,
  readEndToEndRecords,
  type PretrainRecord,
  type InstructionRecord,
  type EndToEndRecord,
  type ReadResult,
} from "./data/records";
export * as metrics from "./eval/metrics";
export { ClaraIndex, type Answer, type BuildOptions, type IndexDocument } from "./retrieval/clara-index";
