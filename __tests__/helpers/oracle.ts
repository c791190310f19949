// The Python oracles for tests: the interpreter (CLARA_PYTHON from the jest global set-up, else
// .venv/, else python3), require-or-skip logic (CLARA_REQUIRE_ORACLE=1 turns a missing oracle
// into failures), and wrappers around __tests__/oracle/mlx_lm_oracle.py.

import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { decodeNpy } from "../../lib/io/npy";

export const REPO = path.resolve(__dirname, "..", "..");
export const MLX_LM_ORACLE = path.join(REPO, "__tests__", "oracle", "mlx_lm_oracle.py");

export const PYTHON: string =
  process.env.CLARA_PYTHON ??
  [path.join(REPO, ".venv", "bin", "python"), path.join(REPO, ".venv", "Scripts", "python.exe")].find((p) =>
    fs.existsSync(p),
  ) ??
  "python3";

const importable = new Map<string, boolean>();

/** Whether PYTHON imports every one of `modules` (cached per process). */
export function pythonHas(...modules: string[]): boolean {
  const key = modules.join(",");
  let ok = importable.get(key);
  if (ok === undefined) {
    ok = spawnSync(PYTHON, ["-c", modules.map((m) => `import ${m}`).join("; ")], { stdio: "ignore" }).status === 0;
    importable.set(key, ok);
  }
  return ok;
}

/** Why the oracle is missing, for skip and failure messages. */
export function missingReason(modules: string[]): string {
  const why = process.env.CLARA_PYTHON_MISSING ? ` (${process.env.CLARA_PYTHON_MISSING})` : "";
  return `${PYTHON} cannot import ${modules.join(", ")}${why}`;
}

export const requireOracle = (): boolean => process.env.CLARA_REQUIRE_ORACLE === "1";

export type TestFn = (name: string, fn?: jest.ProvidesCallback, timeout?: number) => void;

/**
 * `test` when PYTHON has `modules`; otherwise `test.skip`, or, under CLARA_REQUIRE_ORACLE=1, a
 * test that fails saying what is missing.
 */
export function oracleTest(...modules: string[]): TestFn {
  if (pythonHas(...modules)) return test;
  if (requireOracle())
    return (name) =>
      test(name, () => {
        throw new Error(`${missingReason(modules)}, and CLARA_REQUIRE_ORACLE=1 requires it`);
      });
  return test.skip;
}

/** The mlx-lm oracle's requirements. */
export const MLX_LM_MODULES = ["numpy", "mlx.core", "mlx_lm"];
export const hasMlxLm = (): boolean => pythonHas(...MLX_LM_MODULES);

/** Runs PYTHON with `args` without blocking the event loop; rejects with stderr on failure. */
export function runPython(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, args, { cwd: options.cwd ?? REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 110_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${PYTHON} ${args.join(" ")} failed (${code ?? signal}):\n${stderr}`));
    });
  });
}

/** `python -c script args...` */
export function pythonEval(script: string, ...args: string[]): Promise<string> {
  return runPython(["-c", script, ...args]);
}

export function runMlxLmOracle(args: string[]): Promise<string> {
  return runPython([MLX_LM_ORACLE, ...args]);
}

/** A fresh folder under os.tmpdir(); remove it with removeDir. */
export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeDir(dir: string | undefined): void {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}

export type TinyModelType = "llama" | "mistral" | "qwen2" | "qwen3";

export interface TinyModelOptions {
  tie?: boolean;
  ropeScaling?: "llama3" | "linear";
  /** llama only: biases on q/k/v/o_proj (HF attention_bias). */
  attentionBias?: boolean;
  seed?: number;
  /** Leave this tensor out of model.safetensors. */
  dropTensor?: string;
}

/** Writes a tiny random mlx-lm model as a Hugging Face folder `out`; returns `out`. */
export async function makeTinyModel(type: TinyModelType, out: string, options: TinyModelOptions = {}): Promise<string> {
  const args = ["make-tiny", "--type", type, "--out", out];
  if (options.tie) args.push("--tie");
  if (options.ropeScaling) args.push("--rope-scaling", options.ropeScaling);
  if (options.attentionBias) args.push("--attention-bias");
  if (options.seed !== undefined) args.push("--seed", String(options.seed));
  if (options.dropTensor) args.push("--drop-tensor", options.dropTensor);
  await runMlxLmOracle(args);
  return out;
}

let counter = 0;
function scratch(workDir: string, stem: string): string {
  return path.join(workDir, `${stem}-${process.pid}-${++counter}`);
}

/**
 * mlx-lm's float32 logits of each sequence run alone: one Float32Array of [length, vocab] per
 * sequence. `workDir` holds the exchange files.
 */
export async function oracleLogits(model: string, sequences: number[][], workDir: string): Promise<Float32Array[]> {
  const base = scratch(workDir, "logits");
  fs.writeFileSync(`${base}.json`, JSON.stringify(sequences));
  await runMlxLmOracle(["logits", "--model", model, "--ids", `${base}.json`, "--out", `${base}.npy`]);
  const t = decodeNpy(new Uint8Array(fs.readFileSync(`${base}.npy`)), { file: `${base}.npy` });
  const total = sequences.reduce((n, s) => n + s.length, 0);
  if (t.dtype !== "float32" || t.shape.length !== 2 || t.shape[0] !== total) {
    throw new Error(`oracle logits: expected float32 [${total}, V], got ${t.dtype} [${t.shape}]`);
  }
  const V = t.shape[1];
  const data = t.data as Float32Array;
  const out: Float32Array[] = [];
  let row = 0;
  for (const s of sequences) {
    out.push(data.slice(row * V, (row + s.length) * V));
    row += s.length;
  }
  return out;
}

/** mlx-lm's greedy continuation (maxTokens tokens, no stop tokens) of each prompt. */
export async function oracleGenerate(model: string, prompts: number[][], maxTokens: number, workDir: string): Promise<number[][]> {
  const base = scratch(workDir, "generate");
  fs.writeFileSync(`${base}.json`, JSON.stringify(prompts));
  await runMlxLmOracle(["generate", "--model", model, "--ids", `${base}.json`, "--max-tokens", String(maxTokens), "--out", `${base}.out.json`]);
  return JSON.parse(fs.readFileSync(`${base}.out.json`, "utf8"));
}

/** max |a - b| / max |b|: the relative error of `actual` against `expected`. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  if (Number.isNaN(diff)) return NaN;
  return scale === 0 ? diff : diff / scale;
}
