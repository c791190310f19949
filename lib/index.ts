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
