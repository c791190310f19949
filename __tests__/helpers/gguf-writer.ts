// A minimal GGUF writer for tests, written from the format description rather than from
// lib/io/gguf.ts, so that the reader is checked against an independent encoder.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GGUF_TYPE } from "../../lib/io/gguf";

export type Typed =
  | { type: Exclude<keyof typeof GGUF_TYPE, "ARRAY">; value: number | bigint | boolean | string }
  | { type: "ARRAY"; itemType: keyof typeof GGUF_TYPE; items: unknown[] };

export interface TensorSpec {
  name: string;
  ne: number[]; // GGUF order, innermost first
  type: number;
  offset: number;
}

export function encodeGguf(
  kvs: [string, Typed][],
  tensors: TensorSpec[] = [],
  opts: { version?: number; alignment?: number; data?: Uint8Array } = {},
): Buffer {
  const out: Buffer[] = [];
  const put = (size: number, write: (b: Buffer) => void) => {
    const b = Buffer.alloc(size);
    write(b);
    out.push(b);
  };
  const u32 = (v: number) => put(4, (b) => b.writeUInt32LE(v));
  const u64 = (v: number | bigint) => put(8, (b) => b.writeBigUInt64LE(BigInt(v)));
  const str = (s: string) => {
    const bytes = Buffer.from(s, "utf8");
    u64(bytes.length);
    out.push(bytes);
  };
  const scalar = (type: keyof typeof GGUF_TYPE, v: unknown): void => {
    switch (type) {
      case "UINT8": return put(1, (b) => b.writeUInt8(v as number));
      case "INT8": return put(1, (b) => b.writeInt8(v as number));
      case "UINT16": return put(2, (b) => b.writeUInt16LE(v as number));
      case "INT16": return put(2, (b) => b.writeInt16LE(v as number));
      case "UINT32": return u32(v as number);
      case "INT32": return put(4, (b) => b.writeInt32LE(v as number));
      case "FLOAT32": return put(4, (b) => b.writeFloatLE(v as number));
      case "BOOL": return put(1, (b) => b.writeUInt8(v ? 1 : 0));
      case "STRING": return str(v as string);
      case "UINT64": return u64(v as bigint);
      case "INT64": return put(8, (b) => b.writeBigInt64LE(v as bigint));
      case "FLOAT64": return put(8, (b) => b.writeDoubleLE(v as number));
      case "ARRAY": {
        const { itemType, items } = v as { itemType: keyof typeof GGUF_TYPE; items: unknown[] };
        u32(GGUF_TYPE[itemType]);
        u64(items.length);
        for (const item of items) scalar(itemType, item);
      }
    }
  };
  out.push(Buffer.from("GGUF", "latin1"));
  u32(opts.version ?? 3);
  u64(tensors.length);
  u64(kvs.length);
  for (const [key, typed] of kvs) {
    str(key);
    u32(GGUF_TYPE[typed.type]);
    scalar(typed.type, typed.type === "ARRAY" ? typed : typed.value);
  }
  for (const t of tensors) {
    str(t.name);
    u32(t.ne.length);
    for (const d of t.ne) u64(d);
    u32(t.type);
    u64(t.offset);
  }
  const head = Buffer.concat(out);
  const alignment = opts.alignment ?? 32;
  const pad = Buffer.alloc((alignment - (head.length % alignment)) % alignment);
  return Buffer.concat([head, pad, opts.data ?? Buffer.alloc(0)]);
}

/** Shorthands for the typed values. */
export const g = {
  str: (value: string): Typed => ({ type: "STRING", value }),
  u32: (value: number): Typed => ({ type: "UINT32", value }),
  bool: (value: boolean): Typed => ({ type: "BOOL", value }),
  arr: (itemType: keyof typeof GGUF_TYPE, items: unknown[]): Typed => ({ type: "ARRAY", itemType, items }),
};

/**
 * A temp folder for one test file's GGUF files (made in beforeAll, removed in afterAll) and a
 * writer into it. `dir()` is the folder, for files written by other means.
 */
export function tempGgufFiles(prefix: string): { writeGguf: (...args: Parameters<typeof encodeGguf>) => string; dir: () => string } {
  let dir = "";
  let files = 0;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return {
    writeGguf: (...args) => {
      const file = path.join(dir, `t${files++}.gguf`);
      fs.writeFileSync(file, encodeGguf(...args));
      return file;
    },
    dir: () => dir,
  };
}
