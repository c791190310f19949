// GGUF (llama.cpp's model format): the header, metadata and tensor infos only. The tensor data
// is left for the native side, which loads it with MLX. A model file is gigabytes while its
// metadata is a few MiB at the front, so the reader pulls chunks through one descriptor and
// never holds more than the chunk it is decoding.

import * as fs from "node:fs";
import { ClaraError } from "../errors";

/** A metadata value. 64-bit integers stay exact as bigint; every narrower type is a number. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** Row-major (outermost first, like numpy and MLX): GGUF's `ne` list reversed. */
  shape: number[];
  /** The ggml_type id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, 30 BF16, ...). */
  type: number;
  /** Byte offset of the tensor's data from `dataOffset`. */
  offset: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset where the tensor data section starts. */
  dataOffset: number;
}

export const GGUF_TYPE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;

// Bytes the smallest value of each type takes; an array count is checked against the bytes left
// before anything is allocated, so a corrupt count fails as truncation instead of exhausting memory.
const MIN_SIZE = [1, 1, 2, 2, 4, 4, 4, 1, 8, 12, 8, 8, 8];
const CHUNK = 1 << 20;
// ggml's GGML_MAX_DIMS; a larger count means the tensor infos are misread.
const MAX_DIMS = 4;

export function readGgufHeader(file: string): GgufHeader {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch (e) {
    throw new ClaraError("E_IO", `Could not read ${file}: ${(e as Error).message}`, { file, cause: e });
  }
  try {
    return parse(new ChunkReader(fd, fs.fstatSync(fd).size, file));
  } finally {
    fs.closeSync(fd);
  }
}

function parse(r: ChunkReader): GgufHeader {
  r.where = "the GGUF magic";
  if (r.size < 4 || r.latin1(4) !== "GGUF") {
    throw r.error("not a GGUF file (the first bytes are not 'GGUF'); check that the path names a .gguf model");
  }
  r.where = "the GGUF version";
  const version = r.u32();
  if (version !== 2 && version !== 3) {
    const swapped = Buffer.from(Uint32Array.of(version).buffer).readUInt32BE(0);
    const hint =
      version === 1
        ? "version 1 predates 64-bit counts; convert the model again with a current llama.cpp"
        : swapped === 2 || swapped === 3
          ? "it is a big-endian GGUF; only little-endian files are supported"
          : "only versions 2 and 3 are supported";
    throw r.error(`unsupported GGUF version ${version}: ${hint}`);
  }
  r.where = "the tensor count";
  const tensorCount = r.count(24);
  r.where = "the metadata count";
  const kvCount = r.count(13);

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    r.where = `the key of metadata entry ${i}`;
    const key = r.str();
    r.where = `metadata key '${key}'`;
    r.entry = key;
    metadata.set(key, readValue(r, r.u32()));
  }
  r.entry = undefined;

  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < tensorCount; i++) {
    r.where = `the name of tensor info ${i}`;
    const name = r.str();
    r.where = `tensor info '${name}'`;
    r.entry = name;
    const nDims = r.u32();
    if (nDims > MAX_DIMS) throw r.error(`${nDims} dimensions (ggml allows at most ${MAX_DIMS})`);
    const ne = Array.from({ length: nDims }, () => r.u64Number());
    tensors.push({ name, shape: ne.reverse(), type: r.u32(), offset: r.u64Number() });
  }
  r.entry = undefined;

  const alignment = metadata.get("general.alignment") ?? 32;
  if (typeof alignment !== "number" || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw r.error(`general.alignment is ${String(alignment)}, not a power of two`);
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  return { version, metadata, tensors, alignment, dataOffset };
}

function readValue(r: ChunkReader, type: number): GgufValue {
  switch (type) {
    case GGUF_TYPE.UINT8: return r.buf[r.need(1)];
    case GGUF_TYPE.INT8: return r.buf.readInt8(r.need(1));
    case GGUF_TYPE.UINT16: return r.buf.readUInt16LE(r.need(2));
    case GGUF_TYPE.INT16: return r.buf.readInt16LE(r.need(2));
    case GGUF_TYPE.UINT32: return r.u32();
    case GGUF_TYPE.INT32: return r.buf.readInt32LE(r.need(4));
    case GGUF_TYPE.FLOAT32: return r.buf.readFloatLE(r.need(4));
    case GGUF_TYPE.BOOL: return r.buf[r.need(1)] !== 0;
    case GGUF_TYPE.STRING: return r.str();
    case GGUF_TYPE.UINT64: return r.buf.readBigUInt64LE(r.need(8));
    case GGUF_TYPE.INT64: return r.buf.readBigInt64LE(r.need(8));
    case GGUF_TYPE.FLOAT64: return r.buf.readDoubleLE(r.need(8));
    case GGUF_TYPE.ARRAY: {
      const itemType = r.u32();
      if (!(itemType in MIN_SIZE)) throw r.error(`unknown array element type ${itemType}`);
      const n = r.count(MIN_SIZE[itemType]);
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(r, itemType);
      return out;
    }
    default:
      throw r.error(`unknown value type ${type}; the file is corrupt or from a newer GGUF revision`);
  }
}

/** Sequential little-endian reads through a chunk buffer refilled with fs.readSync. */
class ChunkReader {
  buf = Buffer.allocUnsafe(CHUNK);
  /** Absolute offset of the next unread byte. */
  pos = 0;
  /** What is being read, for error messages; `entry` is the key or tensor name, if any. */
  where = "";
  entry: string | undefined;
  private start = 0; // file offset of buf[0]
  private end = 0; // file offset past the last valid byte in buf

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly file: string,
  ) {}

  error(message: string): ClaraError {
    return new ClaraError("E_GGUF", `${this.file}: ${message} (at byte ${this.pos}, reading ${this.where})`, {
      file: this.file,
      entry: this.entry,
    });
  }

  /** Makes n bytes at pos available and returns their index in buf; advances pos. */
  need(n: number): number {
    if (this.pos + n > this.size) {
      throw this.error(
        `the file is truncated: ${n} more bytes are needed but it ends at byte ${this.size}. ` +
          `An interrupted download or copy is the usual cause; fetch the file again`,
      );
    }
    if (this.pos + n > this.end) {
      if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, 2 * this.buf.length));
      const want = Math.min(this.buf.length, this.size - this.pos);
      let got = 0;
      while (got < n) {
        const k = fs.readSync(this.fd, this.buf, got, want - got, this.pos + got);
        if (k === 0) throw this.error(`the file shrank while being read (ends before byte ${this.pos + n})`);
        got += k;
      }
      this.start = this.pos;
      this.end = this.pos + got;
    }
    const at = this.pos - this.start;
    this.pos += n;
    return at;
  }

  u32(): number {
    return this.buf.readUInt32LE(this.need(4));
  }

  u64Number(): number {
    const v = this.buf.readBigUInt64LE(this.need(8));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error(`a size of ${v} is not plausible; the file is corrupt`);
    return Number(v);
  }

  /** A u64 element count whose elements, at least `minSize` bytes each, must fit in the file. */
  count(minSize: number): number {
    const n = this.u64Number();
    if (n * minSize > this.size - this.pos) {
      throw this.error(
        `the file is truncated: it declares ${n} items but only ${this.size - this.pos} bytes remain. ` +
          `An interrupted download or copy is the usual cause; fetch the file again`,
      );
    }
    return n;
  }

  str(): string {
    const len = this.count(1);
    const at = this.need(len);
    return this.buf.toString("utf8", at, at + len);
  }

  latin1(n: number): string {
    const at = this.need(n);
    return this.buf.toString("latin1", at, at + n);
  }
}

// Typed access for readers of the metadata (tokenizer, model config).

function metaError(file: string | undefined, key: string, message: string): ClaraError {
  return new ClaraError("E_GGUF", `${file ?? "GGUF metadata"}: ${message}`, { file, entry: key });
}

export function metaString(meta: Map<string, GgufValue>, key: string, file?: string): string | undefined {
  const v = meta.get(key);
  if (v !== undefined && typeof v !== "string") throw metaError(file, key, `'${key}' is not a string`);
  return v;
}

/** An integer of any width, as a number; undefined when absent. */
export function metaInt(meta: Map<string, GgufValue>, key: string, file?: string): number | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER))
    return Number(v);
  if (typeof v === "number" && Number.isInteger(v)) return v;
  throw metaError(file, key, `'${key}' is not an integer`);
}

export function metaBool(meta: Map<string, GgufValue>, key: string, file?: string): boolean | undefined {
  const v = meta.get(key);
  if (v !== undefined && typeof v !== "boolean") throw metaError(file, key, `'${key}' is not a bool`);
  return v;
}

export function metaArray<T extends "string" | "number">(
  meta: Map<string, GgufValue>,
  key: string,
  item: T,
  file?: string,
): (T extends "string" ? string : number)[] | undefined {
  const v = meta.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === item))
    throw metaError(file, key, `'${key}' is not an array of ${item}s`);
  return v as (T extends "string" ? string : number)[];
}
