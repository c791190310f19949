// The facts every benchmark record carries, so figures from different runs can be told apart.
import * as os from "node:os";
import * as path from "node:path";
import { packageRoot, runtimeInfo } from "../lib/runtime";
import { writeFileAtomic } from "../lib/io/atomic";

export async function machine(): Promise<Record<string, unknown>> {
  const info = await runtimeInfo();
  return {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
    mlxVersion: info.mlxVersion,
    backend: info.backend,
    device: info.deviceName || info.device,
    blasLibrary: info.blasLibrary,
  };
}

/** Writes results/bench/<name>.json atomically and returns its path. */
export function writeBenchResult(name: string, record: unknown): string {
  const file = path.join(packageRoot(), "results", "bench", `${name}.json`);
  writeFileAtomic(file, new TextEncoder().encode(JSON.stringify(record, null, 2) + "\n"));
  return file;
}
