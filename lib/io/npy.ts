// The .npy format (numpy/lib/format.py). Writing must match numpy byte for byte: MLX's C++
// loader does not parse the header, it reads the dtype at header[11..13] and the fortran flag
// at header[34], so key order and spacing are load-bearing. Reading is lenient about layout
// (mlx.core.savez writes `(2, 3, )}` and unpadded headers) but strict about sizes.

import { ClaraError } from "../errors";
import { DType, Tensor, TypedData, itemSize, sizeOf, storageFor, validateTensor } from "../tensor";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
const ALIGN = 64;
// numpy leaves room to rewrite shape[0] in place when appending (GROWTH_AXIS_MAX_DIGITS).
const GROWTH_AXIS_MAX_DIGITS = 21;

// bfloat16 has no numpy dtype; '<V2' is what mlx.core.savez writes and reads back as bf16.
const DESCR: { [D in DType]: string } = {
  float32: "<f4",
  float16: "<f2",
  bfloat16: "<V2",
  int32: "<i4",
  uint32: "<u4",
  uint8: "|u1",
  bool: "|b1",
};

const BY_TYPECODE: Record<string, DType> = Object.fromEntries(
  Object.entries(DESCR).map(([dtype, descr]) => [descr.slice(1), dtype as DType]),
);

const KIND_NAMES: Record<string, string> = { f: "float", i: "int", u: "uint", c: "complex" };
const CONVERT_TO: Record<string, DType> = { f: "float32", i: "int32", u: "uint32" };

export interface NpyLocation {
  file?: string;
  /** The member of an .npz archive, without the `.npy` suffix. */
  entry?: string;
}

export function npzError(where: NpyLocation, message: string, cause?: unknown): ClaraError {
  const label =
    where.file !== undefined && where.entry !== undefined
      ? `${where.file} (array '${where.entry}')`
      : where.file ?? (where.entry !== undefined ? `array '${where.entry}'` : ".npy data");
  return new ClaraError("E_NPZ", `${label}: ${message}`, { file: where.file, entry: where.entry, cause });
}

export function encodeNpy(t: Tensor, name = "tensor"): Uint8Array {
  validateTensor(t, name);
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(", ")})`;
  let dict = `{'descr': '${DESCR[t.dtype]}', 'fortran_order': False, 'shape': ${shape}, }`;
  if (t.shape.length > 0) dict += " ".repeat(GROWTH_AXIS_MAX_DIGITS - String(t.shape[0]).length);

  // Version 1.0 has a u16 header length; numpy switches to 2.0 (u32) only when it must.
  let lenBytes = 2;
  let padded = padHeader(dict, lenBytes);
  if (padded.length > 0xffff) padded = padHeader(dict, (lenBytes = 4));

  const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const preamble = MAGIC.length + 2 + lenBytes;
  const out = new Uint8Array(preamble + padded.length + data.length);
  out.set(MAGIC, 0);
  out[6] = lenBytes === 2 ? 1 : 2;
  const view = new DataView(out.buffer);
  if (lenBytes === 2) view.setUint16(8, padded.length, true);
  else view.setUint32(8, padded.length, true);
  out.set(Buffer.from(padded, "latin1"), preamble);
  out.set(data, preamble + padded.length);
  return out;
}

// numpy always adds at least one space: padlen = ALIGN - (len % ALIGN), never 0.
function padHeader(dict: string, lenBytes: number): string {
  const unpadded = MAGIC.length + 2 + lenBytes + dict.length + 1;
  return dict + " ".repeat(ALIGN - (unpadded % ALIGN)) + "\n";
}

export function decodeNpy(bytes: Uint8Array, where: NpyLocation = {}): Tensor {
  const fail = (message: string) => npzError(where, message);
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b))
    throw fail(`not a .npy array (bad magic bytes${bytes.length < 10 ? `; only ${bytes.length} bytes` : ""})`);
  const major = bytes[6];
  if (major < 1 || major > 3 || bytes[7] !== 0) throw fail(`unsupported .npy format version ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) throw fail("truncated inside the .npy preamble");
  const headerLen = lenBytes === 2 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenBytes + headerLen;
  if (dataStart > bytes.length)
    throw fail(`truncated: the header says it is ${headerLen} bytes but only ${bytes.length - 8 - lenBytes} follow`);
  const header = Buffer.from(bytes.buffer, bytes.byteOffset + 8 + lenBytes, headerLen).toString(
    major === 3 ? "utf8" : "latin1",
  );

  const { dtype, fortran, shape } = parseHeader(header, where);
  const count = sizeOf(shape);
  const expected = count * itemSize(dtype);
  const actual = bytes.length - dataStart;
  if (actual !== expected)
    throw fail(
      `shape [${shape.join(", ")}] of ${dtype} needs ${expected} bytes of data but ${actual} are present` +
        (actual < expected ? " (truncated)" : ""),
    );

  // A fresh copy: the source may sit at an odd offset inside a zip buffer.
  const data = new (storageFor(dtype))(count);
  new Uint8Array(data.buffer).set(bytes.subarray(dataStart));
  return { dtype, shape, data: fortran ? fromFortranOrder(data, shape) : data } as Tensor;
}

function parseHeader(header: string, where: NpyLocation): { dtype: DType; fortran: boolean; shape: number[] } {
  const fail = (message: string) => npzError(where, `${message} in .npy header ${JSON.stringify(header.trim())}`);
  if (!/^\s*\{[\s\S]*\}\s*$/.test(header)) throw fail("expected a Python dict literal");
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined) throw fail("no plain 'descr' (structured dtypes are not supported)");
  if (fortran === undefined) throw fail("no 'fortran_order'");
  if (shapeText === undefined) throw fail("no 'shape' tuple");

  const dims = shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (!dims.every((d) => /^\d+L?$/.test(d))) throw fail("a malformed 'shape'");
  const shape = dims.map((d) => Number.parseInt(d, 10));
  if (!shape.every(Number.isSafeInteger)) throw fail("a dimension too large");
  return { dtype: dtypeOf(descr, where), fortran: fortran === "True", shape };
}

function dtypeOf(descr: string, where: NpyLocation): DType {
  const m = /^([<>|=]?)([a-zA-Z])(\d+)$/.exec(descr);
  const supported = `supported dtypes are ${Object.keys(DESCR).join(", ")}`;
  if (m === null) throw npzError(where, `dtype '${descr}' is not supported; ${supported}`);
  const [, order, kind, size] = m;
  const dtype = BY_TYPECODE[kind + size];
  if (order === ">" && size !== "1") {
    const fix = dtype === "bfloat16" ? "" : `; convert with arr.astype('<${kind}${size}')`;
    throw npzError(where, `dtype '${descr}' is big-endian, which is not supported${fix}`);
  }
  if (dtype !== undefined) return dtype;
  const name = KIND_NAMES[kind] !== undefined ? `${KIND_NAMES[kind]}${Number(size) * 8} ` : "";
  const fix = CONVERT_TO[kind] !== undefined ? `; convert with arr.astype('${CONVERT_TO[kind]}')` : "";
  throw npzError(where, `dtype ${name}('${descr}') is not supported (${supported})${fix}`);
}

// Fortran order with shape S is C order with shape reverse(S); gather back into C order.
function fromFortranOrder(src: TypedData, shape: number[]): TypedData {
  if (shape.filter((d) => d > 1).length <= 1) return src; // both orders coincide
  const n = shape.length;
  const strides = new Array<number>(n);
  for (let j = 0, s = 1; j < n; s *= shape[j], j++) strides[j] = s;
  const out = new (src.constructor as new (n: number) => TypedData)(src.length);
  const index = new Array<number>(n).fill(0);
  let from = 0;
  for (let i = 0; i < out.length; i++) {
    out[i] = src[from];
    for (let j = n - 1; j >= 0; j--) {
      from += strides[j];
      if (++index[j] < shape[j]) break;
      from -= strides[j] * shape[j];
      index[j] = 0;
    }
  }
  return out;
}
