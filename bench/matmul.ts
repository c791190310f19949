// bench:matmul — float32 GEMM through the addon (the peak every FLOP/s fraction is measured
// against), next to the same GEMM on the reference BLAS that the mlx-cpu wheel grafts, run in
// a child process that preloads that library. Writes results/bench/matmul.json.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { matmulBenchmark, packageRoot, type DType } from "../lib/runtime";
import { machine, writeBenchResult } from "./machine";

const SIZES: Array<{ n: number; iterations: number; dtype: DType }> = [
  { n: 1024, iterations: 10, dtype: "float32" },
  { n: 2048, iterations: 5, dtype: "float32" },
  { n: 1024, iterations: 3, dtype: "bfloat16" }, // MLX's own CPU kernel, not BLAS
];

async function measure(sizes: typeof SIZES) {
  const out = [];
  for (const s of sizes) {
    const t = await matmulBenchmark({ n: s.n, iterations: s.iterations, warmup: 1, dtype: s.dtype });
    // A wrong product must not be timed: the probe compares row 0 with an independent reduction.
    if (!(t.maxAbsError < 1e-2 * Math.sqrt(s.n) * (s.dtype === "float32" ? 1 : 100))) {
      throw new Error(`matmul ${s.n} ${s.dtype} is wrong: max abs error ${t.maxAbsError}`);
    }
    out.push({ n: s.n, dtype: s.dtype, bestGflops: +t.bestGflops.toFixed(1), medianGflops: +t.medianGflops.toFixed(1), seconds: t.seconds });
  }
  return out;
}

/** The wheel's own reference BLAS, kept as *.reference by tools/setup/blas.js. */
function referenceBlas(): string | null {
  const setup = path.join(packageRoot(), "build", "clara-setup.json");
  if (!fs.existsSync(setup)) return null;
  const { mlxRoot } = JSON.parse(fs.readFileSync(setup, "utf8"));
  const libs = path.join(mlxRoot, "..", "mlx_cpu.libs");
  if (!fs.existsSync(libs)) return null;
  const ref = fs.readdirSync(libs).find((f) => /^libblas-.*\.reference$/.test(f));
  return ref ? path.join(libs, ref) : null;
}

async function main() {
  if (process.argv.includes("--peer")) {
    // Child: whatever BLAS the parent preloaded. Sizes kept small: reference BLAS is slow.
    console.log(JSON.stringify(await measure([{ n: 1024, iterations: 3, dtype: "float32" }])));
    return;
  }
  const results = await measure(SIZES);
  const record: Record<string, unknown> = { bench: "matmul", machine: await machine(), results };
  const ref = process.platform === "linux" ? referenceBlas() : null;
  if (ref) {
    const child = spawnSync(process.execPath, [__filename, "--peer"], { encoding: "utf8", env: { ...process.env, LD_PRELOAD: ref } });
    if (child.status !== 0) throw new Error(`reference-BLAS peer failed: ${child.stderr}`);
    const peer = JSON.parse(child.stdout.trim().split("\n").pop()!)[0];
    const ours = results.find((r) => r.n === 1024 && r.dtype === "float32")!;
    record.peer = { name: "wheel's grafted reference BLAS (LD_PRELOAD)", library: ref, ...peer };
    record.ratioVsReferenceBlas1024 = +(ours.bestGflops / peer.bestGflops).toFixed(1);
  }
  const file = writeBenchResult("matmul", record);
  for (const r of results) console.log(`${r.dtype.padEnd(8)} ${String(r.n).padStart(5)}²  ${r.bestGflops.toFixed(1).padStart(7)} GFLOP/s (median ${r.medianGflops.toFixed(1)})`);
  if (record.peer) console.log(`reference BLAS 1024²: ${(record.peer as { bestGflops: number }).bestGflops} GFLOP/s -> ours is ${record.ratioVsReferenceBlas1024}x`);
  console.log(`wrote ${file}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
