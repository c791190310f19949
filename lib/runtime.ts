// @clara/mlx/runtime: what MLX runs on, and a few tensor operations through it: the public face
// of the addon's runtime calls.

import { invalidArgument } from "./errors";
import { native, type MatmulTiming, type MemoryInfo, type RuntimeInfo } from "./native";
import { validateTensor, type DType, type Tensor } from "./tensor";

export type { MatmulTiming, MemoryInfo, RuntimeInfo };
export { tensor, type DType, type Tensor } from "./tensor";
/** The folder the package is installed in (where build/, models/ and results/ are looked for). */
export { packageRoot } from "./native";

/** The MLX release the addon was built against, e.g. "0.32.4". */
export function mlxVersion(): string {
  return native().mlxVersion();
}

export function runtimeInfo(): Promise<RuntimeInfo> {
  return native().runtimeInfo();
}

/** "metal", "cuda" or "cpu": the backend MLX computes on. */
export async function backend(): Promise<RuntimeInfo["backend"]> {
  return (await runtimeInfo()).backend;
}

/** MLX's default device ("gpu" or "cpu") and its name where the backend reports one. */
export async function device(): Promise<{ type: RuntimeInfo["device"]; name: string }> {
  const info = await runtimeInfo();
  return { type: info.device, name: info.deviceName };
}

/** MLX allocator counters in bytes; `resetPeak` zeroes the peak after reading it. */
export function memoryInfo(resetPeak = false): Promise<MemoryInfo> {
  return native().memoryInfo(resetPeak);
}

export type TensorOp = "identity" | "add" | "multiply" | "matmul" | "sum" | "transpose" | "astype";

/** Applies one MLX op to host tensors and returns the evaluated result. */
export function compute(op: TensorOp, inputs: Tensor[], options: { dtype?: DType } = {}): Promise<Tensor> {
  inputs.forEach((t, i) => validateTensor(t, `inputs[${i}]`));
  if (op === "astype" && options.dtype === undefined) throw invalidArgument("options.dtype", "a dtype for astype", undefined);
  return native().compute(op, inputs, options.dtype);
}

/** Times float32 (or other dtype) N×N matmuls on MLX's default device; the result is checked first. */
export function matmulBenchmark(options: { n?: number; iterations?: number; warmup?: number; dtype?: DType } = {}): Promise<MatmulTiming> {
  return native().matmulBenchmark(options);
}
