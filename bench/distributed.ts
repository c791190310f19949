// bench:distributed — stage-1 updates per second in 1 process and in 2 ranks over MLX's ring
// backend on loopback, and the gradient all-reduce time per update. Both ranks share this
// machine's cores, so this measures the overhead of data parallelism, not a speed-up.
// Writes results/bench/distributed.json.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readPretrainRecords, Stage1Trainer } from "../lib";
import { packageRoot } from "../lib/runtime";
import { launch } from "../tools/launch";
import { writeTinyModel } from "../tools/tiny-model";
import { machine, writeBenchResult } from "./machine";

const STEPS = 6;

async function rank(modelDir: string, out: string) {
  const records = readPretrainRecords(path.join(packageRoot(), "example", "pretrain.jsonl")).records;
  const steps: Array<{ seconds: number; allreduce: number }> = [];
  const t = await Stage1Trainer.create(modelDir, records, {
    compressionRate: 8, docMaxLength: 128, seed: 1, out, batchSize: 8, microBatchSize: 2, maxSteps: STEPS, lr: 1e-4,
    onEvent: (e) => {
      if (e.type === "step") steps.push({ seconds: e.stepSeconds, allreduce: e.allreduceSeconds });
    },
  });
  await t.run();
  await t.clara.dispose();
  if ((process.env.MLX_RANK ?? "0") === "0") console.log(JSON.stringify(steps.slice(1)));
}

function runChild(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (c) => (c === 0 ? resolve(out) : reject(new Error(`exit ${c}`))));
  });
}

async function main() {
  if (process.argv[2] === "--rank") return rank(process.argv[3], process.argv[4]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-dp-bench-"));
  const records = readPretrainRecords(path.join(packageRoot(), "example", "pretrain.jsonl")).records;
  writeTinyModel(path.join(dir, "model"), records.map((r) => r.doc), { hiddenSize: 256, layers: 4, heads: 4, kvHeads: 2, merges: 800 });
  const single = JSON.parse((await runChild([__filename, "--rank", path.join(dir, "model"), path.join(dir, "one.npz")])).trim().split("\n").pop()!);
  let out = "";
  const code = await new Promise<number>((resolve) => {
    const p = spawn(process.execPath, ["-e", `require(${JSON.stringify(path.join(__dirname, "..", "tools", "launch.js"))}).launch({nproc: 2, command: [process.execPath, ${JSON.stringify(__filename)}, "--rank", ${JSON.stringify(path.join(dir, "model"))}, ${JSON.stringify(path.join(dir, "two.npz"))}]}).then((c) => process.exit(c))`], { stdio: ["ignore", "pipe", "inherit"] });
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`2-rank run failed (${code})`);
  const two = JSON.parse(out.trim().split("\n").pop()!);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const record = {
    bench: "distributed",
    machine: await machine(),
    model: "tiny llama (H 256, 4 layers) written by tools/tiny-model.ts",
    globalBatch: 8,
    microBatch: 2,
    backend: "ring over loopback",
    oneProcess: { stepsPerSecond: +(1 / mean(single.map((s: { seconds: number }) => s.seconds))).toFixed(3) },
    twoRanks: {
      stepsPerSecond: +(1 / mean(two.map((s: { seconds: number }) => s.seconds))).toFixed(3),
      allreduceMsPerStep: +(1000 * mean(two.map((s: { allreduce: number }) => s.allreduce))).toFixed(2),
    },
    note: "both ranks share this machine's 2 cores: this measures data-parallel overhead, not speed-up",
  };
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify(record, null, 2));
  console.log(`wrote ${writeBenchResult("distributed", record)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
