// PyTorch checkpoints (torch.save's zip format) read without running any of their code: the
// promise of torch.load(weights_only=True) and of safetensors. A .pth is a zip holding
// <prefix>/data.pkl (a pickle, protocol 2), <prefix>/data/<key> (one raw storage per key),
// <prefix>/byteorder and <prefix>/version. The pickle VM here knows only the opcodes and the
// handful of globals a tensor state dict needs; any other global is refused at the opcode that
// names it, before any object is built from it. Storages are read lazily from the file (a 1 GB
// embedding table is never loaded to take a few rows of it), their CRCs are checked, and
// tensor views (storage offset, sizes, strides) are materialised as contiguous row-major data.

import * as fs from "node:fs";
import * as zlib from "node:zlib";
import { inflateSync } from "fflate";
import { ClaraError } from "../errors";
import { tensor, type Tensor } from "../tensor";

// ---------------------------------------------------------------------------------------
// Public types

/** Element types of the storages this reader accepts. */
export type PthDType = "float32" | "float16" | "bfloat16" | "int64";

/** The storage classes torch.save names in persistent ids, and what they hold. */
export const STORAGE_TYPES: Readonly<Record<string, PthDType>> = {
  "torch.FloatStorage": "float32",
  "torch.HalfStorage": "float16",
  "torch.BFloat16Storage": "bfloat16",
  "torch.LongStorage": "int64",
};

/** Callables the VM may REDUCE (each implemented here as plain data construction). */
const CALLABLES = [
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch._utils._rebuild_parameter_with_state",
] as const;

/** Every global a checkpoint may name; anything else is E_PTH_UNSAFE. */
export const ALLOWED_GLOBALS: readonly string[] = [...CALLABLES, ...Object.keys(STORAGE_TYPES)];

const ITEM_BYTES: Record<PthDType, number> = { float32: 4, float16: 2, bfloat16: 2, int64: 8 };

/** A module-level name the pickle referred to (only ever one of ALLOWED_GLOBALS). */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** One storage record of the archive, as a persistent id described it. */
export class PthStorage {
  constructor(
    readonly archive: PthArchive,
    readonly key: string,
    readonly dtype: PthDType,
    readonly numel: number,
    readonly location: string,
    /** The zip member holding the bytes, e.g. "adapters/data/3". */
    readonly record: string,
  ) {}
}

/**
 * A tensor of the checkpoint, not yet read: a view (offset, shape, strides in elements) of a
 * storage. load() reads exactly the bytes it spans and returns contiguous row-major data.
 */
export class PthTensor {
  constructor(
    readonly storage: PthStorage,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
    readonly requiresGrad = false,
  ) {}

  get dtype(): PthDType {
    return this.storage.dtype;
  }

  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** True when the elements are consecutive in the storage, in row-major order. */
  get isContiguous(): boolean {
    let expected = 1;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      if (this.shape[d] !== 1 && this.stride[d] !== expected) return false;
      expected *= this.shape[d];
    }
    return true;
  }

  /** The view with dimensions a and b swapped (no data is read). */
  transpose(a = 0, b = 1): PthTensor {
    const shape = [...this.shape];
    const stride = [...this.stride];
    [shape[a], shape[b]] = [shape[b], shape[a]];
    [stride[a], stride[b]] = [stride[b], stride[a]];
    return new PthTensor(this.storage, this.offset, shape, stride, this.requiresGrad);
  }

  /** Rows [start, start + count) along the first dimension, as a view. */
  narrow(start: number, count: number): PthTensor {
    if (this.shape.length === 0 || !Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.shape[0]) {
      throw new ClaraError("E_PTH", `rows [${start}, ${start + count}) are outside a tensor of shape [${this.shape.join(", ")}]`, {
        file: this.storage.archive.file,
        entry: this.storage.record,
      });
    }
    return new PthTensor(this.storage, this.offset + start * this.stride[0], [count, ...this.shape.slice(1)], this.stride, this.requiresGrad);
  }

  /**
   * The values, contiguous and row-major. float32/float16/bfloat16 keep their type (16-bit
   * types as raw bit patterns); int64 becomes int32 when every value fits, else an error.
   */
  load(): Tensor {
    const archive = this.storage.archive;
    const item = ITEM_BYTES[this.dtype];
    const n = this.numel;
    const shape = [...this.shape];
    let raw: Uint8Array;
    if (n === 0) raw = new Uint8Array(0);
    else if (this.isContiguous) raw = archive.readStorage(this.storage, this.offset * item, n * item);
    else {
      let span = 1;
      for (let d = 0; d < shape.length; d++) span += (shape[d] - 1) * this.stride[d];
      const src = archive.readStorage(this.storage, this.offset * item, span * item);
      raw = new Uint8Array(n * item);
      gather(src, raw, item, shape, this.stride);
    }
    switch (this.dtype) {
      case "float32":
        return tensor("float32", shape, new Float32Array(raw.buffer, raw.byteOffset, n));
      case "float16":
        return tensor("float16", shape, new Uint16Array(raw.buffer, raw.byteOffset, n));
      case "bfloat16":
        return tensor("bfloat16", shape, new Uint16Array(raw.buffer, raw.byteOffset, n));
      case "int64": {
        const wide = new BigInt64Array(raw.buffer, raw.byteOffset, n);
        const out = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          const v = wide[i];
          if (v > 2147483647n || v < -2147483648n) {
            throw new ClaraError("E_PTH", `${archive.file}: int64 tensor in ${this.storage.record} holds ${v}, which does not fit int32`, {
              file: archive.file,
              entry: this.storage.record,
            });
          }
          out[i] = Number(v);
        }
        return tensor("int32", shape, out);
      }
    }
  }
}

/** Reads strided elements of `src` (element 0 = the view's offset) into contiguous `dst`. */
function gather(src: Uint8Array, dst: Uint8Array, item: number, shape: number[], stride: readonly number[]): void {
  const view = (b: Uint8Array) =>
    item === 8
      ? new BigUint64Array(b.buffer, b.byteOffset, b.byteLength / 8)
      : item === 4
        ? new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4)
        : new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2);
  const s = view(src) as unknown as { [i: number]: number | bigint };
  const d = view(dst) as unknown as { [i: number]: number | bigint };
  const nd = shape.length;
  if (nd === 0) {
    d[0] = s[0];
    return;
  }
  const L = shape[nd - 1];
  const sL = stride[nd - 1];
  const idx = new Array<number>(nd - 1).fill(0);
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  let out = 0;
  let rowBase = 0;
  for (let r = 0; r < rows; r++) {
    for (let j = 0, p = rowBase; j < L; j++, p += sL) d[out++] = s[p];
    for (let k = nd - 2; k >= 0; k--) {
      idx[k]++;
      rowBase += stride[k];
      if (idx[k] < shape[k]) break;
      rowBase -= stride[k] * shape[k];
      idx[k] = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Zip (read from the file, central directory first; ZIP64 aware)

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const CHUNK = 1 << 26; // 64 MiB per read / CRC step

export interface ZipMember {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** A zip archive on disk, read through its central directory; members are read on demand. */
export class ZipReader {
  readonly members = new Map<string, ZipMember>();
  readonly size: number;
  private readonly fd: number;
  private readonly dataStart = new Map<string, number>();
  private readonly verified = new Set<string>();

  constructor(
    readonly file: string,
    private readonly verifyCrc = true,
  ) {
    try {
      this.fd = fs.openSync(file, "r");
      this.size = fs.fstatSync(this.fd).size;
    } catch (e) {
      throw new ClaraError("E_IO", `Could not read ${file}: ${(e as Error).message}`, { file, cause: e });
    }
    try {
      this.readDirectory();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  /** `length` bytes of a member's contents from byte `start`, CRC-checked once per member. */
  read(name: string, start = 0, length?: number): Uint8Array {
    const m = this.member(name);
    const len = length ?? m.size - start;
    if (start < 0 || len < 0 || start + len > m.size) {
      throw this.error(`asks for bytes [${start}, ${start + len}) of member '${name}', which holds ${m.size}`, name);
    }
    if (m.method === 8) {
      const all = this.inflated(m);
      return all.subarray(start, start + len);
    }
    const out = this.readAt(this.dataOffset(m) + start, len, name);
    if (this.verifyCrc && !this.verified.has(name)) {
      if (start === 0 && len === m.size) this.checkCrc(m, zlib.crc32(out));
      else this.checkCrc(m, this.streamCrc(m));
    }
    return out;
  }

  has(name: string): boolean {
    return this.members.has(name);
  }

  member(name: string): ZipMember {
    const m = this.members.get(name);
    if (!m) throw this.error(`has no member '${name}'`, name);
    return m;
  }

  private error(message: string, entry?: string, cause?: unknown): ClaraError {
    return new ClaraError("E_PTH", `${this.file} ${message}`, { file: this.file, entry, cause });
  }

  private readAt(position: number, length: number, entry?: string): Uint8Array {
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      let n: number;
      try {
        n = fs.readSync(this.fd, out, done, Math.min(length - done, 1 << 30), position + done);
      } catch (e) {
        throw new ClaraError("E_IO", `Could not read ${this.file}: ${(e as Error).message}`, { file: this.file, entry, cause: e });
      }
      if (n === 0) throw this.error(`ends at byte ${position + done}, inside ${entry ? `member '${entry}'` : "the zip structures"}: the file is truncated`, entry);
      done += n;
    }
    return out;
  }

  private readDirectory(): void {
    if (this.size < 22) throw this.notZip(`is ${this.size} bytes, too short for a zip archive`);
    const head = this.readAt(0, Math.min(4, this.size));
    const magic = new DataView(head.buffer).getUint32(0, true);
    if (head[0] === 0x80 && head[1] <= 5) {
      throw this.error(
        "is a bare pickle (torch.save's legacy format, _use_new_zipfile_serialization=False), which this reader does not support; " +
          "re-save it with torch >= 1.6's default format",
      );
    }
    if (magic !== SIG_LOCAL && magic !== SIG_EOCD) throw this.notZip("does not start with a zip signature");
    // The end record sits in the last 22 + 65535 (comment) bytes.
    const tailLen = Math.min(this.size, 22 + 0xffff + 20);
    const tailPos = this.size - tailLen;
    const tail = this.readAt(tailPos, tailLen);
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw this.notZip("has no end-of-central-directory record: the file is truncated or is not a zip archive");
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    const eocdPos = tailPos + eocd;
    if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_ZIP64_LOCATOR) {
      const z64pos = Number(tv.getBigUint64(eocd - 20 + 8, true));
      if (z64pos + 56 > eocdPos) throw this.error(`has a ZIP64 locator pointing at byte ${z64pos}, past its end record: the archive is corrupt`);
      const z = new DataView(this.readAt(z64pos, 56).buffer);
      if (z.getUint32(0, true) !== SIG_ZIP64_EOCD) throw this.error(`has no ZIP64 end record at byte ${z64pos}: the archive is corrupt`);
      count = Number(z.getBigUint64(32, true));
      cdSize = Number(z.getBigUint64(40, true));
      cdOffset = Number(z.getBigUint64(48, true));
    }
    if (cdOffset + cdSize > eocdPos) {
      throw this.error(`has a central directory [${cdOffset}, ${cdOffset + cdSize}) that overlaps its end record at ${eocdPos}: the file is truncated or corrupt`);
    }
    const cd = this.readAt(cdOffset, cdSize);
    const v = new DataView(cd.buffer);
    const decoder = new TextDecoder("utf-8", { fatal: false });
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || v.getUint32(p, true) !== SIG_CENTRAL) {
        throw this.error(`has a damaged central directory (entry ${i} of ${count} at byte ${cdOffset + p}): the file is truncated or corrupt`);
      }
      const flags = v.getUint16(p + 8, true);
      const method = v.getUint16(p + 10, true);
      const crc = v.getUint32(p + 16, true);
      let compressedSize = v.getUint32(p + 20, true);
      let size = v.getUint32(p + 24, true);
      const nameLen = v.getUint16(p + 28, true);
      const extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      let localHeaderOffset = v.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw this.error(`has a damaged central directory entry ${i}: the file is corrupt`);
      const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extra field: the 64-bit values of whichever fields read 0xFFFFFFFF, in order.
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; ) {
        const id = v.getUint16(e, true);
        const len = v.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          const next = () => {
            const value = Number(v.getBigUint64(q, true));
            q += 8;
            return value;
          };
          if (size === 0xffffffff) size = next();
          if (compressedSize === 0xffffffff) compressedSize = next();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
        }
        e += 4 + len;
      }
      p += 46 + nameLen + extraLen + commentLen;
      if (flags & 1) throw this.error(`member '${name}' is encrypted`, name);
      if (method !== 0 && method !== 8) throw this.error(`member '${name}' uses zip compression method ${method}; only stored (0) and deflated (8) are supported`, name);
      if (this.members.has(name)) throw this.error(`holds member '${name}' twice`, name);
      if (localHeaderOffset + 30 + compressedSize > cdOffset) {
        throw this.error(`member '${name}' would end past the start of the central directory: the file is truncated or corrupt`, name);
      }
      this.members.set(name, { name, method, crc32: crc, compressedSize, size, localHeaderOffset });
    }
  }

  private notZip(why: string): ClaraError {
    return this.error(`${why}. A PyTorch checkpoint (.pth/.pt from torch.save) is a zip archive; fetch the file again if it was cut short`);
  }

  private dataOffset(m: ZipMember): number {
    const known = this.dataStart.get(m.name);
    if (known !== undefined) return known;
    const h = new DataView(this.readAt(m.localHeaderOffset, 30, m.name).buffer);
    if (h.getUint32(0, true) !== SIG_LOCAL) {
      throw this.error(`has no local header for member '${m.name}' at byte ${m.localHeaderOffset}: the archive is corrupt`, m.name);
    }
    const start = m.localHeaderOffset + 30 + h.getUint16(26, true) + h.getUint16(28, true);
    if (start + m.compressedSize > this.size) {
      throw this.error(`member '${m.name}' needs bytes up to ${start + m.compressedSize} but the file has ${this.size}: it is truncated`, m.name);
    }
    this.dataStart.set(m.name, start);
    return start;
  }

  private streamCrc(m: ZipMember): number {
    let crc = 0;
    const start = this.dataOffset(m);
    for (let done = 0; done < m.size; done += CHUNK) {
      crc = zlib.crc32(this.readAt(start + done, Math.min(CHUNK, m.size - done), m.name), crc);
    }
    return crc;
  }

  private checkCrc(m: ZipMember, actual: number): void {
    if (actual >>> 0 !== m.crc32 >>> 0) {
      throw this.error(
        `member '${m.name}' fails its CRC-32 check (stored ${hex(m.crc32)}, computed ${hex(actual)}): the file is corrupt; fetch it again`,
        m.name,
      );
    }
    this.verified.add(m.name);
  }

  private inflated(m: ZipMember): Uint8Array {
    // deflate expands at most ~1032:1; a larger claim is a corrupt (or hostile) directory
    if (m.size > 0xffffffff || m.size > 1032 * m.compressedSize + 1024) {
      throw this.error(`member '${m.name}' claims to inflate from ${m.compressedSize} to ${m.size} bytes: the archive is corrupt`, m.name);
    }
    const packed = this.readAt(this.dataOffset(m), m.compressedSize, m.name);
    let out: Uint8Array;
    try {
      out = inflateSync(packed, { out: new Uint8Array(m.size) });
    } catch (e) {
      throw this.error(`member '${m.name}' does not inflate (${(e as Error).message}): the archive is corrupt`, m.name, e);
    }
    if (out.length !== m.size) throw this.error(`member '${m.name}' inflates to ${out.length} bytes, not ${m.size}: the archive is corrupt`, m.name);
    if (this.verifyCrc && !this.verified.has(m.name)) this.checkCrc(m, zlib.crc32(out));
    return out;
  }
}

function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

// ---------------------------------------------------------------------------------------
// The pickle VM

export interface UnpickleOptions {
  /** Names the pickle in messages, e.g. "adapters.pth (adapters/data.pkl)". */
  label?: string;
  file?: string;
  entry?: string;
  /** Turns a persistent id (a tuple) into a value; without it BINPERSID is an error. */
  persistentLoad?: (pid: unknown[], position: number) => unknown;
}

const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, POP_MARK: 0x31, BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d, NONE: 0x4e,
  BINPERSID: 0x51, REDUCE: 0x52, BINUNICODE: 0x58, EMPTY_LIST: 0x5d, APPEND: 0x61, BUILD: 0x62, GLOBAL: 0x63,
  APPENDS: 0x65, BINGET: 0x68, LONG_BINGET: 0x6a, BINPUT: 0x71, LONG_BINPUT: 0x72, SETITEM: 0x73, TUPLE: 0x74,
  SETITEMS: 0x75, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29, BINFLOAT: 0x47, BINBYTES: 0x42, SHORT_BINBYTES: 0x43,
  PROTO: 0x80, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a, LONG4: 0x8b,
  SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d, BINBYTES8: 0x8e, STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95,
  INST: 0x69, OBJ: 0x6f, NEWOBJ: 0x81, NEWOBJ_EX: 0x92, EXT1: 0x82, EXT2: 0x83, EXT4: 0x84,
} as const;

const OP_NAMES: Record<number, string> = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));

/** Python's pickle opcodes by byte, for naming the ones refused (protocol 0-5). */
const OTHER_OPS: Record<number, string> = {
  0x49: "INT", 0x4c: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x54: "BINSTRING", 0x55: "SHORT_BINSTRING", 0x56: "UNICODE",
  0x50: "PERSID", 0x64: "DICT", 0x6c: "LIST", 0x67: "GET", 0x70: "PUT", 0x32: "DUP", 0x8f: "EMPTY_SET",
  0x90: "ADDITEMS", 0x91: "FROZENSET", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER",
};

function opName(op: number): string {
  return OP_NAMES[op] ?? OTHER_OPS[op] ?? `0x${op.toString(16).padStart(2, "0")}`;
}

/** A tuple: a frozen array (lists stay mutable, so APPEND on a tuple is refused). */
function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

/**
 * Runs a pickle with the allow-listed globals only and returns the object it describes:
 * dicts become Maps, lists and tuples arrays, tensors PthTensor views.
 */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): unknown {
  return new Unpickler(bytes, options).run();
}

class Unpickler {
  private pos = 0;
  private opStart = 0;
  private op = 0;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;
  private readonly label: string;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: UnpickleOptions,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.label = options.label ?? "the pickle";
  }

  private fail(message: string, code: "E_PTH" | "E_PTH_UNSAFE" = "E_PTH", field?: string): ClaraError {
    return new ClaraError(code, `${this.label}: ${message} (opcode ${opName(this.op)} at byte ${this.opStart})`, {
      file: this.options.file,
      entry: this.options.entry,
      field,
    });
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw this.fail(`ends inside an opcode (needs ${n} more bytes at byte ${this.pos}): data.pkl is truncated`);
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++];
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  private u64(): number {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(`has a length of ${v} bytes`);
    return Number(v);
  }

  private take(n: number): Uint8Array {
    this.need(n);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  private utf8(n: number): string {
    return new TextDecoder("utf-8", { fatal: false }).decode(this.take(n));
  }

  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) throw this.fail("ends inside a GLOBAL name: data.pkl is truncated");
    const s = new TextDecoder("latin1").decode(this.bytes.subarray(this.pos, end));
    this.pos = end + 1;
    return s;
  }

  private pop(): unknown {
    if (this.stack.length === 0) throw this.fail("pops an empty stack: the pickle is malformed");
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) throw this.fail("reads an empty stack: the pickle is malformed");
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    const items = this.stack;
    const prev = this.metastack.pop();
    if (!prev) throw this.fail("has no MARK to pop to: the pickle is malformed");
    this.stack = prev;
    return items;
  }

  /** The allow-list check: refuses before anything is pushed. */
  private global(module: string, name: string): PickleGlobal {
    const qualified = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.includes(qualified)) {
      throw this.fail(
        `names the global ${qualified}, which a weights-only checkpoint never needs; refused without building or calling anything ` +
          `(allowed: ${ALLOWED_GLOBALS.join(", ")})`,
        "E_PTH_UNSAFE",
        qualified,
      );
    }
    return new PickleGlobal(module, name);
  }

  private put(index: number): void {
    this.memo.set(index, this.top());
  }

  private get(index: number): void {
    if (!this.memo.has(index)) throw this.fail(`reads memo slot ${index}, which was never written: the pickle is malformed`);
    this.stack.push(this.memo.get(index));
  }

  private signedLong(b: Uint8Array): number | bigint {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  run(): unknown {
    while (true) {
      this.opStart = this.pos;
      if (this.pos >= this.bytes.length) {
        this.op = 0;
        throw this.fail("ends without a STOP opcode: data.pkl is truncated");
      }
      const op = (this.op = this.bytes[this.pos++]);
      switch (op) {
        case OP.PROTO: {
          const v = this.u8();
          if (v < 2 || v > 5) throw this.fail(`declares pickle protocol ${v}; torch.save writes protocol 2`);
          break;
        }
        case OP.FRAME:
          this.u64();
          break;
        case OP.STOP: {
          const value = this.pop();
          if (this.stack.length !== 0 || this.metastack.length !== 0) throw this.fail("stops with values left on the stack: the pickle is malformed");
          return value;
        }
        case OP.MARK:
          this.metastack.push(this.stack);
          this.stack = [];
          break;
        case OP.POP:
          this.pop();
          break;
        case OP.POP_MARK:
          this.popMark();
          break;
        case OP.NONE:
          this.stack.push(null);
          break;
        case OP.NEWTRUE:
          this.stack.push(true);
          break;
        case OP.NEWFALSE:
          this.stack.push(false);
          break;
        case OP.BININT:
          this.need(4);
          this.stack.push(this.view.getInt32(this.pos, true));
          this.pos += 4;
          break;
        case OP.BININT1:
          this.stack.push(this.u8());
          break;
        case OP.BININT2:
          this.stack.push(this.u16());
          break;
        case OP.LONG1:
          this.stack.push(this.signedLong(this.take(this.u8())));
          break;
        case OP.LONG4: {
          const n = this.u32();
          if (n > 64) throw this.fail(`holds a ${n}-byte integer`);
          this.stack.push(this.signedLong(this.take(n)));
          break;
        }
        case OP.BINFLOAT:
          this.need(8);
          this.stack.push(this.view.getFloat64(this.pos, false));
          this.pos += 8;
          break;
        case OP.SHORT_BINUNICODE:
          this.stack.push(this.utf8(this.u8()));
          break;
        case OP.BINUNICODE:
          this.stack.push(this.utf8(this.u32()));
          break;
        case OP.BINUNICODE8:
          this.stack.push(this.utf8(this.u64()));
          break;
        case OP.SHORT_BINBYTES:
          this.stack.push(this.take(this.u8()).slice());
          break;
        case OP.BINBYTES:
          this.stack.push(this.take(this.u32()).slice());
          break;
        case OP.BINBYTES8:
          this.stack.push(this.take(this.u64()).slice());
          break;
        case OP.EMPTY_DICT:
          this.stack.push(new Map());
          break;
        case OP.EMPTY_LIST:
          this.stack.push([]);
          break;
        case OP.EMPTY_TUPLE:
          this.stack.push(tuple([]));
          break;
        case OP.TUPLE: {
          const items = this.popMark(); // before reading this.stack, which popMark replaces
          this.stack.push(tuple(items));
          break;
        }
        case OP.TUPLE1:
          this.stack.push(tuple([this.pop()]));
          break;
        case OP.TUPLE2: {
          const b = this.pop();
          const a = this.pop();
          this.stack.push(tuple([a, b]));
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop();
          const b = this.pop();
          const a = this.pop();
          this.stack.push(tuple([a, b, c]));
          break;
        }
        case OP.APPEND: {
          const v = this.pop();
          this.list(this.top()).push(v);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark();
          this.list(this.top()).push(...items);
          break;
        }
        case OP.SETITEM: {
          const v = this.pop();
          const k = this.pop();
          this.dict(this.top()).set(this.key(k), v);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark();
          if (items.length % 2 !== 0) throw this.fail("has an odd number of SETITEMS values: the pickle is malformed");
          const d = this.dict(this.top());
          for (let i = 0; i < items.length; i += 2) d.set(this.key(items[i]), items[i + 1]);
          break;
        }
        case OP.BINPUT:
          this.put(this.u8());
          break;
        case OP.LONG_BINPUT:
          this.put(this.u32());
          break;
        case OP.MEMOIZE:
          this.put(this.memo.size);
          break;
        case OP.BINGET:
          this.get(this.u8());
          break;
        case OP.LONG_BINGET:
          this.get(this.u32());
          break;
        case OP.GLOBAL: {
          const module = this.line();
          const name = this.line();
          this.stack.push(this.global(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== "string" || typeof name !== "string") throw this.fail("has a STACK_GLOBAL whose module or name is not a string");
          this.stack.push(this.global(module, name));
          break;
        }
        case OP.INST: {
          // INST names a class inline; check it like GLOBAL, then refuse the opcode itself.
          this.global(this.line(), this.line());
          throw this.fail("uses INST, which a tensor state dict never needs");
        }
        case OP.EXT1:
        case OP.EXT2:
        case OP.EXT4: {
          const code = op === OP.EXT1 ? this.u8() : op === OP.EXT2 ? this.u16() : this.u32();
          throw this.fail(`names a global through copyreg extension code ${code}; refused without resolving it`, "E_PTH_UNSAFE", `ext:${code}`);
        }
        case OP.REDUCE: {
          const args = this.pop();
          const fn = this.pop();
          this.stack.push(this.call(fn, args));
          break;
        }
        case OP.BUILD: {
          const state = this.pop();
          const target = this.top();
          // Only OrderedDict state (e.g. state_dict()'s _metadata attribute) is expected; it is dropped.
          if (!(target instanceof Map) || !(state === null || state instanceof Map)) {
            throw this.fail(`sets the state of ${describeValue(target)}; only an OrderedDict's attribute dict is accepted`);
          }
          break;
        }
        case OP.BINPERSID: {
          const pid = this.pop();
          if (!this.options.persistentLoad) throw this.fail("holds a persistent id outside a checkpoint archive");
          if (!Array.isArray(pid)) throw this.fail(`holds a persistent id that is ${describeValue(pid)}, not a tuple`);
          this.stack.push(this.options.persistentLoad(pid, this.opStart));
          break;
        }
        default:
          throw this.fail(`uses opcode ${opName(op)}, which torch.save does not write for a tensor state dict`);
      }
    }
  }

  private list(v: unknown): unknown[] {
    if (!Array.isArray(v) || Object.isFrozen(v)) throw this.fail(`appends to ${describeValue(v)}, not a list`);
    return v;
  }

  private dict(v: unknown): Map<unknown, unknown> {
    if (!(v instanceof Map)) throw this.fail(`sets an item of ${describeValue(v)}, not a dict`);
    return v;
  }

  private key(k: unknown): unknown {
    if (typeof k === "string" || typeof k === "number" || typeof k === "bigint" || typeof k === "boolean" || k === null) return k;
    throw this.fail(`uses ${describeValue(k)} as a dict key; only strings and numbers are accepted`);
  }

  private call(fn: unknown, args: unknown): unknown {
    if (!(fn instanceof PickleGlobal)) throw this.fail(`calls ${describeValue(fn)}, which is not an allowed callable`);
    if (!Array.isArray(args)) throw this.fail(`calls ${fn.qualifiedName} with ${describeValue(args)} instead of an argument tuple`);
    switch (fn.qualifiedName) {
      case "collections.OrderedDict": {
        const out = new Map<unknown, unknown>();
        if (args.length === 0) return out;
        if (args.length === 1 && Array.isArray(args[0])) {
          for (const pair of args[0]) {
            if (!Array.isArray(pair) || pair.length !== 2) throw this.fail("builds an OrderedDict from something other than (key, value) pairs");
            out.set(this.key(pair[0]), pair[1]);
          }
          return out;
        }
        throw this.fail("builds an OrderedDict from unsupported arguments");
      }
      case "torch._utils._rebuild_tensor_v2":
        return this.rebuildTensor(args);
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state": {
        const want = fn.name === "_rebuild_parameter" ? 3 : 4;
        if (args.length !== want || !(args[0] instanceof PthTensor)) throw this.fail(`calls ${fn.qualifiedName} with unexpected arguments`);
        const t = args[0];
        return new PthTensor(t.storage, t.offset, t.shape, t.stride, args[1] === true);
      }
      default:
        throw this.fail(`calls ${fn.qualifiedName}, which is a type name here, not a callable`);
    }
  }

  private rebuildTensor(args: unknown[]): PthTensor {
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (args.length !== 6 && args.length !== 7) throw this.fail(`calls _rebuild_tensor_v2 with ${args.length} arguments, not 6 or 7`);
    const [storage, offset, size, stride, requiresGrad] = args;
    if (!(storage instanceof PthStorage)) throw this.fail(`rebuilds a tensor from ${describeValue(storage)}, not a storage`);
    const ints = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw this.fail(`rebuilds a tensor at storage offset ${String(offset)}`);
    if (!ints(size) || !ints(stride) || (size as number[]).length !== (stride as number[]).length) {
      throw this.fail(`rebuilds a tensor with sizes ${describeValue(size)} and strides ${describeValue(stride)}`);
    }
    const shape = [...(size as number[])];
    const strides = [...(stride as number[])];
    const numel = shape.reduce((a, b) => a * b, 1);
    if (numel > 0) {
      let last = offset as number;
      for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * strides[d];
      if (last >= storage.numel) {
        throw this.fail(
          `rebuilds a tensor of shape [${shape.join(", ")}] (strides [${strides.join(", ")}], offset ${offset}) that reaches element ${last} ` +
            `of storage '${storage.record}', which holds ${storage.numel}`,
        );
      }
    }
    return new PthTensor(storage, offset as number, shape, strides, requiresGrad === true);
  }
}

function describeValue(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PickleGlobal) return v.qualifiedName;
  if (v instanceof PthTensor) return "a tensor";
  if (v instanceof PthStorage) return "a storage";
  if (v instanceof Map) return "a dict";
  if (Array.isArray(v)) return Object.isFrozen(v) ? `a ${v.length}-tuple` : `a list of ${v.length}`;
  if (v instanceof Uint8Array) return "bytes";
  return `${typeof v} ${String(v)}`;
}

// ---------------------------------------------------------------------------------------
// The archive

export interface PthOpenOptions {
  /** Check each storage's CRC-32 the first time it is read (default true). */
  verifyCrc?: boolean;
}

/** An opened torch.save checkpoint: its unpickled object tree with lazy tensors. Close it. */
export class PthArchive {
  readonly file: string;
  /** The records' folder inside the zip ("archive" for buffers, else the saved file's stem). */
  readonly prefix: string;
  readonly byteorder: string;
  readonly version: string | undefined;
  readonly root: unknown;
  private readonly zip: ZipReader;
  private readonly storages = new Map<string, PthStorage>();

  private constructor(file: string, options: PthOpenOptions) {
    this.file = file;
    if (!fs.existsSync(file)) throw new ClaraError("E_PTH", `${file} does not exist`, { file });
    this.zip = new ZipReader(file, options.verifyCrc ?? true);
    try {
      const pkl = [...this.zip.members.keys()].filter((n) => n === "data.pkl" || /^[^/]+\/data\.pkl$/.test(n));
      if (pkl.length === 0) {
        throw new ClaraError(
          "E_PTH",
          `${file} has no data.pkl (members: ${[...this.zip.members.keys()].slice(0, 8).join(", ") || "none"}): it is a zip archive but not a torch.save checkpoint`,
          { file, entry: "data.pkl" },
        );
      }
      if (pkl.length > 1) throw new ClaraError("E_PTH", `${file} holds several checkpoints (${pkl.join(", ")})`, { file });
      this.prefix = pkl[0] === "data.pkl" ? "" : pkl[0].slice(0, -"/data.pkl".length);
      const text = (name: string) => (this.zip.has(this.record(name)) ? new TextDecoder().decode(this.zip.read(this.record(name))).trim() : undefined);
      this.byteorder = text("byteorder") ?? "little"; // torch before 2.1 wrote none (and only little-endian)
      if (this.byteorder !== "little") {
        throw new ClaraError("E_PTH", `${file} was saved with byteorder '${this.byteorder}'; only little-endian checkpoints are supported`, {
          file,
          entry: this.record("byteorder"),
        });
      }
      this.version = text("version") ?? text(".data/version");
      const entry = this.record("data.pkl");
      this.root = unpickle(this.zip.read(entry), {
        label: `${file} (${entry})`,
        file,
        entry,
        persistentLoad: (pid) => this.persistentLoad(pid),
      });
    } catch (e) {
      this.zip.close();
      throw e;
    }
  }

  static open(file: string, options: PthOpenOptions = {}): PthArchive {
    return new PthArchive(file, options);
  }

  close(): void {
    this.zip.close();
  }

  /** The archive member holding `name` ("data/0", "byteorder", …). */
  record(name: string): string {
    return this.prefix === "" ? name : `${this.prefix}/${name}`;
  }

  /** Bytes [start, start + length) of a storage's record. */
  readStorage(storage: PthStorage, start: number, length: number): Uint8Array {
    return this.zip.read(storage.record, start, length);
  }

  /** The root as a {name: tensor} dict (what state_dict() and a tensor-valued dict save). */
  stateDict(): Map<string, PthTensor> {
    return asStateDict(this.root, this.file);
  }

  private persistentLoad(pid: unknown[]): PthStorage {
    const [kind, type, key, location, numel] = pid;
    const entry = this.record("data.pkl");
    if (pid.length !== 5 || kind !== "storage") {
      throw new ClaraError("E_PTH", `${this.file}: persistent id ${describeValue(pid)} is not ('storage', type, key, location, numel)`, { file: this.file, entry });
    }
    if (!(type instanceof PickleGlobal) || STORAGE_TYPES[type.qualifiedName] === undefined) {
      throw new ClaraError("E_PTH", `${this.file}: storage type ${describeValue(type)} is not one of ${Object.keys(STORAGE_TYPES).join(", ")}`, {
        file: this.file,
        entry,
      });
    }
    if (typeof key !== "string" || typeof location !== "string" || !Number.isSafeInteger(numel) || (numel as number) < 0) {
      throw new ClaraError("E_PTH", `${this.file}: malformed storage id (key ${describeValue(key)}, numel ${describeValue(numel)})`, { file: this.file, entry });
    }
    const dtype = STORAGE_TYPES[type.qualifiedName];
    const known = this.storages.get(key);
    if (known) {
      if (known.dtype !== dtype) {
        throw new ClaraError("E_PTH", `${this.file}: storage '${key}' is read both as ${known.dtype} and as ${dtype}`, { file: this.file, entry: known.record });
      }
      return known;
    }
    const record = this.record(`data/${key}`);
    if (!this.zip.has(record)) {
      throw new ClaraError("E_PTH", `${this.file} lacks member '${record}', the storage of a tensor in data.pkl: the archive is incomplete`, {
        file: this.file,
        entry: record,
      });
    }
    const bytes = (numel as number) * ITEM_BYTES[dtype];
    const size = this.zip.member(record).size;
    if (size < bytes) {
      throw new ClaraError(
        "E_PTH",
        `${this.file}: member '${record}' holds ${size} bytes but data.pkl declares ${numel} ${dtype} elements (${bytes} bytes)`,
        { file: this.file, entry: record },
      );
    }
    const s = new PthStorage(this, key, dtype, numel as number, location, record);
    this.storages.set(key, s);
    return s;
  }
}

/** Checks that `value` is a dict of string → tensor and returns it. */
export function asStateDict(value: unknown, label: string): Map<string, PthTensor> {
  if (!(value instanceof Map)) throw new ClaraError("E_PTH", `${label} does not hold a dict of tensors (it holds ${describeValue(value)})`, { file: label });
  for (const [k, v] of value) {
    if (typeof k !== "string" || !(v instanceof PthTensor)) {
      throw new ClaraError("E_PTH", `${label}: entry ${String(k)} is ${describeValue(v)}, not a tensor`, { file: label, field: String(k) });
    }
  }
  return value as Map<string, PthTensor>;
}

/** Every tensor of a flat {name: tensor} checkpoint, loaded. */
export function readPthStateDict(file: string, options: PthOpenOptions = {}): Map<string, Tensor> {
  const archive = PthArchive.open(file, options);
  try {
    const out = new Map<string, Tensor>();
    for (const [k, t] of archive.stateDict()) out.set(k, t.load());
    return out;
  } finally {
    archive.close();
  }
}
