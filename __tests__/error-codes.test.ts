// Every error code the package declares is raised somewhere a test can see: the codes other
// suites do not reach are exercised here (the native lifecycle and the addon's load), and a test
// reads lib/errors.ts so that a new code without a test fails the suite.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError, loadModel } from "../lib";
import { nativeModel } from "../lib/model/model";
import { tensor } from "../lib/tensor";
import { makeTinyClaraBase, REPO } from "./helpers/tiny-clara";

let base: string;
beforeAll(() => {
  base = makeTinyClaraBase();
});
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ClaraError);
    return (e as ClaraError).code;
  }
  throw new Error("expected a rejection");
}

it("E_NO_TRAINER, E_OPTIMIZER_STATE, E_PARAMETER_SHAPE, E_DISPOSED: the native lifecycle's misuse is named", async () => {
  const model = await loadModel(base);
  await model.addAdapter("a", { rank: 2, alpha: 4, dropout: 0, seed: 1 });
  expect(await code(model.optimizerState())).toBe("E_NO_TRAINER");
  await model.createTrainer({ trainable: ["a"], lr: 1e-3 });
  const state = await model.optimizerState();
  expect(await code(nativeModel(model).setOptimizerState({ ...state, m: state.m.slice(1), v: state.v.slice(1) }))).toBe("E_OPTIMIZER_STATE");
  const [name, t] = (await model.parameters())[0];
  expect(await code(model.setParameters([[name, tensor("float32", [t.shape[0] + 1, t.shape[1]], new Float32Array((t.shape[0] + 1) * t.shape[1]))]]))).toBe("E_PARAMETER_SHAPE");
  await model.dispose();
  expect(await code(model.logits([[1, 2, 3]]))).toBe("E_DISPOSED");
});

it("the binding holds no defaults: a setting lib/ failed to send is named, not filled in", async () => {
  const model = await loadModel(base);
  try {
    const handle = nativeModel(model);
    const batch = { ids: tensor("int32", [1, 3], new Int32Array([1, 2, 3])) };
    const full = { maxTokens: 2, temperature: 0, topP: 1, seed: 0, stopTokens: [] };
    expect((await handle.generate(batch, full)).tokens[0]).toHaveLength(2);
    for (const missing of ["maxTokens", "temperature", "topP", "seed"] as const) {
      const partial: Record<string, unknown> = { ...full };
      delete partial[missing];
      // Argument errors are thrown while the call converts its options, before any promise.
      const err = await Promise.resolve()
        .then(() => handle.generate(batch, partial as typeof full))
        .then(
          () => null,
          (e: ClaraError) => e,
        );
      expect(err?.code).toBe("E_INVALID_ARGUMENT");
      expect(err?.message).toMatch(new RegExp(`Missing ${missing}`));
    }
    const lora = { rank: 2, alpha: 4, dropout: 0, seed: 1 };
    const { alpha: _alpha, ...withoutAlpha } = lora;
    expect(await code(Promise.resolve().then(() => handle.addAdapter("b", withoutAlpha as typeof lora)))).toBe("E_INVALID_ARGUMENT");
    await handle.addAdapter("b", lora);
    const trainer = { trainable: ["b"], adamw: { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 }, schedule: { kind: "constant", lr: 1e-3, minLrRatio: 0.1, warmupSteps: 0, totalSteps: 1 }, maxGradNorm: 1, lanes: 1, gradCheckpoint: false };
    const { lanes: _lanes, ...withoutLanes } = trainer;
    expect(await code(Promise.resolve().then(() => handle.createTrainer(withoutLanes as unknown as Parameters<typeof handle.createTrainer>[0])))).toBe(
      "E_INVALID_ARGUMENT",
    );
    expect((await handle.createTrainer(trainer as unknown as Parameters<typeof handle.createTrainer>[0])).tensors).toBeGreaterThan(0);
  } finally {
    await model.dispose();
  }
});

it("E_NATIVE_LOAD: a package without its built addon says how to build it", () => {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), "clara-noaddon-"));
  fs.cpSync(path.join(REPO, "dist", "lib"), path.join(copy, "dist", "lib"), { recursive: true });
  const script = `try { require(${JSON.stringify(path.join(copy, "dist", "lib", "native.js"))}).native(); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
  const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", env: { ...process.env, NODE_PATH: path.join(REPO, "node_modules") } });
  fs.rmSync(copy, { recursive: true, force: true });
  const out = JSON.parse(r.stdout.trim());
  expect(out.code).toBe("E_NATIVE_LOAD");
  expect(out.message).toMatch(/Run `npm install`/);
});

it("every declared error code is raised by some test", () => {
  const declared = [...fs.readFileSync(path.join(REPO, "lib", "errors.ts"), "utf8").matchAll(/\|\s*"(E_[A-Z_]+)"/g)].map((m) => m[1]);
  expect(declared.length).toBeGreaterThan(20);
  const tests = fs
    .readdirSync(path.join(REPO, "__tests__"), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith(".test.ts"))
    .map((f) => fs.readFileSync(path.join(REPO, "__tests__", f), "utf8"))
    .join("\n");
  // E_NATIVE wraps MLX's own exceptions and E_MEMORY guards the index against MLX's memory limit;
  // both are listed where they are checked: see the suites that name them.
  const untested = declared.filter((c) => !tests.includes(`"${c}"`) && !tests.includes(`${c}:`) && !tests.includes(`${c},`));
  expect(untested).toEqual([]);
});
