// bench:step — forward+backward+AdamW of a LoRA step (rank 16, dropout 0.1, every linear but
// lm_head) on SmolLM2-135M-Instruct (or a tiny model when it is absent), batch 4 × 512 tokens,
// fp32 on this machine's MLX device; next to the same step in Python mlx-lm (bench/peers/
// mlx_lm_step.py) run in the same invocation, and as a fraction of the fp32 matmul peak
// measured in the same process. Writes results/bench/step.json.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadModel } from "../lib";
import { matmulBenchmark, memoryInfo, packageRoot } from "../lib/runtime";
import { Random } from "../lib/data/random";
import { writeTinyModel } from "../tools/tiny-model";
import { llamaFlops } from "./flops";
import { machine, writeBenchResult } from "./machine";

const BATCH = Number(process.env.BENCH_BATCH ?? 4);
const SEQ = Number(process.env.BENCH_SEQ ?? 512);
const STEPS = Number(process.env.BENCH_STEPS ?? 3);
const RANK = 16;

function python(): string | null {
  const venv = path.join(packageRoot(), ".venv", "bin", "python");
  const exe = process.env.CLARA_PYTHON ?? (fs.existsSync(venv) ? venv : "python3");
  return spawnSync(exe, ["-c", "import mlx_lm"]).status === 0 ? exe : null;
}

/**
 * Python MLX's wheel loads its grafted reference BLAS (~5 GFLOP/s); a fair peer runs on the same
 * OpenBLAS as ours, so the peer preloads the library our install resolved.
 */
export function peerEnv(): NodeJS.ProcessEnv {
  const setup = path.join(packageRoot(), "build", "clara-setup.json");
  const openblas = fs.existsSync(setup) ? JSON.parse(fs.readFileSync(setup, "utf8")).blas?.openblas : null;
  return openblas ? { ...process.env, LD_PRELOAD: openblas } : process.env;
}

async function main() {
  const smol = path.join(packageRoot(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  let modelPath = smol;
  if (!fs.existsSync(smol)) {
    modelPath = fs.mkdtempSync(path.join(os.tmpdir(), "clara-bench-"));
    writeTinyModel(modelPath, ["a tiny corpus for a tiny benchmark model"], { hiddenSize: 256, layers: 4, heads: 4, kvHeads: 2, merges: 50 });
  }
  const peak = Math.max(...(await Promise.all([1024, 2048].map(async (n) => (await matmulBenchmark({ n, iterations: 5 })).bestGflops))));
  const model = await loadModel(modelPath);
  await model.addAdapter("lora", { rank: RANK, alpha: 2 * RANK, dropout: 0.1, seed: 0 });
  await model.createTrainer({ trainable: ["lora"], lr: 1e-4, schedule: "constant" });
  const rng = new Random(0);
  const examples = Array.from({ length: BATCH }, () => ({ tokens: Array.from({ length: SEQ }, () => rng.int(model.config.vocab_size)) }));
  const seconds: number[] = [];
  await memoryInfo(true);
  for (let i = 0; i < 1 + STEPS; i++) {
    const t0 = performance.now();
    const r = await model.trainStep([examples], { adapter: "lora", seed: 0 });
    if (!Number.isFinite(r.loss)) throw new Error(`non-finite loss ${r.loss}`);
    if (i > 0) seconds.push((performance.now() - t0) / 1000);
  }
  const ours = { seconds, peakMemory: (await memoryInfo()).peak };
  await model.dispose();

  const flops = llamaFlops(model.config, BATCH, SEQ, RANK);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const tokens = BATCH * SEQ;
  const record: Record<string, unknown> = {
    bench: "step",
    machine: await machine(),
    model: path.basename(modelPath),
    batch: BATCH,
    seq: SEQ,
    loraRank: RANK,
    dtype: "float32",
    matmulPeakGflops: +peak.toFixed(1),
    ours: {
      stepSeconds: +median(seconds).toFixed(3),
      tokensPerSecond: +(tokens / median(seconds)).toFixed(1),
      achievedGflops: +(flops.training / median(seconds) / 1e9).toFixed(1),
      fractionOfPeak: +(flops.training / median(seconds) / 1e9 / peak).toFixed(3),
      peakMemoryBytes: ours.peakMemory,
      seconds,
    },
    flopsPerStep: flops.training,
  };
  const py = python();
  if (py) {
    const child = spawnSync(py, [path.join(packageRoot(), "bench", "peers", "mlx_lm_step.py"), modelPath, "--batch", String(BATCH), "--seq", String(SEQ), "--steps", String(STEPS)], {
      encoding: "utf8",
      maxBuffer: 1 << 24,
      env: peerEnv(),
    });
    if (child.status !== 0) throw new Error(`mlx-lm peer failed: ${child.stderr}`);
    const peer = JSON.parse(child.stdout.trim().split("\n").pop()!);
    const peerMedian = median(peer.seconds);
    record.mlxLm = {
      ...peer,
      blas: peerEnv().LD_PRELOAD ?? "the wheel's own",
      stepSeconds: +peerMedian.toFixed(3),
      tokensPerSecond: +(tokens / peerMedian).toFixed(1),
      achievedGflops: +(flops.training / peerMedian / 1e9).toFixed(1),
    };
    record.speedupVsMlxLm = +(peerMedian / median(seconds)).toFixed(2);
  } else {
    record.mlxLm = "not run: Python mlx-lm is not installed (npm test creates .venv with it)";
  }
  const file = writeBenchResult("step", record);
  console.log(JSON.stringify(record, null, 2));
  console.log(`wrote ${file}`);
}

// Run only as a script: bench:clara imports peerEnv from here.
if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
