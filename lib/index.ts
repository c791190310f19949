// The public API of @clara/mlx.
export { ClaraError, type ClaraErrorCode } from "./errors";
export { tensor, type DType, type Tensor } from "./tensor";
export { readNpz, writeNpz } from "./io/npz";
export {
  backend,
  compute,
  device,
  matmulBenchmark,
  memoryInfo,
  mlxVersion,
  runtimeInfo,
  type MatmulTiming,
  type MemoryInfo,
  type RuntimeInfo,
} from "./runtime";
export { Tokenizer } from "./tokenizer";
export { loadModel, Model, type GenerateOptions, type LoadModelOptions } from "./model/model";
export type { ModelConfig } from "./model/config";
export { ClaraModel, ADAPTERS } from "./clara/clara-model";
export { DEFAULTS as CLARA_DEFAULTS } from "./clara/config";
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
} from "./data/records";
export { deriveInstructionRecords, deriveEndToEndRecords } from "./data/derive";
export * as metrics from "./eval/metrics";
export { ClaraIndex, type Answer, type IndexDocument } from "./retrieval/clara-index";
export { loadReferenceClara, convertReferenceCheckpoint } from "./clara/reference-checkpoint";
