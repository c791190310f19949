// The package's public surface: the runtime names of the main entry and of each subpath in
// package.json "exports", exactly. Adding or removing a name here is a change of the API, made on
// purpose. The built package is checked too (as users get it, through "exports"), and requiring
// the main entry must not load the PDF and chart stack (issue 20, point 5).

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const REPO = path.resolve(__dirname, "..");
const NAME = "@clara/mlx";

/** Each entry point: its subpath, the source it is compiled from, and its runtime names. */
const ENTRIES: Array<{ subpath: string; source: string; names: string[] }> = [
  {
    subpath: ".",
    source: "lib/index.ts",
    names: [
      "ClaraError",
      "ClaraIndex",
      "ClaraModel",
      "Model",
      "Stage1Trainer",
      "Stage2Trainer",
      "Stage3Trainer",
      "loadModel",
      "metrics",
      "readCheckpoint",
      "readEndToEndRecords",
      "readInstructionRecords",
      "readPretrainRecords",
    ],
  },
  {
    subpath: "./data",
    source: "lib/data/index.ts",
    names: ["deriveEndToEndRecords", "deriveInstructionRecords", "readEndToEndRecords", "readInstructionRecords", "readPretrainRecords"],
  },
  {
    subpath: "./eval",
    source: "lib/eval/index.ts",
    names: [
      "Bm25",
      "answerFromCompressed",
      "answerFromCompressedDocs",
      "answerFromText",
      "compressDistinct",
      "extractPdf",
      "extractionQuality",
      "heldOutProbes",
      "loadEvaluations",
      "makeQaSet",
      "meanSe",
      "metrics",
      "pairedGap",
      "pdfChunks",
      "readQaSet",
      "runEvaluationSuite",
      "writeEvaluationReport",
      "writeQaSet",
    ],
  },
  {
    subpath: "./io",
    source: "lib/io/index.ts",
    names: ["convertReferenceCheckpoint", "loadReferenceClara", "readCheckpoint", "readNpz", "writeNpz"],
  },
  {
    subpath: "./model",
    source: "lib/model/index.ts",
    names: ["ADAPTERS", "CLARA_DEFAULTS", "Tokenizer"],
  },
  {
    subpath: "./runtime",
    source: "lib/runtime.ts",
    names: ["backend", "compute", "device", "matmulBenchmark", "memoryInfo", "mlxVersion", "packageRoot", "runtimeInfo", "tensor"],
  },
];

const pkg = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as {
  name: string;
  main: string;
  types: string;
  exports: Record<string, string | { types: string; default: string }>;
  typesVersions: Record<string, Record<string, string[]>>;
};
const compiled = (source: string, ext: ".js" | ".d.ts") => "./" + path.posix.join("dist", source.replace(/\.ts$/, ext));
const specifier = (subpath: string) => (subpath === "." ? NAME : `${NAME}/${subpath.slice(2)}`);

/** Runs a script in a fresh Node process at the package root (where `@clara/mlx` resolves to itself). */
function node(script: string): unknown {
  return JSON.parse(execFileSync(process.execPath, ["-e", script], { cwd: REPO, encoding: "utf8" }));
}

describe.each(ENTRIES)("$subpath", ({ subpath, source, names }) => {
  it("exports exactly its runtime names (from the sources)", () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    expect(Object.keys(require(path.join(REPO, source))).sort()).toEqual([...names].sort());
  });

  it("is in package.json exports, with types, compiled from its source", () => {
    expect(pkg.exports[subpath]).toEqual({ types: compiled(source, ".d.ts"), default: compiled(source, ".js") });
    if (subpath === ".") {
      expect("./" + pkg.main).toBe(compiled(source, ".js"));
      expect("./" + pkg.types).toBe(compiled(source, ".d.ts"));
    } else {
      // For TypeScript's older "node" resolution, which does not read "exports".
      expect(pkg.typesVersions["*"][subpath.slice(2)]).toEqual([compiled(source, ".d.ts").slice(2)]);
    }
  });
});

it("package.json exports the entries above and package.json, nothing else", () => {
  expect(pkg.name).toBe(NAME);
  expect(Object.keys(pkg.exports).sort()).toEqual([...ENTRIES.map((e) => e.subpath), "./package.json"].sort());
  expect(Object.keys(pkg.typesVersions["*"]).sort()).toEqual(ENTRIES.filter((e) => e.subpath !== ".").map((e) => e.subpath.slice(2)).sort());
});

describe("the built package, through its exports", () => {
  beforeAll(() => {
    if (!fs.existsSync(path.join(REPO, "dist", "lib", "index.js"))) throw new Error("run `npm run build` first: this test loads dist/");
  });

  it("resolves each subpath and package.json by the package's name, with the same names, and no deep path", () => {
    const got = node(`
      const out = {};
      for (const s of ${JSON.stringify(ENTRIES.map((e) => specifier(e.subpath)))}) {
        const file = require.resolve(s);
        out[s] = { file, names: Object.keys(require(s)).sort() };
      }
      out.pkg = require.resolve("${NAME}/package.json");
      try { require.resolve("${NAME}/dist/lib/native.js"); out.deep = "resolved"; } catch (e) { out.deep = e.code; }
      console.log(JSON.stringify(out));
    `) as Record<string, { file: string; names: string[] }> & { pkg: string; deep: string };
    for (const e of ENTRIES) {
      const s = specifier(e.subpath);
      expect({ s, ...got[s] }).toEqual({ s, file: path.join(REPO, compiled(e.source, ".js")), names: [...e.names].sort() });
      expect(fs.existsSync(path.join(REPO, compiled(e.source, ".d.ts")))).toBe(true);
    }
    expect(got.pkg).toBe(path.join(REPO, "package.json"));
    expect(got.deep).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED");
  });

  it("requiring the main entry loads no PDF, chart or evaluation code", () => {
    const loaded = node(`require(${JSON.stringify(path.join(REPO, "dist", "lib"))}); console.log(JSON.stringify(Object.keys(require.cache)));`) as string[];
    const rel = loaded.map((f) => path.relative(REPO, f).split(path.sep).join("/"));
    expect(rel).toContain("dist/lib/index.js");
    expect(rel.filter((f) => /node_modules\/(pdfjs-dist|@napi-rs\/canvas|vega|vega-lite|@resvg)\//.test(f))).toEqual([]);
    // lib/eval's metrics are the one evaluation module the main entry exports.
    expect(rel.filter((f) => /^dist\/lib\/(eval|report)\//.test(f) && f !== "dist/lib/eval/metrics.js")).toEqual([]);
  });

  it("Model keeps its native handle to itself", () => {
    const { Model } = node(`const { Model } = require("${NAME}"); console.log(JSON.stringify({ Model: Object.getOwnPropertyNames(Model.prototype) }));`) as { Model: string[] };
    expect(Model).not.toContain("handle");
    expect(Model).toContain("generate");
  });
});
