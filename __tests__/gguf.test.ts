import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GgufValue, readGgufHeader } from "../lib/io/gguf";
import { catchClara } from "./helpers/errors";
import { encodeGguf, g, tempGgufFiles, Typed } from "./helpers/gguf-writer";
import { tinyGgufMetadata } from "./helpers/tiny-tokenizers";

const { writeGguf, dir: tempDir } = tempGgufFiles("clara-gguf-");

describe("readGgufHeader", () => {
  const KVS: [string, Typed][] = [
    ["u8", { type: "UINT8", value: 255 }],
    ["i8", { type: "INT8", value: -5 }],
    ["u16", { type: "UINT16", value: 65535 }],
    ["i16", { type: "INT16", value: -300 }],
    ["u32", { type: "UINT32", value: 4e9 }],
    ["i32", { type: "INT32", value: -2e9 }],
    ["f32", { type: "FLOAT32", value: 1.5 }],
    ["bool", { type: "BOOL", value: true }],
    ["str", g.str("héllo ✓")],
    ["u64", { type: "UINT64", value: 2n ** 60n }],
    ["i64", { type: "INT64", value: -(2n ** 62n) }],
    ["f64", { type: "FLOAT64", value: Math.PI }],
    ["ints", g.arr("INT32", [1, -2, 3])],
    ["floats", g.arr("FLOAT32", [0.25, -8])],
    ["flags", g.arr("BOOL", [true, false])],
    ["strings", g.arr("STRING", ["a", "", "日本"])],
    ["nested", g.arr("ARRAY", [{ itemType: "STRING", items: ["x", "y"] }, { itemType: "STRING", items: [] }])],
    ["empty", g.arr("UINT8", [])],
    ["general.alignment", g.u32(64)],
  ];
  const EXPECTED: [string, GgufValue][] = [
    ["u8", 255], ["i8", -5], ["u16", 65535], ["i16", -300], ["u32", 4e9], ["i32", -2e9], ["f32", 1.5], ["bool", true],
    ["str", "héllo ✓"], ["u64", 2n ** 60n], ["i64", -(2n ** 62n)], ["f64", Math.PI], ["ints", [1, -2, 3]],
    ["floats", [0.25, -8]], ["flags", [true, false]], ["strings", ["a", "", "日本"]], ["nested", [["x", "y"], []]],
    ["empty", []], ["general.alignment", 64],
  ];
  const TENSORS = [
    { name: "token_embd.weight", ne: [8, 16], type: 0, offset: 0 },
    { name: "blk.0.attn_norm.weight", ne: [8], type: 1, offset: 512 },
  ];

  test.each([3, 2])("reads every metadata type and the tensor infos (v%i)", (version) => {
    const file = writeGguf(KVS, TENSORS, { version, alignment: 64, data: new Uint8Array(528) });
    const h = readGgufHeader(file);
    expect(h.version).toBe(version);
    expect([...h.metadata]).toEqual(EXPECTED);
    expect(h.tensors).toEqual([
      { name: "token_embd.weight", shape: [16, 8], type: 0, offset: 0 },
      { name: "blk.0.attn_norm.weight", shape: [8], type: 1, offset: 512 },
    ]);
    expect(h.alignment).toBe(64);
    expect(h.dataOffset % 64).toBe(0);
    expect(fs.statSync(file).size - h.dataOffset).toBe(528);
  });

  test("bad magic, version 1 and big-endian files are named errors", () => {
    const good = encodeGguf(KVS.slice(0, 3));
    const cases: [Buffer, RegExp][] = [
      [Buffer.from("PK\x03\x04 not a gguf"), /not a GGUF file/],
      [Buffer.alloc(2), /not a GGUF file/],
      [Buffer.concat([good.subarray(0, 4), Buffer.from([1, 0, 0, 0]), good.subarray(8)]), /version 1 .*convert the model again/],
      [Buffer.concat([good.subarray(0, 4), Buffer.from([0, 0, 0, 3]), good.subarray(8)]), /big-endian/],
    ];
    for (const [bytes, message] of cases) {
      const file = path.join(tempDir(), "bad.gguf");
      fs.writeFileSync(file, bytes);
      const e = catchClara(() => readGgufHeader(file), "E_GGUF");
      expect(e.file).toBe(file);
      expect(e.message).toContain(file);
      expect(e.message).toMatch(message);
    }
    catchClara(() => readGgufHeader(path.join(tempDir(), "missing.gguf")), "E_IO");
  });

  test("a truncated file fails at every cut, naming the file and the key being read", () => {
    const full = encodeGguf(KVS, TENSORS, { alignment: 1 }); // no padding: every byte is header
    const file = path.join(tempDir(), "cut.gguf");
    for (const cut of [...Array.from({ length: Math.ceil(full.length / 7) }, (_, i) => i * 7), full.length - 1]) {
      fs.writeFileSync(file, full.subarray(0, cut));
      const e = catchClara(() => readGgufHeader(file), "E_GGUF");
      expect(e.message).toContain(file);
    }
    const inStrings = full.indexOf(Buffer.from("日本"));
    fs.writeFileSync(file, full.subarray(0, inStrings + 2));
    const e = catchClara(() => readGgufHeader(file), "E_GGUF");
    expect(e.message).toMatch(/truncated.*metadata key 'strings'/);
    expect(e.entry).toBe("strings");
  });

  test("a corrupt element count fails as truncation instead of allocating", () => {
    const bytes = encodeGguf([["strings", g.arr("STRING", ["a"])]]);
    bytes.writeBigUInt64LE(2n ** 40n, bytes.indexOf(Buffer.from("strings")) + 7 + 4 + 4);
    const file = path.join(tempDir(), "count.gguf");
    fs.writeFileSync(file, bytes);
    expect(catchClara(() => readGgufHeader(file), "E_GGUF").message).toMatch(/declares 1099511627776 items/);
  });

  test("reads only the header of a multi-gigabyte file", () => {
    const file = writeGguf(tinyGgufMetadata(), TENSORS);
    fs.truncateSync(file, 5 * 2 ** 30); // sparse: no disk used, beyond what one Buffer can hold
    const t0 = performance.now();
    expect(readGgufHeader(file).tensors).toHaveLength(2);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  test("parses 49152 tokens and 48900 merges quickly", () => {
    const tokens = Array.from({ length: 49152 }, (_, i) => `tok${i}\u0120`);
    const merges = Array.from({ length: 48900 }, (_, i) => `t${i} k${i}`);
    const file = writeGguf([["tokenizer.ggml.tokens", g.arr("STRING", tokens)], ["tokenizer.ggml.merges", g.arr("STRING", merges)]]);
    const t0 = performance.now();
    const meta = readGgufHeader(file).metadata;
    expect(performance.now() - t0).toBeLessThan(2000); // ~30 ms here; the bound only catches a quadratic reader
    expect(meta.get("tokenizer.ggml.tokens")).toEqual(tokens);
    expect(meta.get("tokenizer.ggml.merges")).toEqual(merges);
  });
});
