// PyTorch checkpoints (torch.save's zip format) read without running any of their code: the
// promise of torch.load(weights_only=True) and of safetensors. A .pth is a zip holding
// <prefix>/data.pkl (a pickle, protocol 2), <prefix>/data/<key> (one raw storage per key),
// <prefix>/byteorder and <prefix>/version, read with io/zip.ts. The pickle VM (io/pickle.ts)
// is allowed only the handful of globals a tensor state dict needs; any other is refused at the
// opcode that names it, before any object is built from it. Storages are read lazily from the file (a 1 GB
// embedding table is never loaded to take a few rows of it), their CRCs are checked, and
// tensor views (storage offset, sizes, strides) are materialised as contiguous row-major data.

import * as fs from "node:fs";
import { ClaraError } from "../errors";
import { tensor, type Tensor } from "../tensor";
import { describeValue, PickleGlobal, unpickle as runPickle, type UnpickleOptions } from "./pickle";
import { ZipReader } from "./zip";

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
// torch's globals, as the pickle VM calls them

/** REDUCE of torch's rebuild functions: lazy tensor views of the archive's storages. */
function reduceTorch(fn: PickleGlobal, args: unknown[], fail: (message: string) => ClaraError): unknown {
  switch (fn.qualifiedName) {
    case "torch._utils._rebuild_tensor_v2":
      return rebuildTensor(args, fail);
    case "torch._utils._rebuild_parameter":
    case "torch._utils._rebuild_parameter_with_state": {
      const want = fn.name === "_rebuild_parameter" ? 3 : 4;
      if (args.length !== want || !(args[0] instanceof PthTensor)) throw fail(`calls ${fn.qualifiedName} with unexpected arguments`);
      const t = args[0];
      return new PthTensor(t.storage, t.offset, t.shape, t.stride, args[1] === true);
    }
    default:
      return undefined;
  }
}

function rebuildTensor(args: unknown[], fail: (message: string) => ClaraError): PthTensor {
  // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
  if (args.length !== 6 && args.length !== 7) throw fail(`calls _rebuild_tensor_v2 with ${args.length} arguments, not 6 or 7`);
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof PthStorage)) throw fail(`rebuilds a tensor from ${describeValue(storage, describeTorchValue)}, not a storage`);
  const ints = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
  if (!Number.isSafeInteger(offset) || (offset as number) < 0) throw fail(`rebuilds a tensor at storage offset ${String(offset)}`);
  if (!ints(size) || !ints(stride) || (size as number[]).length !== (stride as number[]).length) {
    throw fail(`rebuilds a tensor with sizes ${describeValue(size, describeTorchValue)} and strides ${describeValue(stride, describeTorchValue)}`);
  }
  const shape = [...(size as number[])];
  const strides = [...(stride as number[])];
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel > 0) {
    let last = offset as number;
    for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * strides[d];
    if (last >= storage.numel) {
      throw fail(
        `rebuilds a tensor of shape [${shape.join(", ")}] (strides [${strides.join(", ")}], offset ${offset}) that reaches element ${last} ` +
          `of storage '${storage.record}', which holds ${storage.numel}`,
      );
    }
  }
  return new PthTensor(storage, offset as number, shape, strides, requiresGrad === true);
}

function describeTorchValue(v: unknown): string | undefined {
  if (v instanceof PthTensor) return "a tensor";
  if (v instanceof PthStorage) return "a storage";
  return undefined;
}

/**
 * Runs a checkpoint's pickle with the allow-listed globals only and returns the object it
 * describes: dicts become Maps, lists and tuples arrays, tensors PthTensor views.
 */
export function unpickle(bytes: Uint8Array, options: Omit<UnpickleOptions, "allowedGlobals" | "reduce" | "describe"> = {}): unknown {
  return runPickle(bytes, { ...options, allowedGlobals: ALLOWED_GLOBALS, reduce: reduceTorch, describe: describeTorchValue });
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
    this.zip = new ZipReader(file, {
      verifyCrc: options.verifyCrc ?? true,
      code: "E_PTH",
      notZipHint: "A PyTorch checkpoint (.pth/.pt from torch.save) is a zip archive; fetch the file again if it was cut short",
    });
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
