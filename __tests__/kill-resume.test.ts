// No kill at any moment leaves a run that cannot resume: a stage-1 run that checkpoints after
// every update is killed with SIGKILL at random moments (in the middle of updates, of the weights
// write and of the optimizer write alike) and restarted with resume until it finishes; its final
// weights must equal an uninterrupted run's bit for bit. And the checkpoint unit itself: an
// optimizer file written for a commit that never happened is ignored and later removed, as are
// temp files of killed writes.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readCheckpoint } from "../lib";
import { optimizerFiles, readOptimizerState, writeTrainingCheckpoint, type CheckpointMetadata } from "../lib/io/checkpoint";
import { tensor } from "../lib/tensor";
import { makeTinyClaraBase, REPO } from "./helpers/tiny-clara";

const FIXTURE = path.join(REPO, "__tests__", "fixtures", "kill-resume.js");
const STEPS = 24;

let base: string;
let work: string;
beforeAll(() => {
  // The fixture runs dist/, which npm test builds before jest starts.
  expect(fs.existsSync(path.join(REPO, "dist", "lib", "index.js"))).toBe(true);
  base = makeTinyClaraBase();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-kill-"));
});
afterAll(() => {
  for (const d of [base, work]) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * Runs the fixture. With `killAfterStepMs`, kills it with SIGKILL that many ms after its first
 * "step" line, i.e. inside the checkpoint write that follows or the next update. Resolves with
 * whether it finished, and the times of its step lines.
 */
function runOnce(out: string, killAfterStepMs?: number): Promise<{ finished: boolean; stderr: string; stepTimes: number[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FIXTURE, base, out, String(STEPS)], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const stepTimes: number[] = [];
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on("data", (d) => {
      stdout += d;
      for (const _ of String(d).match(/^step \d+$/gm) ?? []) stepTimes.push(performance.now());
      if (killAfterStepMs !== undefined && timer === undefined && stepTimes.length > 0) timer = setTimeout(() => child.kill("SIGKILL"), killAfterStepMs);
    });
    child.stderr.on("data", (d) => (stderr += d));
    child.on("exit", () => {
      clearTimeout(timer);
      resolve({ finished: stdout.includes("done"), stderr, stepTimes });
    });
  });
}

const weights = (file: string) => new Map(readCheckpoint(file).entries.map(([k, t]) => [k, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString("base64")]));

it("SIGKILL at random moments of a checkpointing run: resume always works and ends bit-identical", async () => {
  const straight = path.join(work, "straight", "c.npz");
  const reference = await runOnce(straight);
  expect(reference.finished).toBe(true);
  const t = reference.stepTimes;
  const stepMs = (t[t.length - 1] - t[0]) / (t.length - 1);

  const killed = path.join(work, "killed", "c.npz");
  // A fixed sequence of kill times within about one update (and its write) after a step.
  let seed = 12345;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let kills = 0;
  let midWrite = 0;
  for (let attempt = 0; attempt < 3 * STEPS; attempt++) {
    const r = await runOnce(killed, next() * 1.5 * stepMs);
    if (r.finished) break;
    if (r.stderr.trim()) throw new Error(`the run failed instead of resuming after ${kills} kills:\n${r.stderr}`);
    kills++;
    // Left behind by a kill inside a write: a temp file, or an optimizer file not yet committed.
    const dir = path.dirname(killed);
    if (fs.readdirSync(dir).some((f) => f.includes(".tmp-")) || optimizerFiles(killed).length > 1) midWrite++;
  }
  expect(readCheckpoint(killed).metadata.complete).toBe(true);
  console.log(`kill -9: ${kills} kills (${midWrite} left a write unfinished) over a ${STEPS}-update run, ${stepMs.toFixed(0)} ms per update`);
  expect(kills).toBeGreaterThanOrEqual(STEPS / 3);
  expect(weights(killed)).toEqual(weights(straight));
  // No temp files or orphan optimizer files are left behind.
  expect(fs.readdirSync(path.dirname(killed)).filter((f) => f.includes(".tmp-"))).toEqual([]);
  expect(optimizerFiles(killed)).toHaveLength(1);
}, 8 * 60_000);

const metadata = (step: number) =>
  ({
    format: "clara-mlx-checkpoint",
    version: 1,
    stage: "stage1",
    step,
    complete: false,
    base: { source: "x", fingerprint: "f", modelType: "llama" },
    clara: { compressionRate: 1, docMaxLength: 1, nMem: 1, templateVersion: 1 },
    adapters: [],
    createdAt: "",
  }) as CheckpointMetadata;
const one = (v: number) => tensor("float32", [1], new Float32Array([v]));
const state = (step: number, v: number): Parameters<typeof writeTrainingCheckpoint>[3] => ({ step, m: [["w", one(v)]], v: [["w", one(v)]] });

it("an optimizer file of a commit that never happened is ignored, then removed; stale temp files are removed", () => {
  const dir = fs.mkdtempSync(path.join(work, "unit-"));
  const file = path.join(dir, "c.npz");
  writeTrainingCheckpoint(file, [["w", one(1)]], metadata(1), state(1, 1));
  // Killed after writing step 2's optimizer file, before the checkpoint's rename; and mid-write.
  fs.writeFileSync(path.join(dir, "c.optim-0123456789abcdef.npz"), "partial");
  fs.writeFileSync(path.join(dir, ".c.npz.tmp-999999999-abcdef"), "partial");
  fs.writeFileSync(path.join(dir, ".c.optim-0123456789abcdef.npz.tmp-999999999-abcdef"), "partial");
  // Another file's temp, and a live process's, are not ours to remove.
  fs.writeFileSync(path.join(dir, ".other.npz.tmp-999999999-abcdef"), "partial");
  fs.writeFileSync(path.join(dir, `.c.npz.tmp-${process.pid}-abcdef`), "partial");
  expect(readOptimizerState(file, readCheckpoint(file).metadata).step).toBe(1);
  writeTrainingCheckpoint(file, [["w", one(2)]], metadata(2), state(2, 2));
  expect(optimizerFiles(file)).toHaveLength(1);
  expect(readOptimizerState(file, readCheckpoint(file).metadata).step).toBe(2);
  expect(fs.readdirSync(dir).filter((f) => f.includes(".tmp-")).sort()).toEqual([`.c.npz.tmp-${process.pid}-abcdef`, ".other.npz.tmp-999999999-abcdef"]);
});

it("refuses an optimizer file that is not the one the checkpoint was saved with", () => {
  const dir = fs.mkdtempSync(path.join(work, "hash-"));
  const file = path.join(dir, "c.npz");
  writeTrainingCheckpoint(file, [["w", one(1)]], metadata(1), state(1, 1));
  const opt = optimizerFiles(file)[0];
  const bytes = fs.readFileSync(opt);
  bytes[bytes.length - 30] ^= 0xff;
  fs.writeFileSync(opt, bytes);
  expect(() => readOptimizerState(file, readCheckpoint(file).metadata)).toThrow(/SHA-256 differs/);
});
