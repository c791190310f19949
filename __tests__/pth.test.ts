// Apple's reference checkpoint format, read without running code: the .pth reader (zip +
// weights-only pickle VM) against checkpoints written in torch.save's exact layout, hostile
// pickles refused at the opcode naming the global, broken archives with precise errors, and a
// tiny CLaRa written in the reference layout (three adapters, resized embeddings) that must give
// the same compressed vectors, retrieval scores and greedy tokens as the same weights saved
// through our own .npz path. Also: the Mistral-7B-Instruct-v0.2 chat template.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraModel, ADAPTERS } from "../lib/clara/clara-model";
import { installMistralTemplate, MISTRAL_V02_CHAT_TEMPLATE, renderMistralPrompt, templateAcceptsSystemTurn } from "../lib/clara/mistral-template";
import {
  convertReferenceCheckpoint,
  loadReferenceClara,
  parsePeftKey,
  readReferenceConfig,
  REFERENCE_FILES,
} from "../lib/clara/reference-checkpoint";
import { SYSTEM_PROMPTS } from "../lib/clara/templates";
import { leftPad } from "../lib/data/batches";
import { Random } from "../lib/data/random";
import { nativeModel } from "../lib/model/model";
import { readCheckpoint } from "../lib/io/checkpoint";
import { PthArchive, PthTensor, readPthStateDict, unpickle } from "../lib/io/pth";
import type { NamedTensor } from "../lib/native";
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16, tensor, type Tensor } from "../lib/tensor";
import { Tokenizer } from "../lib/tokenizer";
import { convertCommand } from "../tools/commands/convert";
import { catchClara } from "./helpers/errors";
import { oracleTest, pythonEval, removeDir, tempDir } from "./helpers/oracle";
import {
  contiguous,
  findMember,
  OrderedDict,
  PickleBuilder,
  pickleCheckpoint,
  Storage,
  TensorView,
  torchSave,
  torchSaveBytes,
  Tuple,
  zipRecords,
  type PyValue,
} from "./helpers/pth-writer";
import { makeTinyClaraBase } from "./helpers/tiny-clara";

let work: string;
beforeAll(() => {
  work = tempDir("clara-pth-test-");
});
afterAll(() => removeDir(work));

const file = (name: string) => path.join(work, name);
const bytesOf = (t: Tensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function randomF32(rng: Random, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.float() * 2 - 1) * scale;
  return a;
}

/** Row-major [rows, cols] → the same matrix stored column-major ([cols, rows] row-major). */
function transposed(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

// ---------------------------------------------------------------------------------------

describe("the .pth reader", () => {
  const rng = new Random(7);
  const a = randomF32(rng, 6); // [2, 3]
  const shared = randomF32(rng, 20);
  const bf = float32ToBfloat16(randomF32(rng, 12));
  const half = float32ToFloat16(randomF32(rng, 8));
  const longs = BigInt64Array.from([3n, -7n, 2147483647n, 0n]);
  const sharedStorage = new Storage("float32", shared);
  const value = (): PyValue =>
    new Map<string, PyValue>([
      ["a", contiguous("float32", [2, 3], a)],
      // a [4, 3] view at offset 5 of a 20-element storage, and its transpose as a second tensor
      ["view", new TensorView(sharedStorage, 5, [4, 3], [3, 1])],
      ["viewT", new TensorView(sharedStorage, 5, [3, 4], [1, 3])],
      // bf16 [3, 2] read with strides [1, 3] from a 12-element storage at offset 4: non-contiguous
      ["bf", new TensorView(new Storage("bfloat16", bf), 4, [3, 2], [1, 3])],
      ["half", contiguous("float16", [2, 2, 2], half)],
      ["long", contiguous("int64", [4], longs)],
      ["scalar", new TensorView(sharedStorage, 19, [], [])],
      ["param", contiguous("float32", [2, 3], a, { parameter: true, requiresGrad: true })],
      ["meta", new OrderedDict(new Map([["x", 1]]), new Map<string, PyValue>([["_metadata", new OrderedDict(new Map([["", new Map([["version", 1]])]]))]]))],
      ["misc", [1, -2, 300, 70000, -(2 ** 31), 2 ** 40, -(2n ** 70n), 1.5, true, false, null, "é", new Tuple([1, 2, 3, 4])]],
    ]);

  it("reads torch.save's layout: dtypes, storage offsets, strides, shared storages, parameters, OrderedDict state", () => {
    torchSave(file("mixed.pth"), value());
    const archive = PthArchive.open(file("mixed.pth"));
    try {
      expect(archive.prefix).toBe("mixed");
      expect(archive.byteorder).toBe("little");
      expect(archive.version).toBe("3");
      const root = archive.root as Map<string, unknown>;
      const t = (k: string) => (root.get(k) as PthTensor).load();
      expect(Array.from(t("a").data)).toEqual(Array.from(a));
      expect(t("a").shape).toEqual([2, 3]);
      expect(Array.from(t("view").data)).toEqual(Array.from(shared.slice(5, 17)));
      const viewT = t("viewT");
      expect(viewT.shape).toEqual([3, 4]);
      expect(Array.from(viewT.data)).toEqual(Array.from(transposed(shared.slice(5, 17), 4, 3)));
      expect((root.get("view") as PthTensor).storage).toBe((root.get("viewT") as PthTensor).storage);
      const bft = t("bf");
      expect(bft.dtype).toBe("bfloat16");
      // element (i, j) = storage[4 + i + 3j]
      expect(Array.from(bft.data)).toEqual([bf[4], bf[7], bf[5], bf[8], bf[6], bf[9]]);
      expect(t("half").dtype).toBe("float16");
      expect(Array.from(t("half").data)).toEqual(Array.from(half));
      expect(t("long")).toEqual(tensor("int32", [4], Int32Array.from([3, -7, 2147483647, 0])));
      expect(t("scalar").shape).toEqual([]);
      expect(Array.from(t("scalar").data)).toEqual([shared[19]]);
      expect((root.get("param") as PthTensor).requiresGrad).toBe(true);
      expect(Array.from(t("param").data)).toEqual(Array.from(a));
      expect(root.get("meta")).toEqual(new Map([["x", 1]]));
      expect(root.get("misc")).toEqual([1, -2, 300, 70000, -(2 ** 31), 2 ** 40, -(2n ** 70n), 1.5, true, false, null, "é", [1, 2, 3, 4]]);
    } finally {
      archive.close();
    }
  });

  it("reads archives without ZIP64 records or a byteorder record (torch < 2.1), and flat state dicts", () => {
    fs.writeFileSync(file("old.pth"), torchSaveBytes(new Map([["w", contiguous("float32", [2, 3], a)]]), { zip64: false, byteorder: null }));
    const sd = readPthStateDict(file("old.pth"));
    expect([...sd.keys()]).toEqual(["w"]);
    expect(Array.from(sd.get("w")!.data)).toEqual(Array.from(a));
  });

  it("refuses int64 values that do not fit int32", () => {
    torchSave(file("wide.pth"), new Map([["w", contiguous("int64", [1], BigInt64Array.from([2n ** 40n]))]]));
    const err = catchClara(() => readPthStateDict(file("wide.pth")), "E_PTH");
    expect(err.message).toMatch(/does not fit int32/);
  });

  // CPython's own Pickler, given a stand-in `torch` module with the same names, must write the
  // very bytes our writer does: the writer (and so the layout the reader is tested on) is
  // torch.save's. No torch is installed; only the standard library is used.
  oracleTest("pickle")("writes the pickle CPython's Pickler writes for the same objects (stand-in torch module)", async () => {
    const storages: Storage[] = [];
    const spec = (v: PyValue): unknown => {
      if (v === null) return { t: "none" };
      if (typeof v === "boolean") return { t: "bool", v };
      if (typeof v === "bigint" || (typeof v === "number" && Number.isInteger(v))) return { t: "int", v: String(v) };
      if (typeof v === "number") return { t: "float", v };
      if (typeof v === "string") return { t: "str", v };
      if (v instanceof Tuple) return { t: "tuple", items: v.items.map(spec) };
      if (Array.isArray(v)) return { t: "list", items: v.map(spec) };
      if (v instanceof Map) return { t: "dict", items: [...v].map(([k, x]) => [k, spec(x)]) };
      if (v instanceof OrderedDict) return { t: "odict", items: [...v.entries].map(([k, x]) => [k, spec(x)]), state: v.state ? spec(v.state) : null };
      if (v instanceof TensorView) {
        if (!storages.includes(v.storage)) storages.push(v.storage);
        const t = { t: "tensor", s: storages.indexOf(v.storage), offset: v.offset, size: v.shape, stride: v.stride, rg: false };
        return v.options.parameter ? { t: "param", data: t, rg: v.options.requiresGrad ?? true } : t;
      }
      throw new Error("unsupported");
    };
    const root = spec(value());
    const cls = { float32: "FloatStorage", float16: "HalfStorage", bfloat16: "BFloat16Storage", int64: "LongStorage" };
    const json = JSON.stringify({ storages: storages.map((s) => ({ cls: cls[s.dtype], numel: s.numel })), root });
    const script = String.raw`
import sys, types, pickle, collections, json
torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch; sys.modules["torch._utils"] = utils; torch._utils = utils
def _rebuild_tensor_v2(*a): pass
def _rebuild_parameter(*a): pass
for f in (_rebuild_tensor_v2, _rebuild_parameter):
    f.__module__ = "torch._utils"; f.__qualname__ = f.__name__; setattr(utils, f.__name__, f)
for n in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage"):
    setattr(torch, n, type(n, (), {"__module__": "torch"}))
class Storage:
    def __init__(self, cls, numel): self.cls, self.numel = getattr(torch, cls), numel
class Tensor:
    def __init__(self, s, offset, size, stride, rg): self.s, self.o, self.size, self.stride, self.rg = s, offset, size, stride, rg
    def __reduce_ex__(self, proto):
        return (_rebuild_tensor_v2, (self.s, self.o, tuple(self.size), tuple(self.stride), self.rg, collections.OrderedDict()))
class Parameter:
    def __init__(self, data, rg): self.d, self.rg = data, rg
    def __reduce_ex__(self, proto):
        return (_rebuild_parameter, (Tensor(*self.d), self.rg, collections.OrderedDict()))
spec = json.loads(sys.argv[1])
storages = [Storage(s["cls"], s["numel"]) for s in spec["storages"]]
def build(n):
    t = n["t"]
    if t == "none": return None
    if t in ("bool", "float"): return n["v"]
    if t == "int": return int(n["v"])
    if t == "str": return "".join(list(n["v"]))  # a fresh string object, as dict keys are
    if t == "tuple": return tuple(build(x) for x in n["items"])
    if t == "list": return [build(x) for x in n["items"]]
    if t == "dict": return {"".join(list(k)): build(v) for k, v in n["items"]}
    if t == "odict":
        d = collections.OrderedDict(("".join(list(k)), build(v)) for k, v in n["items"])
        if n["state"] is not None: d.__dict__.update(build(n["state"]))
        return d
    def targs(x): return (storages[x["s"]], x["offset"], x["size"], x["stride"], x["rg"])
    if t == "tensor": return Tensor(*targs(n))
    if t == "param": return Parameter(targs(n["data"]), n["rg"])
ids = {}
class P(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, ids.setdefault(id(obj), str(len(ids))), "cpu", obj.numel)
        return None
import io
buf = io.BytesIO(); P(buf, protocol=2).dump(build(spec["root"])); print(buf.getvalue().hex())
`;
    const python = (await pythonEval(script, json)).trim();
    const zip = torchSaveBytes(value());
    const pkl = findMember(zip, "archive/data.pkl");
    const ours = Buffer.from(zip.subarray(pkl.dataOffset, pkl.dataOffset + pkl.size)).toString("hex");
    expect(ours).toBe(python);
  });
});

// ---------------------------------------------------------------------------------------

describe("hostile pickles are refused at the opcode that names the global", () => {
  /** A checkpoint zip around hand-assembled pickle bytes. */
  function withPickle(name: string, pickle: Uint8Array): string {
    const bytes = zipRecords([
      { name: "archive/data.pkl", data: pickle },
      { name: "archive/byteorder", data: new TextEncoder().encode("little") },
      { name: "archive/version", data: new TextEncoder().encode("3\n") },
    ]);
    fs.writeFileSync(file(name), bytes);
    return file(name);
  }

  const cases: [string, string, (b: PickleBuilder) => number][] = [
    [
      "os.system through GLOBAL + REDUCE",
      "os.system",
      (b) => {
        b.proto(2);
        const at = b.position;
        b.global("os", "system").unicode("touch /tmp/clara-pwned").tuple(1).reduce().stop();
        return at;
      },
    ],
    [
      "builtins.eval through STACK_GLOBAL",
      "builtins.eval",
      (b) => {
        b.proto(4).shortUnicode("builtins").shortUnicode("eval");
        const at = b.position;
        b.stackGlobal().shortUnicode("1+1").tuple(1).reduce().stop();
        return at;
      },
    ],
    [
      "posix.system inside a state dict, after a real tensor entry",
      "posix.system",
      (b) => {
        b.proto(2).emptyDict().binput(0).mark().unicode("w").global("collections", "OrderedDict").emptyTuple().reduce().unicode("x");
        const at = b.position;
        b.global("posix", "system").unicode("id").tuple(1).reduce().setitems().stop();
        return at;
      },
    ],
    [
      "a callable disguised as a torch name",
      "torch.load",
      (b) => {
        b.proto(2);
        const at = b.position;
        b.global("torch", "load").unicode("x.pth").tuple(1).reduce().stop();
        return at;
      },
    ],
  ];

  for (const [title, name, build] of cases) {
    it(`refuses ${title}`, () => {
      const b = new PickleBuilder();
      const at = build(b);
      const bytes = b.bytes();
      const reduceAt = bytes.lastIndexOf(0x52);
      // The VM alone …
      const e1 = catchClara(() => unpickle(bytes), "E_PTH_UNSAFE");
      expect(e1.field).toBe(name);
      expect(e1.message).toContain(name);
      // … failed at the opcode naming the global, before the REDUCE that would call it.
      expect(e1.message).toMatch(new RegExp(`opcode (STACK_)?GLOBAL at byte ${at}\\)`));
      expect(at).toBeLessThan(reduceAt);
      // … and the archive reader.
      const f = withPickle(`unsafe-${name}.pth`, bytes);
      const e2 = catchClara(() => PthArchive.open(f), "E_PTH_UNSAFE");
      expect(e2.message).toContain(name);
      expect(e2.entry).toBe("archive/data.pkl");
      expect(fs.existsSync("/tmp/clara-pwned")).toBe(false);
    });
  }

  it("refuses INST and copyreg extension codes, and calls of names that are not callables", () => {
    const inst = new PickleBuilder().proto(2).mark().raw(0x69, ...new TextEncoder().encode("subprocess\nPopen\n")).stop();
    expect(catchClara(() => unpickle(inst.bytes()), "E_PTH_UNSAFE").field).toBe("subprocess.Popen");
    const ext = new PickleBuilder().proto(2).raw(0x82, 1).stop();
    expect(catchClara(() => unpickle(ext.bytes()), "E_PTH_UNSAFE").message).toMatch(/extension code 1/);
    const storageCall = new PickleBuilder().proto(2).global("torch", "FloatStorage").emptyTuple().reduce().stop();
    expect(catchClara(() => unpickle(storageCall.bytes()), "E_PTH").message).toMatch(/torch.FloatStorage, which is a type name here/);
    const newobj = new PickleBuilder().proto(2).global("collections", "OrderedDict").emptyTuple().raw(0x81).stop();
    expect(catchClara(() => unpickle(newobj.bytes()), "E_PTH").message).toMatch(/NEWOBJ/);
    const build = new PickleBuilder().proto(2).emptyList().emptyDict().build().stop();
    expect(catchClara(() => unpickle(build.bytes()), "E_PTH").message).toMatch(/only an OrderedDict/);
  });

  it("refuses persistent ids that are not storages of the four types", () => {
    const pid = (cls: [string, string]) =>
      new PickleBuilder().proto(2).mark().unicode("storage").global(...cls).unicode("0").unicode("cpu").int(4).tuple().binpersid().stop().bytes();
    const f = withPickle("double.pth", pid(["torch", "DoubleStorage"]));
    expect(catchClara(() => PthArchive.open(f), "E_PTH_UNSAFE").field).toBe("torch.DoubleStorage");
    const g = withPickle("nostorage.pth", pid(["torch", "FloatStorage"]));
    const e = catchClara(() => PthArchive.open(g), "E_PTH");
    expect(e.entry).toBe("archive/data/0");
    expect(e.message).toMatch(/lacks member 'archive\/data\/0'/);
  });

  it("reports truncated and malformed pickles", () => {
    const good = new PickleBuilder().proto(2).emptyDict().unicode("abc").int(1).setitem().stop().bytes();
    expect(unpickle(good)).toEqual(new Map([["abc", 1]]));
    expect(catchClara(() => unpickle(good.subarray(0, 6)), "E_PTH").message).toMatch(/truncated/);
    expect(catchClara(() => unpickle(good.subarray(0, good.length - 1)), "E_PTH").message).toMatch(/without a STOP/);
    expect(catchClara(() => unpickle(Uint8Array.from([0x80, 2, 0x68, 9, 0x2e])), "E_PTH").message).toMatch(/memo slot 9/);
    expect(catchClara(() => unpickle(Uint8Array.from([0x80, 2, 0xff])), "E_PTH").message).toMatch(/opcode 0xff/);
  });
});

// ---------------------------------------------------------------------------------------

describe("broken archives", () => {
  let good: Uint8Array;
  const write = (name: string, bytes: Uint8Array) => (fs.writeFileSync(file(name), bytes), file(name));
  beforeAll(() => {
    good = torchSaveBytes(new Map([["w", contiguous("float32", [64, 8], new Float32Array(512).map((_, i) => i))]]));
  });

  it("a truncated file (an interrupted download)", () => {
    for (const cut of [0.3, 0.9, 0.999]) {
      const f = write(`cut-${cut}.pth`, good.subarray(0, Math.floor(good.length * cut)));
      expect(catchClara(() => PthArchive.open(f), "E_PTH").message).toMatch(/truncated/);
    }
    expect(catchClara(() => PthArchive.open(write("tiny.pth", good.subarray(0, 10))), "E_PTH").message).toMatch(/too short/);
  });

  it("garbage bytes, a bare pickle (legacy format) and a missing file", () => {
    const junk = new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff);
    expect(catchClara(() => PthArchive.open(write("junk.pth", junk)), "E_PTH").message).toMatch(/zip/);
    const legacy = new PickleBuilder().proto(2).int(0x1950a86a).stop().bytes();
    expect(catchClara(() => PthArchive.open(write("legacy.pth", Uint8Array.from([...legacy, ...new Uint8Array(40)]))), "E_PTH").message).toMatch(/legacy format/);
    expect(catchClara(() => PthArchive.open(file("nope.pth")), "E_PTH").message).toMatch(/does not exist/);
  });

  it("a corrupt storage fails its CRC, naming the member", () => {
    const bad = good.slice();
    const m = findMember(bad, "archive/data/0");
    bad[m.dataOffset + 100] ^= 0xff;
    const f = write("crc.pth", bad);
    const archive = PthArchive.open(f); // the pickle is intact
    try {
      const e = catchClara(() => archive.stateDict().get("w")!.load(), "E_PTH");
      expect(e.entry).toBe("archive/data/0");
      expect(e.message).toMatch(/CRC-32/);
      // Partial reads (a few rows of a large table) check the whole member too.
      expect(catchClara(() => archive.stateDict().get("w")!.narrow(1, 1).load(), "E_PTH").message).toMatch(/CRC-32/);
    } finally {
      archive.close();
    }
    // With checking off, the damaged value comes through (proof the check is what caught it).
    const unchecked = PthArchive.open(f, { verifyCrc: false });
    expect(unchecked.stateDict().get("w")!.load().data[25]).not.toBe(25);
    unchecked.close();
  });

  it("a corrupt data.pkl, a missing data.pkl, a missing storage, a short storage, big-endian", () => {
    const badPkl = good.slice();
    const p = findMember(badPkl, "archive/data.pkl");
    badPkl[p.dataOffset + 3] ^= 0x55;
    expect(catchClara(() => PthArchive.open(write("badpkl.pth", badPkl)), "E_PTH").entry).toBe("archive/data.pkl");

    const value = new Map([["w", contiguous("float32", [2], Float32Array.from([1, 2]))]]);
    const noPkl = catchClara(() => PthArchive.open(write("nopkl.pth", torchSaveBytes(value, { omit: ["data.pkl"] }))), "E_PTH");
    expect(noPkl.message).toMatch(/has no data\.pkl/);
    const noData = catchClara(() => PthArchive.open(write("nodata.pth", torchSaveBytes(value, { omit: ["data/0"] }))), "E_PTH");
    expect(noData.entry).toBe("archive/data/0");
    expect(noData.message).toMatch(/lacks member 'archive\/data\/0'/);

    const short = new Storage("float32", Float32Array.from([1, 2]));
    const lying = new TensorView(short, 0, [2], [1]);
    // Declare 2 elements but store 1: rebuild the zip with a shortened storage record.
    const { pickle } = pickleCheckpoint(new Map([["w", lying]]));
    const shortZip = zipRecords([
      { name: "archive/data.pkl", data: pickle },
      { name: "archive/data/0", data: new Uint8Array(4) },
    ]);
    expect(catchClara(() => PthArchive.open(write("short.pth", shortZip)), "E_PTH").message).toMatch(/holds 4 bytes but data\.pkl declares 2 float32/);

    const outOfBounds = new TensorView(short, 1, [2], [1]);
    expect(catchClara(() => PthArchive.open(write("oob.pth", torchSaveBytes(new Map([["w", outOfBounds]])))), "E_PTH").message).toMatch(
      /reaches element 2 of storage 'archive\/data\/0', which holds 2/,
    );

    const big = catchClara(() => PthArchive.open(write("big.pth", torchSaveBytes(value, { byteorder: "big" }))), "E_PTH");
    expect(big.message).toMatch(/byteorder 'big'/);
  });
});

// ---------------------------------------------------------------------------------------

describe("Apple's reference checkpoint layout on a tiny CLaRa", () => {
  const n = 4; // doc_max_length 32 / compr_rate 8
  const rank = 4;
  const alpha = 2 * rank; // the reference's LoraConfig
  const docs = [
    "The Eiffel Tower is in Paris and was finished in 1889.",
    "Water boils at one hundred degrees at sea level.",
    "Ada Lovelace wrote the first published algorithm for a machine.",
    "The Nile flows north into the Mediterranean Sea.",
    "Mount Everest is the highest mountain above sea level.",
  ];
  const questions = ["Where is the Eiffel Tower?", "Who wrote the first algorithm?"];
  let base: string;
  let otherBase: string;
  let folder: string;
  /** Our layout, built independently of the code under test: the expected parameters. */
  const ours: NamedTensor[] = [];

  /** model.safetensors of the tiny base, as float32 arrays. */
  function readSafetensors(dir: string): Map<string, { shape: number[]; data: Float32Array }> {
    const buf = fs.readFileSync(path.join(dir, "model.safetensors"));
    const len = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + len).toString("utf8"));
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [k, v] of Object.entries(header as Record<string, { shape: number[]; data_offsets: [number, number] }>)) {
      if (k === "__metadata__") continue;
      const bytes = buf.subarray(8 + len + v.data_offsets[0], 8 + len + v.data_offsets[1]);
      out.set(k, { shape: v.shape, data: new Float32Array(new Uint8Array(bytes).buffer) });
    }
    return out;
  }

  /**
   * Writes the folder: config.json, adapters.pth ({adapter: PEFT state dict}) with encoder_adapter
   * in float32 (keys as get_peft_model_state_dict writes them), decoder_adapter in bfloat16 with
   * PeftModel-style keys (base_model.model. prefix, adapter name in the path) and transposed
   * storages, query_reasoner_adapter in float16 with its lora_A tensors packed in one shared
   * storage; decoder_first_last_layers.pth with the resized embed_tokens (a Parameter at a
   * storage offset) and lm_head (stored transposed).
   */
  function writeReferenceFolder(
    dir: string,
    baseDir: string,
    options: { withQueryReasoner?: boolean; trainingStage?: string; tableCopiesIn?: string[]; tamperCopy?: boolean } = {},
  ): void {
    const rng = new Random(11);
    const weights = readSafetensors(baseDir);
    const cfg = JSON.parse(fs.readFileSync(path.join(baseDir, "config.json"), "utf8"));
    const H = cfg.hidden_size;
    const V = cfg.vocab_size;
    const D = H / cfg.num_attention_heads;
    const dims: Record<string, [number, number]> = {
      "self_attn.q_proj": [H, cfg.num_attention_heads * D],
      "self_attn.k_proj": [H, cfg.num_key_value_heads * D],
      "self_attn.v_proj": [H, cfg.num_key_value_heads * D],
      "self_attn.o_proj": [cfg.num_attention_heads * D, H],
      "mlp.gate_proj": [H, cfg.intermediate_size],
      "mlp.up_proj": [H, cfg.intermediate_size],
      "mlp.down_proj": [cfg.intermediate_size, H],
    };
    ours.length = 0;
    const adapters = new Map<string, PyValue>();
    const specs: [string, string, "float32" | "bfloat16" | "float16"][] = [
      ["encoder_adapter", ADAPTERS.compressor, "float32"],
      ["decoder_adapter", ADAPTERS.generator, "bfloat16"],
      ...(options.withQueryReasoner === false ? [] : [["query_reasoner_adapter", ADAPTERS.queryReasoner, "float16"] as [string, string, "float16"]]),
    ];
    for (const [refName, ourName, dtype] of specs) {
      const sd = new Map<string, PyValue>();
      // query_reasoner: every lora_A of the adapter lives in one storage, at increasing offsets
      const packed: { data: Float32Array; at: number }[] = [];
      let packedLen = 0;
      const pending: [string, number, number, number][] = [];
      for (let layer = 0; layer < cfg.num_hidden_layers; layer++) {
        for (const [linear, [inF, outF]] of Object.entries(dims)) {
          const A = randomF32(rng, rank * inF, 0.5); // PEFT lora_A.weight [r, in]
          const B = randomF32(rng, outF * rank, 0.5); // PEFT lora_B.weight [out, r]
          // what the reader must produce, after the file's dtype round trip
          const round = (x: Float32Array) =>
            dtype === "float32" ? x : dtype === "bfloat16" ? bfloat16ToFloat32(float32ToBfloat16(x)) : float16ToFloat32(float32ToFloat16(x));
          const ourName_ = `model.layers.${layer}.${linear}.lora.${ourName}`;
          ours.push([`${ourName_}.a`, tensor("float32", [inF, rank], transposed(round(A), rank, inF))]);
          ours.push([`${ourName_}.b`, tensor("float32", [rank, outF], transposed(round(B), outF, rank))]);
          const key = (part: "A" | "B") =>
            refName === "decoder_adapter"
              ? `base_model.model.model.layers.${layer}.${linear}.lora_${part}.${refName}.weight`
              : `model.layers.${layer}.${linear}.lora_${part}.weight`;
          if (dtype === "float32") {
            sd.set(key("A"), contiguous("float32", [rank, inF], A));
            sd.set(key("B"), contiguous("float32", [outF, rank], B));
          } else if (dtype === "bfloat16") {
            // stored column-major: the tensor is a transposed view (strides [1, rows])
            sd.set(key("A"), new TensorView(new Storage("bfloat16", float32ToBfloat16(transposed(A, rank, inF))), 0, [rank, inF], [1, rank]));
            sd.set(key("B"), new TensorView(new Storage("bfloat16", float32ToBfloat16(transposed(B, outF, rank))), 0, [outF, rank], [1, outF]));
          } else {
            packed.push({ data: A, at: packedLen });
            pending.push([key("A"), packedLen, rank, inF]);
            packedLen += A.length + 3; // a gap between views
            sd.set(key("A"), null); // placeholder, keeps PEFT's key order
            sd.set(key("B"), contiguous("float16", [outF, rank], float32ToFloat16(B)));
          }
        }
      }
      if (packed.length > 0) {
        const all = new Float32Array(packedLen);
        for (const p of packed) all.set(p.data, p.at);
        const storage = new Storage("float16", float32ToFloat16(all));
        for (const [k, at, r, inF] of pending) sd.set(k, new TensorView(storage, at, [r, inF], [inF, 1]));
      }
      adapters.set(refName, sd);
    }
    if (options.withQueryReasoner === false) {
      // the reference copies the compressor into the query reasoner (stage 3)
      for (const [k, t] of [...ours].filter(([k]) => k.includes(`.lora.${ADAPTERS.compressor}.`))) {
        ours.push([k.replace(`.lora.${ADAPTERS.compressor}.`, `.lora.${ADAPTERS.queryReasoner}.`), t]);
      }
    }
    // Resized tables: the base rows, then n + 3 new rows.
    const embed = weights.get("model.embed_tokens.weight")!;
    const head = weights.get("lm_head.weight")!;
    const newEmbed = randomF32(rng, (n + 3) * H, 0.2);
    const newHead = randomF32(rng, (n + 3) * H, 0.2);
    const Vt = V + n + 3;
    const fullEmbed = new Float32Array(7 + Vt * H);
    fullEmbed.set(embed.data, 7);
    fullEmbed.set(newEmbed, 7 + V * H);
    const fullHead = new Float32Array(Vt * H);
    fullHead.set(head.data, 0);
    fullHead.set(newHead, V * H);
    ours.push(["clara.mem_embeddings", tensor("float32", [n, H], newEmbed.slice(0, n * H))]);
    ours.push(["clara.special_embeddings", tensor("float32", [3, H], newEmbed.slice(n * H))]);
    ours.push(["clara.lm_head_rows", tensor("float32", [n + 3, H], newHead)]);
    const firstLast = new OrderedDict(
      new Map<string, PyValue>([
        ["model.embed_tokens.weight", new TensorView(new Storage("float32", fullEmbed), 7, [Vt, H], [H, 1], { parameter: true, requiresGrad: true })],
        ["lm_head.weight", new TensorView(new Storage("float32", transposed(fullHead, Vt, H)), 0, [Vt, H], [1, Vt])],
      ]),
    );
    // PEFT's save_embedding_layers="auto": adapters made with add_adapter carry the full resized
    // tables in their dict (stage 1: both; stage 2: the fresh generator), under these keys.
    for (const refName of options.tableCopiesIn ?? []) {
      const sd = adapters.get(refName) as Map<string, PyValue>;
      const embedCopy = fullEmbed.slice(7);
      if (options.tamperCopy) embedCopy[3 * H + 1] += 1e-3;
      sd.set("model.embed_tokens.weight", contiguous("float32", [Vt, H], embedCopy));
      sd.set("lm_head.weight", contiguous("float32", [Vt, H], fullHead.slice()));
    }
    fs.mkdirSync(dir, { recursive: true });
    torchSave(path.join(dir, REFERENCE_FILES.adapters), adapters);
    torchSave(path.join(dir, REFERENCE_FILES.embeddings), firstLast);
    fs.writeFileSync(
      path.join(dir, REFERENCE_FILES.config),
      JSON.stringify({
        decoder_model_name: "tiny-llama",
        doc_max_length: 32,
        compr_rate: 8,
        lora: true,
        lora_r: rank,
        training_stage: options.trainingStage ?? "stage2",
        generation_top_k: 2,
        sep: true,
        different_mem_tokens: true,
        optimize_mem_tokens: true,
        model_type: "CLaRa",
      }),
    );
  }

  beforeAll(() => {
    base = makeTinyClaraBase({ merges: 200, tieEmbeddings: false });
    otherBase = makeTinyClaraBase({ merges: 200, tieEmbeddings: false, seed: 3 });
    folder = path.join(work, "CLaRa-tiny-E2E", "compression-8");
    writeReferenceFolder(folder, base);
  });
  afterAll(() => {
    removeDir(base);
    removeDir(otherBase);
  });

  /** Everything the three APIs produce for the fixed docs and questions. */
  async function outputs(clara: ClaraModel) {
    const compressed = await clara.compressDocuments(docs);
    const per = (i: number) => ({ ...compressed, shape: [1, n, compressed.shape[2]], data: compressed.data.slice(i * n * compressed.shape[2], (i + 1) * n * compressed.shape[2]) }) as Tensor;
    const candidates = [compressed, compressed];
    const retrieved = await clara.retrieve(questions, candidates, 2);
    const prompts = questions.map((q) => clara.templates.answerPrompt(q, 1));
    const g = await nativeModel(clara.model).claraGenerate({
      prompt: leftPad(prompts, clara.templates.padId),
      compressed: { ...compressed, shape: [2, n, compressed.shape[2]], data: compressed.data.slice(0, 2 * n * compressed.shape[2]) } as Tensor,
      spec: clara.spec(1),
      generation: { maxTokens: 12, temperature: 0, topP: 1, seed: 0, stopTokens: clara.model.tokenizer.stopTokenIds },
    });
    const texts = await clara.generateFromCompressed(questions, [per(0), per(2)], { maxTokens: 12 });
    // retrieve → generate, as docs/clara-7b.md shows it: selected[i] is [k, n, H], best first
    expect(retrieved.selected[0].shape).toEqual([2, n, compressed.shape[2]]);
    const fromRetrieval = await clara.generateFromCompressed(questions, retrieved.selected, { maxTokens: 12 });
    return { compressed, scores: retrieved.scores, indices: retrieved.indices, tokens: g.tokens, texts, fromRetrieval };
  }

  async function viaOurNpz(): Promise<Awaited<ReturnType<typeof outputs>>> {
    const lora = { rank, alpha, dropout: 0.1 };
    const fresh = await ClaraModel.create(base, { compressionRate: 8, docMaxLength: 32, lora });
    const names = [ADAPTERS.compressor, ADAPTERS.generator, ADAPTERS.queryReasoner];
    await fresh.model.setParameters(ours, names.map((name) => ({ name, ...lora })));
    const npz = file("ours.npz");
    await fresh.save(npz, { stage: "stage3", step: 0, complete: true });
    await fresh.dispose();
    const loaded = await ClaraModel.load(npz);
    try {
      return await outputs(loaded);
    } finally {
      await loaded.dispose();
    }
  }

  it("maps PEFT keys, whatever prefix PEFT gave them", () => {
    expect(parsePeftKey("model.layers.3.self_attn.q_proj.lora_A.weight", "encoder_adapter")).toEqual({ linear: "model.layers.3.self_attn.q_proj", part: "A" });
    expect(parsePeftKey("base_model.model.model.layers.0.mlp.down_proj.lora_B.decoder_adapter.weight", "decoder_adapter")).toEqual({
      linear: "model.layers.0.mlp.down_proj",
      part: "B",
    });
    expect(parsePeftKey("layers.1.mlp.up_proj.lora_A.weight", "x")).toEqual({ linear: "model.layers.1.mlp.up_proj", part: "A" });
    expect(parsePeftKey("model.layers.0.mlp.q_proj.lora_A.weight", "x")).toBeUndefined();
    expect(parsePeftKey("model.layers.0.self_attn.q_proj.lora_magnitude_vector", "x")).toBeUndefined();
    expect(parsePeftKey("lm_head.lora_A.weight", "x")).toBeUndefined();
    const c = readReferenceConfig(folder);
    expect(c).toMatchObject({ compressionRate: 8, docMaxLength: 32, nMem: 4, lora: { rank, alpha, dropout: 0.1 }, trainingStage: "stage2", stage: "stage3" });
  });

  it("gives the same compressed vectors, retrieval scores and greedy tokens as the same weights through our .npz", async () => {
    const expected = await viaOurNpz();
    const warnings: string[] = [];
    const direct = await loadReferenceClara(folder, { basePath: base, onWarning: (m) => warnings.push(m) });
    let got: Awaited<ReturnType<typeof outputs>>;
    try {
      expect((await direct.model.adapters()).map((a) => a.name).sort()).toEqual(["compressor", "generator", "query_reasoner"]);
      expect(await direct.model.adapters()).toContainEqual({ name: "generator", rank, alpha, dropout: expect.closeTo(0.1, 6) });
      // the exact tensors, not only the outputs
      const params = new Map(await direct.model.parameters());
      for (const [k, t] of ours) expect(bytesOf(params.get(k)!).equals(bytesOf(t))).toBe(true);
      got = await outputs(direct);
    } finally {
      await direct.dispose();
    }
    expect(warnings).toEqual([]);
    expect(got.compressed.shape).toEqual([docs.length, n, 32]);
    expect(bytesOf(got.compressed).equals(bytesOf(expected.compressed))).toBe(true);
    expect(got.scores).toEqual(expected.scores);
    expect(got.indices).toEqual(expected.indices);
    expect(got.tokens).toEqual(expected.tokens);
    expect(got.texts).toEqual(expected.texts);
    expect(got.fromRetrieval).toEqual(expected.fromRetrieval);
    expect(got.tokens.some((t) => t.length > 0)).toBe(true);

    // The adapters matter: a fresh model (generator B = 0, other compressor) compresses differently.
    const fresh = await ClaraModel.create(base, { compressionRate: 8, docMaxLength: 32, lora: { rank, alpha, dropout: 0.1 } });
    const freshVectors = await fresh.compressDocuments(docs);
    await fresh.dispose();
    expect(bytesOf(freshVectors).equals(bytesOf(expected.compressed))).toBe(false);

    // clara-train convert writes a checkpoint ClaraModel.load opens, with the same results.
    const out = file("checkpoints/clara-tiny-8.npz");
    const lines: string[] = [];
    const result = convertCommand({ folder, base, out }, (l) => lines.push(l));
    expect(result).toMatchObject({ stage: "stage3", nMem: 4, compressionRate: 8, adapters: ["compressor", "generator", "query_reasoner"] });
    expect(lines.join("\n")).toMatch(/^converted .* \(stage3, ρ=8, 4 memory tokens, adapters compressor, generator, query_reasoner\) into .*clara-tiny-8\.npz \(\d+ tensors\)$/);
    const { metadata, entries } = readCheckpoint(out);
    expect(metadata).toMatchObject({ stage: "stage3", complete: true, clara: { compressionRate: 8, docMaxLength: 32, nMem: 4 } });
    expect(metadata.config).toMatchObject({ convertedFrom: { training_stage: "stage2", adapters: ["encoder_adapter", "decoder_adapter", "query_reasoner_adapter"] } });
    expect(entries.length).toBe(ours.length);
    const converted = await ClaraModel.load(out);
    try {
      const c = await outputs(converted);
      expect(bytesOf(c.compressed).equals(bytesOf(expected.compressed))).toBe(true);
      expect(c.scores).toEqual(expected.scores);
      expect(c.tokens).toEqual(expected.tokens);
    } finally {
      await converted.dispose();
    }
  });

  it("a stage-3 checkpoint without a query reasoner gets a copy of the compressor (the reference's rule)", async () => {
    const dir = path.join(work, "no-qr");
    writeReferenceFolder(dir, base, { withQueryReasoner: false });
    const warnings: string[] = [];
    const out = file("no-qr.npz");
    convertReferenceCheckpoint(dir, base, out, { onWarning: (m) => warnings.push(m) });
    expect(warnings.join("\n")).toMatch(/copy of the compressor/);
    const m = new Map(readCheckpoint(out).entries);
    const q = "model.layers.1.mlp.down_proj.lora.";
    expect(bytesOf(m.get(`${q}query_reasoner.a`)!).equals(bytesOf(m.get(`${q}compressor.a`)!))).toBe(true);
    // a stage-2 (Instruct) folder keeps exactly what it holds: all adapters (pure_inference)
    const instruct = path.join(work, "instruct");
    writeReferenceFolder(instruct, base, { withQueryReasoner: false, trainingStage: "stage1_2" });
    const r = convertReferenceCheckpoint(instruct, base, file("instruct.npz"));
    expect(r).toMatchObject({ stage: "stage2", adapters: ["compressor", "generator"] });
  });

  // Stage-1 (CLaRa-7B-Base) and stage-2 (CLaRa-7B-Instruct) folders as the reference saves them:
  // full embed_tokens / lm_head copies inside the adapters made with add_adapter.
  it.each([
    ["stage1", "stage 1 (Base): both adapters carry the tables", ["encoder_adapter", "decoder_adapter"], "stage1"],
    ["stage1_2", "stage 2 (Instruct): the fresh generator carries them", ["decoder_adapter"], "stage2"],
    ["stage2", "stage 3 (E2E): none carry them", [], "stage3"],
  ])("%s folders convert, load and answer: %s", async (trainingStage, _what, copies, stage) => {
    const dir = path.join(work, `tables-${trainingStage}`);
    writeReferenceFolder(dir, base, { withQueryReasoner: trainingStage === "stage2", trainingStage, tableCopiesIn: copies });
    const warnings: string[] = [];
    const out = file(`tables-${trainingStage}.npz`);
    const r = convertReferenceCheckpoint(dir, base, out, { onWarning: (m) => warnings.push(m) });
    expect(r.stage).toBe(stage);
    expect(warnings).toEqual([]);
    const direct = await loadReferenceClara(dir, { basePath: base });
    const converted = await ClaraModel.load(out);
    try {
      // The tensors are the adapters and rows written, and no table copy is kept.
      const params = new Map(await converted.model.parameters());
      for (const [k, t] of ours) if (params.has(k)) expect(bytesOf(params.get(k)!).equals(bytesOf(t))).toBe(true);
      expect([...params.keys()].some((k) => /embed_tokens|lm_head\.weight/.test(k))).toBe(false);
      const a = await direct.compressDocuments(docs.slice(0, 2));
      const b = await converted.compressDocuments(docs.slice(0, 2));
      expect(bytesOf(a).equals(bytesOf(b))).toBe(true);
      const per = (t: Tensor, i: number) => ({ ...t, shape: [1, n, t.shape[2]], data: t.data.slice(i * n * t.shape[2], (i + 1) * n * t.shape[2]) }) as Tensor;
      const answersDirect = await direct.generateFromCompressed(questions, [per(a, 0), per(a, 1)], { maxTokens: 8 });
      const answersConverted = await converted.generateFromCompressed(questions, [per(b, 0), per(b, 1)], { maxTokens: 8 });
      expect(answersConverted).toEqual(answersDirect);
    } finally {
      await direct.dispose();
      await converted.dispose();
    }
  });

  it("refuses a table copy in adapters.pth that differs from decoder_first_last_layers.pth", () => {
    const dir = path.join(work, "tables-tampered");
    writeReferenceFolder(dir, base, { withQueryReasoner: false, trainingStage: "stage1", tableCopiesIn: ["encoder_adapter"], tamperCopy: true });
    expect(() => convertReferenceCheckpoint(dir, base, file("tampered.npz"))).toThrow(
      expect.objectContaining({ code: "E_CHECKPOINT_MISMATCH", message: expect.stringMatching(/adapter encoder_adapter holds 'model\.embed_tokens\.weight', which differs from embed_tokens\.weight .* \(from row 0\)/) }),
    );
  });

  it("refuses checkpoints made on another base model, and incomplete folders", () => {
    // same vocabulary size, other weights: the sampled base rows differ
    const e = catchClara(() => convertReferenceCheckpoint(folder, otherBase, file("other.npz")), "E_CHECKPOINT_MISMATCH");
    expect(e.message).toMatch(/row \d+ of model\.embed_tokens\.weight differs from the base model's/);
    expect(fs.existsSync(file("other.npz"))).toBe(false);
    // … unless the check is turned off
    convertReferenceCheckpoint(folder, otherBase, file("other.npz"), { checkBase: false });
    // another vocabulary size
    const small = makeTinyClaraBase({ merges: 150, tieEmbeddings: false });
    try {
      const v = catchClara(() => convertReferenceCheckpoint(folder, small, file("small.npz")), "E_CHECKPOINT_MISMATCH");
      expect(v.message).toMatch(/The checkpoint's base vocabulary is \d+, the base model's \d+: another base model/);
    } finally {
      removeDir(small);
    }
    // missing pieces
    const partial = path.join(work, "partial");
    fs.mkdirSync(partial, { recursive: true });
    fs.copyFileSync(path.join(folder, REFERENCE_FILES.config), path.join(partial, REFERENCE_FILES.config));
    expect(catchClara(() => convertReferenceCheckpoint(partial, base, file("p.npz")), "E_CHECKPOINT").file).toBe(path.join(partial, REFERENCE_FILES.adapters));
    // an adapter name the reference does not have
    const odd = path.join(work, "odd");
    fs.mkdirSync(odd, { recursive: true });
    for (const f of Object.values(REFERENCE_FILES)) fs.copyFileSync(path.join(folder, f), path.join(odd, f));
    torchSave(path.join(odd, REFERENCE_FILES.adapters), new Map([["mystery_adapter", new Map()]]));
    expect(catchClara(() => convertReferenceCheckpoint(odd, base, file("o.npz")), "E_CHECKPOINT").message).toMatch(/mystery_adapter/);
    // a config this package cannot honour
    fs.writeFileSync(path.join(odd, REFERENCE_FILES.config), JSON.stringify({ lora: true, compr_rate: 8, doc_max_length: 32, different_mem_tokens: false, training_stage: "stage1" }));
    expect(catchClara(() => readReferenceConfig(odd), "E_CHECKPOINT").field).toBe("different_mem_tokens");
  });
});

// ---------------------------------------------------------------------------------------

describe("the Mistral-7B-Instruct-v0.2 chat template (June 2024)", () => {
  const ORIGINAL_V02 =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}" +
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

  function mistralLikeTokenizer(template?: string): Tokenizer {
    const json = Tokenizer.fromHfDir(makeTinyClaraBaseOnce()).toJSON();
    return new Tokenizer(json, { bos_token: "<s>", eos_token: "</s>", ...(template ? { chat_template: template } : {}) });
  }
  let baseDir: string | undefined;
  const makeTinyClaraBaseOnce = () => (baseDir ??= makeTinyClaraBase({ merges: 50 }));
  afterAll(() => removeDir(baseDir));

  it("renders the prompt and prompt + response as the reference does (spec §1.5)", () => {
    expect(renderMistralPrompt("SYS", "Background:\n<MEM0><SEP>\n\nQuestion:Who?")).toBe("<s> [INST] SYS\n\nBackground:\n<MEM0><SEP>\n\nQuestion:Who? [/INST]");
    expect(renderMistralPrompt("SYS", "USER", "Paris")).toBe("<s> [INST] SYS\n\nUSER [/INST] Paris</s>");
  });

  it("replaces a template that refuses a system turn, or none; keeps one that takes it", () => {
    const old = mistralLikeTokenizer(ORIGINAL_V02);
    expect(templateAcceptsSystemTurn(old)).toBe(false);
    // our generic fallback would fold the system text into the user turn: not what CLaRa-7B saw
    expect(old.applyChatTemplate([{ role: "system", content: "S" }, { role: "user", content: "U" }], { addGenerationPrompt: true })).toBe("<s>[INST] S\nU [/INST]");
    expect(installMistralTemplate(old)).toBe(true);
    expect(old.chatTemplate).toBe(MISTRAL_V02_CHAT_TEMPLATE);
    const messages = [
      { role: "system", content: "S" },
      { role: "user", content: "U" },
    ];
    expect(old.applyChatTemplate(messages, { addGenerationPrompt: true })).toBe("<s> [INST] S\n\nU [/INST]");
    expect(old.applyChatTemplate([...messages, { role: "assistant", content: "A" }])).toBe("<s> [INST] S\n\nU [/INST] A</s>");

    const none = mistralLikeTokenizer();
    expect(installMistralTemplate(none)).toBe(true);
    const current = mistralLikeTokenizer(MISTRAL_V02_CHAT_TEMPLATE);
    expect(installMistralTemplate(current)).toBe(false);
    const chatml = Tokenizer.fromHfDir(makeTinyClaraBaseOnce());
    expect(installMistralTemplate(chatml)).toBe(false);
    expect(installMistralTemplate(chatml, { force: true })).toBe(true);
  });

  it("a Mistral base with the original template gets the reference's prompts from ClaraModel", async () => {
    // the tiny base relabelled as a Mistral with the original v0.2 template
    const dir = makeTinyClaraBase({ merges: 200 });
    try {
      const cfgFile = path.join(dir, "config.json");
      fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, "utf8")), model_type: "mistral" }));
      const tokFile = path.join(dir, "tokenizer_config.json");
      fs.writeFileSync(tokFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(tokFile, "utf8")), chat_template: ORIGINAL_V02 }));
      const clara = await ClaraModel.create(dir, { compressionRate: 8, docMaxLength: 32 });
      try {
        const tok = clara.model.tokenizer;
        const slots = "<MEM0><MEM1><MEM2><MEM3><SEP>";
        const expected = renderMistralPrompt(SYSTEM_PROMPTS.answer, `Background:\n${slots}\n\nQuestion:Who?`, undefined, { bos: "<|im_start|>", eos: "<|im_end|>" });
        expect(expected.startsWith("<|im_start|> [INST] You are a helpful assistant.")).toBe(true);
        expect(tok.decode(clara.templates.answerPrompt("Who?", 1))).toBe(expected);
        const ex = clara.templates.answerExample("Who?", "Ada", 1, 2048);
        expect(tok.decode(ex.tokens.filter((_, i) => ex.lossMask[i] === 1))).toBe(" Ada<|im_end|>");
      } finally {
        await clara.dispose();
      }
    } finally {
      removeDir(dir);
    }
  });
});
