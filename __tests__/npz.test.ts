import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { zipSync } from "fflate";
import { ClaraError } from "../lib/errors";
import { writeFileAtomic } from "../lib/io/atomic";
import { decodeNpy, encodeNpy } from "../lib/io/npy";
import { decodeNpz, encodeNpz, readNpz, writeNpz } from "../lib/io/npz";
import { DType, DTYPES, Tensor, float32ToBfloat16, sizeOf, storageFor, tensor } from "../lib/tensor";

// ---------------------------------------------------------------------------------------
// Helpers

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-npz-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const latin1 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");

/** The raw bits of every element, as unsigned integers (what Python's `.view(uintN)` gives). */
function bitsOf(t: Tensor): number[] {
  const { buffer, byteOffset, length, BYTES_PER_ELEMENT } = t.data;
  const View = { 1: Uint8Array, 2: Uint16Array, 4: Uint32Array }[BYTES_PER_ELEMENT as 1 | 2 | 4];
  return Array.from(new View(buffer as ArrayBuffer, byteOffset, length));
}

function expectSameTensor(actual: Tensor, expected: Tensor): void {
  expect(actual.dtype).toBe(expected.dtype);
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.data.constructor).toBe(expected.data.constructor);
  expect(bitsOf(actual)).toEqual(bitsOf(expected));
}

function catchError(fn: () => unknown): ClaraError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ClaraError);
    return e as ClaraError;
  }
  throw new Error("expected a ClaraError, but nothing was thrown");
}

function expectNpzError(fn: () => unknown, where: { file?: string; entry?: string }, message?: RegExp): ClaraError {
  const e = catchError(fn);
  expect(e.code).toBe("E_NPZ");
  expect(e.file).toBe(where.file);
  expect(e.entry).toBe(where.entry);
  if (where.file !== undefined) expect(e.message).toContain(where.file);
  if (message) expect(e.message).toMatch(message);
  return e;
}

/** One tensor per dtype, with the values most likely to be mangled (NaN, -0, extremes). */
function samples(): Map<string, Tensor> {
  const f32 = new Float32Array([0, -0, 1.5, Infinity, -Infinity, NaN, 1e-45, 3.4e38]);
  return new Map<string, Tensor>([
    ["f32", tensor("float32", [2, 4], f32)],
    ["f16", tensor("float16", [5], new Uint16Array([0x3c00, 0x7bff, 0xc100, 0x0001, 0x7e00]))],
    ["bf16", tensor("bfloat16", [2, 4], float32ToBfloat16(f32))],
    ["i32", tensor("int32", [4], new Int32Array([-(2 ** 31), -1, 0, 2 ** 31 - 1]))],
    ["u32", tensor("uint32", [3], new Uint32Array([0, 1, 2 ** 32 - 1]))],
    ["u8", tensor("uint8", [3, 1], new Uint8Array([0, 255, 7]))],
    ["flags", tensor("bool", [2, 2], new Uint8Array([1, 0, 0, 1]))],
    ["scalar", tensor("float32", [], new Float32Array([3.25]))],
    ["empty", tensor("int32", [0, 3], new Int32Array(0))],
  ]);
}

const zeros = (dtype: DType, shape: number[]) => tensor(dtype, shape, new (storageFor(dtype))(sizeOf(shape)));

const f32x12 = () => tensor("float32", [3, 4], Float32Array.from({ length: 12 }, (_, i) => i));

/** The npy bytes of `t` with `from` replaced by `to` in the header (same length keeps the layout). */
function patchHeader(t: Tensor, from: string, to: string): Uint8Array {
  const bytes = encodeNpy(t);
  const at = latin1(bytes).indexOf(from);
  expect(at).toBeGreaterThan(0);
  const out = bytes.slice();
  out.set(Buffer.from(to, "latin1"), at);
  return out;
}

// ---------------------------------------------------------------------------------------
// .npy layout (golden bytes, no Python needed)

describe("encodeNpy layout", () => {
  // numpy 2.x: dict, 21 - len(str(shape[0])) growth spaces, padding to 64, "\n".
  const pad = (dict: string, total: number) => dict + " ".repeat(total - dict.length - 1) + "\n";

  test("float32 [3, 4] is byte-identical to numpy.save", () => {
    const bytes = encodeNpy(f32x12());
    expect(Array.from(bytes.subarray(0, 6))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
    expect(latin1(bytes.subarray(1, 6))).toBe("NUMPY");
    expect([bytes[6], bytes[7]]).toEqual([1, 0]); // version 1.0
    const headerLen = bytes[8] | (bytes[9] << 8);
    expect(headerLen).toBe(118); // what numpy 2.4 writes for this array
    expect((10 + headerLen) % 64).toBe(0);
    const header = latin1(bytes.subarray(10, 10 + headerLen));
    expect(header).toBe(pad("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 118));
    // mx::load reads these fixed offsets instead of parsing the header.
    expect(latin1(bytes.subarray(10 + 11, 10 + 14))).toBe("<f4");
    expect(String.fromCharCode(bytes[10 + 34])).toBe("F");
    expect(bytes.length).toBe(128 + 12 * 4);
    expect(Array.from(new Float32Array(bytes.slice(128).buffer))).toEqual(Array.from(f32x12().data));
  });

  test.each<[number[], string, DType, string]>([
    [[], "()", "float32", "<f4"],
    [[5], "(5,)", "int32", "<i4"],
    [[0, 3], "(0, 3)", "bool", "|b1"],
    [[2], "(2,)", "uint8", "|u1"],
  ])("shape %j is written as %s", (shape, text, dtype, descr) => {
    const bytes = encodeNpy(zeros(dtype, shape));
    const headerLen = bytes[8] | (bytes[9] << 8);
    expect(headerLen).toBe(118); // checked against numpy 2.4 for each of these
    expect(latin1(bytes.subarray(10, 10 + headerLen))).toBe(
      pad(`{'descr': '${descr}', 'fortran_order': False, 'shape': ${text}, }`, 118),
    );
  });

  test.each([
    ["float32", "<f4"],
    ["float16", "<f2"],
    ["bfloat16", "<V2"],
    ["int32", "<i4"],
    ["uint32", "<u4"],
    ["uint8", "|u1"],
    ["bool", "|b1"],
  ] as const)("%s is written with descr %s at MLX's fixed offset", (dtype, descr) => {
    const bytes = encodeNpy(zeros(dtype, [2]));
    expect(latin1(bytes.subarray(10 + 11, 10 + 14))).toBe(descr);
    expect(String.fromCharCode(bytes[10 + 34])).toBe("F");
    expect(decodeNpy(bytes).dtype).toBe(dtype);
  });

  test("a header over 64 KiB switches to version 2.0 with a u32 length", () => {
    const t = zeros("uint8", new Array(30000).fill(1));
    const bytes = encodeNpy(t);
    expect([bytes[6], bytes[7]]).toEqual([2, 0]);
    const headerLen = new DataView(bytes.buffer).getUint32(8, true);
    expect((12 + headerLen) % 64).toBe(0);
    expectSameTensor(decodeNpy(bytes), t);
  });

  test("the decoded data is a fresh, aligned array", () => {
    const bytes = encodeNpy(f32x12());
    const odd = new Uint8Array(bytes.length + 1);
    odd.set(bytes, 1);
    const t = decodeNpy(odd.subarray(1));
    expect(t.data.byteOffset).toBe(0);
    expect(t.data.buffer).not.toBe(odd.buffer);
    expectSameTensor(t, f32x12());
  });

  test("fortran_order True is read back into C order", () => {
    const t = tensor("int32", [2, 3], new Int32Array([0, 1, 2, 3, 4, 5]));
    const decoded = decodeNpy(patchHeader(t, "False", "True "));
    // The bytes 0..5 in column-major order for shape (2, 3) are [[0, 2, 4], [1, 3, 5]].
    expect(Array.from(decoded.data)).toEqual([0, 2, 4, 1, 3, 5]);
  });

  test("reads the header layout mlx.core.savez writes", () => {
    const header = "{'descr': '<V2', 'fortran_order': False, 'shape': (2, 3, )}";
    const bytes = new Uint8Array(10 + header.length + 1 + 12);
    bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length + 1, 0]);
    bytes.set(Buffer.from(header + "\n", "latin1"), 10);
    bytes.set(new Uint8Array(new Uint16Array([1, 2, 3, 4, 5, 6]).buffer), 10 + header.length + 1);
    expectSameTensor(decodeNpy(bytes), tensor("bfloat16", [2, 3], new Uint16Array([1, 2, 3, 4, 5, 6])));
    expect(decodeNpy(patchHeader(tensor("bfloat16", [1], new Uint16Array([7])), "<V2", "|V2")).dtype).toBe("bfloat16");
  });

  test("rejects an invalid tensor before writing anything", () => {
    const bad = { dtype: "float32", shape: [2], data: new Float32Array(3) } as Tensor;
    expect(catchError(() => encodeNpy(bad)).code).toBe("E_INVALID_ARGUMENT");
  });
});

// ---------------------------------------------------------------------------------------
// Round trips

describe("npz round trip", () => {
  test.each([false, true])("every dtype survives encode/decode (compress: %s)", (compress) => {
    const input = samples();
    const output = decodeNpz(encodeNpz(input, { compress }));
    expect([...output.keys()]).toEqual([...input.keys()]);
    for (const [name, t] of input) expectSameTensor(output.get(name)!, t);
  });

  test.each([false, true])("every dtype as 0-d, empty and 3-d (compress: %s)", (compress) => {
    const input = new Map<string, Tensor>();
    for (const dtype of DTYPES)
      for (const shape of [[], [0, 3], [2, 1, 3]]) input.set(`${dtype}${JSON.stringify(shape)}`, zeros(dtype, shape));
    const output = decodeNpz(encodeNpz(input, { compress }));
    expect([...output.keys()]).toEqual([...input.keys()]);
    for (const [name, t] of input) expectSameTensor(output.get(name)!, t);
  });

  test("deflate actually compresses, stored does not", () => {
    const z = { z: zeros("float32", [64, 64]) };
    expect(encodeNpz(z).length).toBeGreaterThan(16384);
    expect(encodeNpz(z, { compress: true }).length).toBeLessThan(1000);
  });

  test("keeps insertion order, also for integer-like and non-ASCII names", () => {
    const names = ["10", "2", "b", "a/b", "ünïcode", "a.npy"];
    const input = new Map(names.map((n, i) => [n, tensor("int32", [1], new Int32Array([i]))] as const));
    const output = decodeNpz(encodeNpz(input));
    expect([...output.keys()]).toEqual(names);
    names.forEach((n, i) => expect(output.get(n)!.data[0]).toBe(i));
  });

  test("accepts a plain record as well as a Map", () => {
    const out = decodeNpz(encodeNpz({ w: f32x12() }));
    expectSameTensor(out.get("w")!, f32x12());
  });

  test("equal tensors give byte-identical archives", () => {
    expect(Buffer.from(encodeNpz(samples(), { compress: true }))).toEqual(Buffer.from(encodeNpz(samples(), { compress: true })));
  });

  test("an empty archive is valid", () => {
    expect(decodeNpz(encodeNpz(new Map())).size).toBe(0);
  });

  test("writeNpz / readNpz through the file system", () => {
    const file = path.join(dir, "roundtrip.npz");
    writeNpz(file, samples(), { compress: true });
    const back = readNpz(file);
    for (const [name, t] of samples()) expectSameTensor(back.get(name)!, t);
  });
});

// ---------------------------------------------------------------------------------------
// Errors

describe("npz errors", () => {
  const goodArchive = () => encodeNpz({ w: f32x12(), b: tensor("int32", [2], new Int32Array([1, 2])) });

  test("a truncated file names the file", () => {
    const file = path.join(dir, "truncated.npz");
    const bytes = goodArchive();
    fs.writeFileSync(file, bytes.subarray(0, bytes.length >> 1));
    expectNpzError(() => readNpz(file), { file }, /truncated or corrupt/);
  });

  test("bytes that are not a zip at all", () => {
    const file = path.join(dir, "garbage.npz");
    fs.writeFileSync(file, Buffer.from("this is not a zip archive, just some text".repeat(10)));
    expectNpzError(() => readNpz(file), { file }, /not a readable \.npz/);
    expectNpzError(() => decodeNpz(new Uint8Array(0)), {});
  });

  test("a corrupt deflate stream names the member", () => {
    const bytes = encodeNpz({ w: f32x12() }, { compress: true });
    // The member's data starts after the 30-byte local header and its name "w.npy".
    const start = 30 + bytes[26] + bytes[28];
    bytes[start] = 0xff; // BTYPE 11: an invalid deflate block
    expectNpzError(() => decodeNpz(bytes, "x.npz"), { file: "x.npz", entry: "w" }, /member 'w\.npy' does not inflate/);
  });

  test("a flipped bit in a stored member's data fails its CRC-32 and names the array (it used to load silently)", () => {
    const bytes = encodeNpz({ w: f32x12() });
    bytes[30 + bytes[26] + bytes[28] + 128 + 5] ^= 0x10; // inside the float data, after the .npy header
    const file = path.join(dir, "flipped.npz");
    fs.writeFileSync(file, bytes);
    expectNpzError(() => readNpz(file), { file, entry: "w" }, /fails its CRC-32 check/);
    expectNpzError(() => decodeNpz(bytes, "f.npz"), { file: "f.npz", entry: "w" }, /fails its CRC-32 check/);
  });

  test("a member with bad magic names file and entry", () => {
    const bytes = zipSync({ "w.npy": Buffer.from("NUMPY? no, just text") });
    expectNpzError(() => decodeNpz(bytes, "m.npz"), { file: "m.npz", entry: "w" }, /bad magic/);
  });

  test("a member whose data is shorter than its header says", () => {
    const npy = encodeNpy(f32x12());
    const bytes = zipSync({ "w.npy": npy.subarray(0, npy.length - 4) });
    const e = expectNpzError(() => decodeNpz(bytes, "short.npz"), { file: "short.npz", entry: "w" });
    expect(e.message).toMatch(/needs 48 bytes of data but 44 are present \(truncated\)/);
  });

  test("a member cut inside its header", () => {
    const bytes = zipSync({ w: encodeNpy(f32x12()).subarray(0, 40) });
    expectNpzError(() => decodeNpz(bytes, "h.npz"), { file: "h.npz", entry: "w" }, /truncated/);
  });

  test("unsupported descr names file, entry, dtype and a fix", () => {
    const npy = patchHeader(f32x12(), "<f4", "<f8");
    const e = expectNpzError(() => decodeNpz(zipSync({ "x.npy": npy }), "d.npz"), { file: "d.npz", entry: "x" });
    expect(e.message).toContain("float64 ('<f8') is not supported");
    expect(e.message).toContain("arr.astype('float32')");
    expect(decodeNpzMessage(patchHeader(f32x12(), "<f4", "<i8"))).toContain("astype('int32')");
    expect(decodeNpzMessage(patchHeader(f32x12(), "'<f4'", "'|O' "))).toContain("'|O'");
  });

  test("big-endian data is rejected with a fix", () => {
    expect(decodeNpzMessage(patchHeader(f32x12(), "<f4", ">f4"))).toMatch(/'>f4' is big-endian.*astype\('<f4'\)/);
  });

  test("a bad version or header is rejected", () => {
    const npy = encodeNpy(f32x12());
    npy[6] = 9;
    expect(decodeNpzMessage(npy)).toContain("version 9.0");
    expect(decodeNpzMessage(patchHeader(f32x12(), "'shape'", "'shope'"))).toContain("no 'shape' tuple");
  });

  function decodeNpzMessage(npy: Uint8Array): string {
    return expectNpzError(() => decodeNpy(npy, { file: "f.npz", entry: "e" }), { file: "f.npz", entry: "e" }).message;
  }

  test("a missing file is E_IO", () => {
    const file = path.join(dir, "does-not-exist.npz");
    const e = catchError(() => readNpz(file));
    expect(e.code).toBe("E_IO");
    expect(e.file).toBe(file);
  });
});

// ---------------------------------------------------------------------------------------
// Atomic writes

describe("atomic writes", () => {
  const listing = (d: string) => fs.readdirSync(d).sort();

  test("a failed encode leaves the old file byte-identical and no temp files", () => {
    const sub = fs.mkdtempSync(path.join(dir, "atomic-"));
    const file = path.join(sub, "ckpt.npz");
    writeNpz(file, samples());
    const before = fs.readFileSync(file);
    const bad = { dtype: "float32", shape: [2], data: new Float32Array(3) } as Tensor;
    const e = catchError(() => writeNpz(file, new Map([["ok", f32x12()], ["bad", bad]])));
    expect(e.code).toBe("E_INVALID_ARGUMENT");
    expect(e.message).toContain('entries["bad"]');
    expect(fs.readFileSync(file).equals(before)).toBe(true);
    expect(listing(sub)).toEqual(["ckpt.npz"]);
  });

  test("a failed rename removes the temp file", () => {
    const sub = fs.mkdtempSync(path.join(dir, "atomic-"));
    const target = path.join(sub, "occupied");
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, "x"), "x");
    const e = catchError(() => writeFileAtomic(target, new Uint8Array([1, 2, 3])));
    expect(e.code).toBe("E_IO");
    expect(e.file).toBe(target);
    expect(listing(sub)).toEqual(["occupied"]);
  });

  test("replaces an existing file and keeps its permissions", () => {
    const file = path.join(dir, "mode.bin");
    fs.writeFileSync(file, "old");
    fs.chmodSync(file, 0o640);
    writeFileAtomic(file, Buffer.from("new"));
    expect(fs.readFileSync(file, "utf8")).toBe("new");
    if (process.platform !== "win32") expect(fs.statSync(file).mode & 0o777).toBe(0o640);
  });

  test("a missing folder is E_IO naming the path", () => {
    const file = path.join(dir, "no", "such", "folder", "x.npz");
    const e = catchError(() => writeNpz(file, { w: f32x12() }));
    expect(e.code).toBe("E_IO");
    expect(e.file).toBe(file);
    expect(e.message).toContain(file);
    expect(e.message).toContain("does not exist");
  });

  test("a folder path through a regular file is E_IO", () => {
    const blocker = path.join(dir, "a-file");
    fs.writeFileSync(blocker, "");
    expect(catchError(() => writeFileAtomic(path.join(blocker, "x.npz"), new Uint8Array(1))).code).toBe("E_IO");
  });

  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  (isRoot || process.platform === "win32" ? test.skip : test)("an unwritable folder is E_IO", () => {
    const sub = fs.mkdtempSync(path.join(dir, "ro-"));
    fs.chmodSync(sub, 0o555);
    try {
      const e = catchError(() => writeFileAtomic(path.join(sub, "x.npz"), new Uint8Array(1)));
      expect(e.code).toBe("E_IO");
      expect(e.message).toMatch(/permission denied/);
    } finally {
      fs.chmodSync(sub, 0o755);
    }
  });
});

// ---------------------------------------------------------------------------------------
// Interop with numpy and MLX: Python writes, we read; we write, Python reads.

const REPO = path.resolve(__dirname, "..");
const PYTHON =
  process.env.CLARA_PYTHON ??
  [path.join(REPO, ".venv", "bin", "python"), path.join(REPO, ".venv", "Scripts", "python.exe")].find((p) =>
    fs.existsSync(p),
  ) ??
  "python3";
const canImport = (module: string) => spawnSync(PYTHON, ["-c", `import ${module}`], { stdio: "ignore" }).status === 0;
const HAS_NUMPY = canImport("numpy");
const HAS_MLX = canImport("mlx.core");

/** Skips when the oracle is missing, unless CLARA_REQUIRE_ORACLE=1 makes that a failure. */
function itIf(available: boolean, module: string): (name: string, fn: () => void) => void {
  if (available) return test;
  if (process.env.CLARA_REQUIRE_ORACLE === "1")
    return (name) =>
      test(name, () => {
        throw new Error(`${PYTHON} cannot import ${module}, and CLARA_REQUIRE_ORACLE=1 requires it`);
      });
  return test.skip;
}

function python(script: string, ...args: string[]): string {
  const r = spawnSync(PYTHON, ["-c", script, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`python failed (${r.status ?? r.signal}):\n${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

interface Expected {
  dtype: DType;
  shape: number[];
  bits: number[];
}

function expectMatchesJson(actual: Map<string, Tensor>, expected: Record<string, Expected>, ordered = true): void {
  const sort = (names: string[]) => (ordered ? names : names.sort());
  expect(sort([...actual.keys()])).toEqual(sort(Object.keys(expected)));
  for (const [name, e] of Object.entries(expected)) {
    const t = actual.get(name)!;
    expect({ name, dtype: t.dtype, shape: t.shape }).toEqual({ name, dtype: e.dtype, shape: e.shape });
    expect(bitsOf(t)).toEqual(e.bits);
  }
}

function toJson(entries: Map<string, Tensor>): string {
  return JSON.stringify(Object.fromEntries([...entries].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, bits: bitsOf(t) }])));
}

// Python side of the bit-exact comparison: element bits in C order as unsigned ints.
const PY_BITS = `
import json, sys
import numpy as np
def bits(a):
    a = np.asarray(a)
    u = {1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize]
    return np.ascontiguousarray(a).view(u).ravel().tolist()
`;

describe("numpy interop", () => {
  itIf(HAS_NUMPY, "numpy")("reads numpy.savez and numpy.savez_compressed", () => {
    const stored = path.join(dir, "np-stored.npz");
    const deflated = path.join(dir, "np-deflated.npz");
    const expected = JSON.parse(
      python(
        PY_BITS +
          `
f32 = np.array([[0, -0.0, 1.5, np.inf], [-np.inf, np.nan, 1e-45, 3.4e38]], np.float32)
arrays = dict(
    f32=f32,
    f16=np.array([1, 65504, -2.5, 6e-8, np.nan], np.float16),
    i32=np.array([-2**31, -1, 0, 2**31 - 1], np.int32),
    u32=np.array([0, 1, 2**32 - 1], np.uint32),
    u8=np.array([[0], [255], [7]], np.uint8),
    flags=np.array([[True, False], [False, True]]),
    scalar=np.array(3.25, np.float32),
    empty=np.zeros((0, 3), np.float32),
    fortran=np.asfortranarray(np.arange(24, dtype=np.int32).reshape(2, 3, 4)),
    big=np.random.default_rng(0).standard_normal((300, 257)).astype(np.float32),
)
np.savez(sys.argv[1], **arrays)
np.savez_compressed(sys.argv[2], **arrays)
names = {np.dtype(np.bool_): "bool"}
print(json.dumps({k: dict(dtype=names.get(a.dtype, a.dtype.name), shape=list(a.shape), bits=bits(a)) for k, a in arrays.items()}))
`,
        stored,
        deflated,
      ),
    );
    expectMatchesJson(readNpz(stored), expected);
    expectMatchesJson(readNpz(deflated), expected);
  });

  itIf(HAS_NUMPY, "numpy")("refuses numpy's float64 and names the array", () => {
    const file = path.join(dir, "np-f64.npz");
    python("import numpy as np, sys; np.savez(sys.argv[1], ok=np.ones(2, np.float32), x=np.ones(3))", file);
    const e = expectNpzError(() => readNpz(file), { file, entry: "x" });
    expect(e.message).toContain("float64 ('<f8') is not supported");
  });

  itIf(HAS_NUMPY, "numpy")("numpy.load reads what we write, and numpy would write the same bytes", () => {
    const input = samples();
    const json = path.join(dir, "ours.json");
    fs.writeFileSync(json, toJson(input));
    const files = [false, true].map((compress) => {
      const file = path.join(dir, `ours-${compress ? "deflated" : "stored"}.npz`);
      writeNpz(file, input, { compress });
      return file;
    });
    const out = python(
      PY_BITS +
        `
import io, zipfile
expected = json.load(open(sys.argv[1]))
for path in sys.argv[2:]:
    with np.load(path) as npz:
        assert list(npz.keys()) == list(expected), (path, list(npz.keys()))
        members = zipfile.ZipFile(path)
        for name, e in expected.items():
            a = npz[name]
            if e["dtype"] == "bfloat16":
                assert a.dtype.kind == "V" and a.dtype.itemsize == 2, a.dtype
            else:
                assert a.dtype == np.dtype(e["dtype"]), (name, a.dtype)
                ours = members.read(name + ".npy")
                theirs = io.BytesIO()
                np.lib.format.write_array(theirs, a)
                assert ours == theirs.getvalue(), (name, ours[:128], theirs.getvalue()[:128])
            assert list(a.shape) == e["shape"], (name, a.shape)
            assert bits(a) == e["bits"], name
print("ok")
`,
      json,
      ...files,
    );
    expect(out.trim()).toBe("ok");
  });
});

describe("MLX interop", () => {
  itIf(HAS_MLX, "mlx.core")("reads mlx.core.savez, bfloat16 and column-major arrays included", () => {
    const file = path.join(dir, "mlx.npz");
    const expected = JSON.parse(
      python(
        `
import json, sys
import numpy as np
import mlx.core as mx
f32 = mx.array([[0, -0.0, 1.5, 1e30], [-2.0, 0.1, 1e-3, 65504]], dtype=mx.float32)
arrays = dict(
    bf16=f32.astype(mx.bfloat16),
    f32=f32,
    vec=mx.array([1.5, 2.25, -3.0], dtype=mx.bfloat16),
    transposed=mx.arange(12, dtype=mx.float32).reshape(3, 4).T,
    bf16_t=f32.astype(mx.bfloat16).T,
    scalar=mx.array(2.5, dtype=mx.bfloat16),
    i32=mx.array([-7, 0, 2**31 - 1], dtype=mx.int32),
)
mx.savez(sys.argv[1], **arrays)
uint = {2: mx.uint16, 4: mx.uint32}
def bits(a):
    return np.array(a.view(uint[a.itemsize])).ravel().tolist()
print(json.dumps({k: dict(dtype=str(a.dtype).split(".")[-1], shape=list(a.shape), bits=bits(a)) for k, a in arrays.items()}))
`,
        file,
      ),
    );
    expectMatchesJson(readNpz(file), expected, false); // mlx writes members in hash-map order
  });

  itIf(HAS_MLX, "mlx.core")("mlx.core.load reads what we write with the right dtypes", () => {
    const input = samples();
    input.set("bf16_m", tensor("bfloat16", [3, 2], float32ToBfloat16(new Float32Array([1, -2, 0.5, 3e38, -0, 7]))));
    const json = path.join(dir, "for-mlx.json");
    fs.writeFileSync(json, toJson(input));
    const files = [false, true].map((compress) => {
      const file = path.join(dir, `for-mlx-${compress ? "deflated" : "stored"}.npz`);
      writeNpz(file, input, { compress });
      return file;
    });
    // A bare .npy goes through mx::load's own header reader (fixed offsets), not Python's zipfile.
    const npy = path.join(dir, "for-mlx.npy");
    fs.writeFileSync(npy, encodeNpy(input.get("bf16")!));
    const out = python(
      `
import json, sys
import numpy as np
import mlx.core as mx
expected = json.load(open(sys.argv[1]))
uint = {1: mx.uint8, 2: mx.uint16, 4: mx.uint32}
def bits(a):
    a = a.astype(mx.uint8) if a.dtype == mx.bool_ else a.view(uint[a.itemsize])
    return np.array(a).ravel().tolist()
def check(name, a, e):
    assert str(a.dtype).split(".")[-1] == e["dtype"], (name, a.dtype, e["dtype"])
    assert list(a.shape) == e["shape"], (name, a.shape)
    assert bits(a) == e["bits"], (name, bits(a), e["bits"])
for path in sys.argv[3:]:
    loaded = mx.load(path)
    assert sorted(loaded) == sorted(expected), (path, list(loaded))
    for name, e in expected.items():
        check(name, loaded[name], e)
check("bf16 .npy", mx.load(sys.argv[2]), expected["bf16"])
print("ok")
`,
      json,
      npy,
      ...files,
    );
    expect(out.trim()).toBe("ok");
  });
});

test("DTYPES covers every dtype the samples use", () => {
  expect(new Set([...samples().values()].map((t) => t.dtype))).toEqual(new Set(DTYPES));
});
