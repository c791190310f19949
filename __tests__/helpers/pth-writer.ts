// Writes checkpoints exactly as torch.save does (torch >= 2.1, the zip format): a zip whose
// members sit under one folder — data.pkl (pickle protocol 2, storages as persistent ids
// ('storage', torch.<T>Storage, key, location, numel)), .format_version, .storage_alignment,
// byteorder, data/<key> (raw little-endian storages, 64-byte aligned through a local extra
// field, as PyTorchStreamWriter pads them), version, .data/serialization_id — and ZIP64 end
// records, as miniz writes them under MZ_ZIP_FLAG_WRITE_ZIP64. The pickle opcodes follow
// CPython's Pickler for the same objects (memoization included). Test-only: nothing here is
// shipped; the reader under test is lib/io/pth.ts.

import * as fs from "node:fs";
import * as zlib from "node:zlib";

export type StorageDType = "float32" | "float16" | "bfloat16" | "int64";

const STORAGE_CLASS: Record<StorageDType, string> = {
  float32: "FloatStorage",
  float16: "HalfStorage",
  bfloat16: "BFloat16Storage",
  int64: "LongStorage",
};
const ITEM: Record<StorageDType, number> = { float32: 4, float16: 2, bfloat16: 2, int64: 8 };

/** A storage: raw elements (Float32Array, Uint16Array bit patterns, BigInt64Array). */
export class Storage {
  constructor(
    readonly dtype: StorageDType,
    readonly data: Float32Array | Uint16Array | BigInt64Array,
    readonly location = "cpu",
  ) {}
  get numel(): number {
    return this.data.length;
  }
  get bytes(): Uint8Array {
    return new Uint8Array(this.data.buffer, this.data.byteOffset, this.data.byteLength);
  }
}

/** A tensor as torch pickles it: a view of a storage. */
export class TensorView {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    readonly options: { requiresGrad?: boolean; parameter?: boolean } = {},
  ) {}
}

/** collections.OrderedDict, optionally with an attribute dict (state_dict()'s _metadata). */
export class OrderedDict {
  constructor(
    readonly entries: Map<string, PyValue>,
    readonly state?: Map<string, PyValue>,
  ) {}
}

/** A Python tuple (JS arrays are written as lists). */
export class Tuple {
  constructor(readonly items: PyValue[]) {}
}

export type PyValue = null | boolean | number | bigint | string | PyValue[] | Tuple | Map<string, PyValue> | OrderedDict | TensorView;

/** A contiguous row-major tensor over a storage of its own. */
export function contiguous(dtype: StorageDType, shape: number[], data: Float32Array | Uint16Array | BigInt64Array, options: TensorView["options"] = {}): TensorView {
  return new TensorView(new Storage(dtype, data), 0, shape, rowMajorStrides(shape), options);
}

export function rowMajorStrides(shape: number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    out[d] = s;
    s *= shape[d];
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Pickle assembler (opcode level, for hand-written hostile pickles too)

export class PickleBuilder {
  private readonly chunks: number[] = [];

  /** The byte offset the next opcode will have. */
  get position(): number {
    return this.chunks.length;
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }

  raw(...b: number[]): this {
    this.chunks.push(...b);
    return this;
  }

  private u32(n: number): number[] {
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
  }

  proto(v = 2): this {
    return this.raw(0x80, v);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  mark(): this {
    return this.raw(0x28);
  }
  none(): this {
    return this.raw(0x4e);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  emptyList(): this {
    return this.raw(0x5d);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  tuple(n?: 1 | 2 | 3): this {
    return this.raw(n === undefined ? 0x74 : 0x84 + n);
  }
  setitem(): this {
    return this.raw(0x73);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  append(): this {
    return this.raw(0x61);
  }
  appends(): this {
    return this.raw(0x65);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  build(): this {
    return this.raw(0x62);
  }
  binpersid(): this {
    return this.raw(0x51);
  }
  binput(i: number): this {
    return i < 256 ? this.raw(0x71, i) : this.raw(0x72, ...this.u32(i));
  }
  binget(i: number): this {
    return i < 256 ? this.raw(0x68, i) : this.raw(0x6a, ...this.u32(i));
  }
  memoize(): this {
    return this.raw(0x94);
  }

  /** CPython's save_long for protocol 2. */
  int(v: number | bigint): this {
    if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 256) return this.raw(0x4b, v);
    if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 65536) return this.raw(0x4d, v & 0xff, v >>> 8);
    if (typeof v === "number" && Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31) return this.raw(0x4a, ...this.u32(v >>> 0));
    // LONG1: little-endian two's complement, minimal length.
    let x = BigInt(v);
    const out: number[] = [];
    if (x !== 0n) {
      while (true) {
        out.push(Number(x & 0xffn));
        x >>= 8n;
        if ((x === 0n && (out[out.length - 1] & 0x80) === 0) || (x === -1n && (out[out.length - 1] & 0x80) !== 0)) break;
      }
    }
    return this.raw(0x8a, out.length, ...out);
  }

  float(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, false);
    return this.raw(0x47, ...b);
  }

  unicode(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.raw(0x58, ...this.u32(b.length), ...b);
  }

  shortUnicode(s: string): this {
    const b = new TextEncoder().encode(s);
    return this.raw(0x8c, b.length, ...b);
  }

  global(module: string, name: string): this {
    return this.raw(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }

  stackGlobal(): this {
    return this.raw(0x93);
  }
}

/** CPython's Pickler (protocol 2) over PyValue, with torch's persistent ids for storages. */
class TorchPickler {
  readonly b = new PickleBuilder();
  private readonly memo = new Map<unknown, number>();
  readonly storageKeys = new Map<Storage, string>();

  dump(v: PyValue): Uint8Array {
    this.b.proto(2);
    this.save(v);
    this.b.stop();
    return this.b.bytes();
  }

  private memoize(obj: unknown): void {
    const i = this.memo.size;
    this.memo.set(obj, i);
    this.b.binput(i);
  }

  private getMemo(obj: unknown): boolean {
    const i = this.memo.get(obj);
    if (i === undefined) return false;
    this.b.binget(i);
    return true;
  }

  private saveGlobal(module: string, name: string): void {
    const key = `global:${module}.${name}`;
    if (this.getMemo(key)) return;
    this.b.global(module, name);
    this.memoize(key);
  }

  private saveTuple(items: PyValue[], identity: object): void {
    if (items.length === 0) {
      this.b.emptyTuple();
      return;
    }
    if (items.length <= 3) {
      for (const x of items) this.save(x);
      this.b.tuple(items.length as 1 | 2 | 3);
    } else {
      this.b.mark();
      for (const x of items) this.save(x);
      this.b.tuple();
    }
    this.memoize(identity);
  }

  private setItems(entries: [string, PyValue][]): void {
    for (let i = 0; i < entries.length; i += 1000) {
      const batch = entries.slice(i, i + 1000);
      if (batch.length === 1) {
        this.save(batch[0][0]);
        this.save(batch[0][1]);
        this.b.setitem();
      } else {
        this.b.mark();
        for (const [k, v] of batch) {
          this.save(k);
          this.save(v);
        }
        this.b.setitems();
      }
    }
  }

  save(v: PyValue): void {
    if (v === null) return void this.b.none();
    if (typeof v === "boolean") return void this.b.bool(v);
    if (typeof v === "number" || typeof v === "bigint") {
      if (typeof v === "number" && !Number.isInteger(v)) return void this.b.float(v);
      return void this.b.int(v);
    }
    if (typeof v === "string") {
      if (this.getMemo(`str:${v}`)) return;
      this.b.unicode(v);
      return this.memoize(`str:${v}`);
    }
    if (this.getMemo(v)) return;
    if (v instanceof Tuple) return this.saveTuple(v.items, v);
    if (Array.isArray(v)) {
      this.b.emptyList();
      this.memoize(v);
      if (v.length === 1) {
        this.save(v[0]);
        this.b.append();
      } else if (v.length > 1) {
        this.b.mark();
        for (const x of v) this.save(x);
        this.b.appends();
      }
      return;
    }
    if (v instanceof Map) {
      this.b.emptyDict();
      this.memoize(v);
      this.setItems([...v]);
      return;
    }
    if (v instanceof OrderedDict) {
      this.saveGlobal("collections", "OrderedDict");
      this.b.emptyTuple();
      this.b.reduce();
      this.memoize(v);
      this.setItems([...v.entries]);
      if (v.state) {
        this.save(v.state);
        this.b.build();
      }
      return;
    }
    if (v instanceof TensorView) return this.saveTensor(v);
    throw new Error(`cannot pickle ${String(v)}`);
  }

  private saveTensor(t: TensorView): void {
    if (t.options.parameter) {
      // nn.Parameter.__reduce_ex__: (_rebuild_parameter, (data, requires_grad, OrderedDict()))
      this.saveGlobal("torch._utils", "_rebuild_parameter");
      this.saveTensorReduce(t, false);
      this.memoize({}); // the .data tensor
      this.b.bool(t.options.requiresGrad ?? true);
      this.save(new OrderedDict(new Map()));
      this.b.tuple(3);
      this.memoize({});
      this.b.reduce();
      this.memoize(t);
      return;
    }
    this.saveTensorReduce(t, t.options.requiresGrad ?? false);
    this.memoize(t);
  }

  /** Tensor.__reduce_ex__: (_rebuild_tensor_v2, (storage, offset, size, stride, requires_grad, OrderedDict())) */
  private saveTensorReduce(t: TensorView, requiresGrad: boolean): void {
    this.saveGlobal("torch._utils", "_rebuild_tensor_v2");
    this.b.mark(); // a 6-tuple: MARK ... TUPLE
    // persistent id ('storage', torch.<T>Storage, key, location, numel): saved, then BINPERSID
    let key = this.storageKeys.get(t.storage);
    if (key === undefined) this.storageKeys.set(t.storage, (key = String(this.storageKeys.size)));
    this.b.mark();
    this.save("storage");
    this.saveGlobal("torch", STORAGE_CLASS[t.storage.dtype]);
    this.save(key);
    this.save(t.storage.location);
    this.b.int(t.storage.numel);
    this.b.tuple();
    this.memoize({});
    this.b.binpersid();
    this.b.int(t.offset);
    this.saveTuple(t.shape, {});
    this.saveTuple(t.stride, {});
    this.b.bool(requiresGrad);
    this.save(new OrderedDict(new Map()));
    this.b.tuple();
    this.memoize({});
    this.b.reduce();
  }
}

/** The pickle bytes torch.save would write for `value`, and its storages by key. */
export function pickleCheckpoint(value: PyValue): { pickle: Uint8Array; storages: Map<string, Storage> } {
  const p = new TorchPickler();
  const pickle = p.dump(value);
  return { pickle, storages: new Map([...p.storageKeys].map(([s, k]) => [k, s])) };
}

// ---------------------------------------------------------------------------------------
// Zip (PyTorchStreamWriter through miniz)

export interface ZipRecord {
  name: string;
  data: Uint8Array;
}

/** Stored members, data 64-byte aligned via an extra field ("FB" + padding), ZIP64 end records. */
export function zipRecords(records: ZipRecord[], options: { zip64?: boolean; align?: number } = {}): Uint8Array {
  const align = options.align ?? 64;
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const le = (n: number, bytes: number) => {
    const out = new Uint8Array(bytes);
    const v = new DataView(out.buffer);
    if (bytes === 2) v.setUint16(0, n, true);
    else if (bytes === 4) v.setUint32(0, n >>> 0, true);
    else v.setBigUint64(0, BigInt(n), true);
    return out;
  };
  const cat = (...xs: Uint8Array[]) => {
    const out = new Uint8Array(xs.reduce((a, x) => a + x.length, 0));
    let p = 0;
    for (const x of xs) out.set(x, p), (p += x.length);
    return out;
  };
  for (const r of records) {
    const name = new TextEncoder().encode(r.name);
    const crc = zlib.crc32(r.data) >>> 0;
    const headerEnd = offset + 30 + name.length + 4;
    const pad = (align - (headerEnd % align)) % align;
    const extra = cat(le(0x4246, 2), le(pad, 2), new Uint8Array(pad).fill(0x5a)); // 'FB' + 'Z' padding
    const local = cat(
      le(0x04034b50, 4), le(20, 2), le(0x0800, 2), le(0, 2), le(0, 2), le(0x21, 2),
      le(crc, 4), le(r.data.length, 4), le(r.data.length, 4), le(name.length, 2), le(extra.length, 2), name, extra,
    );
    central.push(
      cat(
        le(0x02014b50, 4), le(0x031e, 2), le(20, 2), le(0x0800, 2), le(0, 2), le(0, 2), le(0x21, 2),
        le(crc, 4), le(r.data.length, 4), le(r.data.length, 4), le(name.length, 2), le(0, 2), le(0, 2),
        le(0, 2), le(0, 2), le(0, 4), le(offset, 4), name,
      ),
    );
    parts.push(local, r.data);
    offset += local.length + r.data.length;
  }
  const cd = cat(...central);
  const cdOffset = offset;
  const tail: Uint8Array[] = [];
  if (options.zip64 ?? true) {
    const z64 = offset + cd.length;
    tail.push(
      cat(le(0x06064b50, 4), le(44, 8), le(0x031e, 2), le(45, 2), le(0, 4), le(0, 4), le(records.length, 8), le(records.length, 8), le(cd.length, 8), le(cdOffset, 8)),
      cat(le(0x07064b50, 4), le(0, 4), le(z64, 8), le(1, 4)),
    );
  }
  tail.push(cat(le(0x06054b50, 4), le(0, 2), le(0, 2), le(records.length, 2), le(records.length, 2), le(cd.length, 4), le(cdOffset, 4), le(0, 2)));
  return cat(...parts, cd, ...tail);
}

export interface TorchSaveOptions {
  /** The folder of every member: torch uses the file's stem ("archive" for buffers). */
  prefix?: string;
  /** Leave out the byteorder record (torch < 2.1). */
  byteorder?: string | null;
  /** Members to drop (to make broken archives). */
  omit?: string[];
  zip64?: boolean;
}

/** The bytes of torch.save(value, f). */
export function torchSaveBytes(value: PyValue, options: TorchSaveOptions = {}): Uint8Array {
  const prefix = options.prefix ?? "archive";
  const { pickle, storages } = pickleCheckpoint(value);
  const text = (s: string) => new TextEncoder().encode(s);
  const records: ZipRecord[] = [
    { name: "data.pkl", data: pickle },
    { name: ".format_version", data: text("1") },
    { name: ".storage_alignment", data: text("64") },
  ];
  const byteorder = options.byteorder === undefined ? "little" : options.byteorder;
  if (byteorder !== null) records.push({ name: "byteorder", data: text(byteorder) });
  for (const [key, s] of storages) records.push({ name: `data/${key}`, data: s.bytes });
  records.push({ name: "version", data: text("3\n") }, { name: ".data/serialization_id", data: text("1234567890123456789012345678901234567890") });
  const kept = records.filter((r) => !(options.omit ?? []).includes(r.name));
  return zipRecords(kept.map((r) => ({ name: `${prefix}/${r.name}`, data: r.data })), { zip64: options.zip64 });
}

/** torch.save(value, file), with the file's stem as the records' folder (as PyTorchStreamWriter does). */
export function torchSave(file: string, value: PyValue, options: TorchSaveOptions = {}): void {
  const stem = file.replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "");
  fs.writeFileSync(file, torchSaveBytes(value, { prefix: stem, ...options }));
}

/** Storage bytes of one record in an archive made by torchSaveBytes (for corrupting tests). */
export function findMember(zip: Uint8Array, name: string): { headerOffset: number; dataOffset: number; size: number } {
  const v = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const want = new TextEncoder().encode(name);
  for (let p = 0; p + 30 <= zip.length; ) {
    if (v.getUint32(p, true) !== 0x04034b50) break;
    const size = v.getUint32(p + 18, true);
    const nameLen = v.getUint16(p + 26, true);
    const extraLen = v.getUint16(p + 28, true);
    const nm = zip.subarray(p + 30, p + 30 + nameLen);
    const data = p + 30 + nameLen + extraLen;
    if (nm.length === want.length && nm.every((b, i) => b === want[i])) return { headerOffset: p, dataOffset: data, size };
    p = data + size;
  }
  throw new Error(`no member ${name}`);
}

export const ITEM_BYTES = ITEM;
