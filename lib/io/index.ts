// @clara/mlx/io: .npz archives, checkpoints, and the reference's PyTorch checkpoints (read with
// a weights-only reader, then converted or loaded).
export { readNpz, writeNpz, type NpzEntries, type NpzWriteOptions } from "./npz";
export { readCheckpoint, type CheckpointMetadata, type Stage } from "./checkpoint";
export {
  convertReferenceCheckpoint,
  loadReferenceClara,
  type ConvertResult,
  type ReferenceLoadOptions,
} from "../clara/reference-checkpoint";
