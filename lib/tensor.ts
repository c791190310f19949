// A host tensor: the plain value that crosses the JS/native boundary and the .npz files.
// It owns a typed array in row-major (C) order; nothing here touches MLX.

import { ClaraError, invalidArgument } from "./errors";

export type DType = "float32" | "float16" | "bfloat16" | "int32" | "uint32" | "uint8" | "bool";

/** The typed array that holds each dtype. float16/bfloat16 travel as raw 16-bit patterns. */
export interface DTypeStorage {
  float32: Float32Array;
  float16: Uint16Array;
  bfloat16: Uint16Array;
  int32: Int32Array;
  uint32: Uint32Array;
  uint8: Uint8Array;
  bool: Uint8Array;
}

export type TypedData = DTypeStorage[DType];

export interface Tensor<D extends DType = DType> {
  dtype: D;
  shape: number[];
  data: DTypeStorage[D];
}

export const DTYPES: readonly DType[] = ["float32", "float16", "bfloat16", "int32", "uint32", "uint8", "bool"];

export function itemSize(dtype: DType): number {
  switch (dtype) {
    case "float32":
    case "int32":
    case "uint32":
      return 4;
    case "float16":
    case "bfloat16":
      return 2;
    case "uint8":
    case "bool":
      return 1;
  }
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const STORAGE: { [D in DType]: new (n: number) => DTypeStorage[D] } = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

export function storageFor(dtype: DType): new (n: number) => TypedData {
  return STORAGE[dtype];
}

/** Checks dtype, shape and that data is the right typed array of the right length. */
export function validateTensor(t: unknown, name = "tensor"): asserts t is Tensor {
  if (typeof t !== "object" || t === null) throw invalidArgument(name, "a tensor {dtype, shape, data}", t);
  const { dtype, shape, data } = t as Partial<Tensor>;
  if (typeof dtype !== "string" || !DTYPES.includes(dtype as DType))
    throw invalidArgument(`${name}.dtype`, `one of ${DTYPES.join(", ")}`, dtype);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
    throw invalidArgument(`${name}.shape`, "an array of non-negative integers", shape);
  const ctor = STORAGE[dtype as DType];
  if (!isTypedArrayOf(data, ctor)) throw invalidArgument(`${name}.data`, `a ${ctor.name} for dtype ${dtype}`, data);
  if ((data as TypedData).length !== sizeOf(shape))
    throw new ClaraError(
      "E_INVALID_ARGUMENT",
      `${name}.data has ${(data as TypedData).length} elements but shape [${shape.join(", ")}] needs ${sizeOf(shape)}`,
      { field: `${name}.data` },
    );
}

/**
 * `instanceof` fails for typed arrays made in another realm (the addon's, under jest's vm
 * sandbox, or a worker's), so compare the built-in tag instead.
 */
export function isTypedArrayOf(value: unknown, ctor: { name: string }): boolean {
  return ArrayBuffer.isView(value) && Object.prototype.toString.call(value) === `[object ${ctor.name}]`;
}

export function tensor<D extends DType>(dtype: D, shape: number[], data: DTypeStorage[D]): Tensor<D> {
  const t = { dtype, shape, data };
  validateTensor(t);
  return t;
}

// bfloat16 <-> float32: a bf16 is the top half of an f32's bits; round to nearest even.
export function float32ToBfloat16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && (b & 0x007fffff) !== 0) out[i] = (b >>> 16) | 0x0040; // keep NaN a NaN
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

export function bfloat16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
  return new Float32Array(out.buffer);
}

/** m >> shift, rounded to nearest, ties to even (shift >= 1). */
function shiftRoundEven(m: number, shift: number): number {
  const half = 2 ** (shift - 1);
  return Math.floor((m + half - 1 + (Math.floor(m / 2 ** shift) & 1)) / 2 ** shift);
}

// float16 <-> float32 (IEEE half), round to nearest even as MLX does; past 65504 -> infinity.
export function float32ToFloat16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = ((x >>> 23) & 0xff) - 127 + 15;
    const mant = x & 0x7fffff;
    if (((x >>> 23) & 0xff) === 0xff) out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
    else if (exp >= 31) out[i] = sign | 0x7c00;
    else if (exp <= 0) out[i] = exp < -10 ? sign : sign | shiftRoundEven(mant | 0x800000, 14 - exp);
    else out[i] = sign | Math.min(0x7c00, (exp << 10) + shiftRoundEven(mant, 13)); // the carry may round up the exponent
  }
  return out;
}

export function float16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    out[i] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return out;
}
