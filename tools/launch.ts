// Starts the ranks of a data-parallel run on MLX's ring backend: writes the host file, sets
// MLX_RANK / MLX_HOSTFILE / CLARA_DISTRIBUTED for each rank, streams rank 0's output, and
// stops every rank as soon as one fails (or on Ctrl-C, which each rank turns into a clean stop).

import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

export interface LaunchOptions {
  /** The program and its arguments, run once per rank (e.g. [clara-train.js, "stage1", …]). */
  command: string[];
  /** Host of each rank; ranks on this machine are started here. Default: nproc × 127.0.0.1. */
  hosts?: string[];
  nproc?: number;
  /** With hosts: start only this rank here (run the same command on every machine). */
  rank?: number;
  basePort?: number;
  backend?: string;
  log?: (line: string) => void;
  /** Called with each local rank's process id as it starts. */
  onSpawn?: (rank: number, pid: number) => void;
}

export function hostFile(hosts: string[], basePort: number): string {
  const file = path.join(os.tmpdir(), `clara-hosts-${process.pid}-${Date.now()}.json`);
  fs.writeFileSync(file, JSON.stringify(hosts.map((h, i) => [`${h}:${basePort + i}`])));
  return file;
}

/** Resolves with the exit code of the run: 0 when every rank succeeded. */
export function launch(options: LaunchOptions): Promise<number> {
  const hosts = options.hosts ?? Array.from({ length: options.nproc ?? 2 }, () => "127.0.0.1");
  if (hosts.length < 2) throw new Error("a data-parallel run needs at least 2 ranks");
  const basePort = options.basePort ?? 30000 + (process.pid % 20000);
  const file = hostFile(hosts, basePort);
  const log = options.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const local = options.rank !== undefined ? [options.rank] : hosts.map((_, i) => i);
  const children = new Map<number, ChildProcess>();
  const tails = new Map<number, string[]>();
  let settled = false;

  return new Promise((resolve) => {
    const finish = (code: number) => {
      if (settled) return;
      settled = true;
      for (const c of children.values()) if (c.exitCode === null) c.kill("SIGTERM");
      fs.rmSync(file, { force: true });
      resolve(code);
    };
    let exited = 0;
    for (const r of local) {
      const child = spawn(options.command[0], options.command.slice(1), {
        env: { ...process.env, MLX_RANK: String(r), MLX_HOSTFILE: file, CLARA_DISTRIBUTED: options.backend ?? "ring" },
        stdio: ["ignore", r === 0 ? "inherit" : "ignore", "pipe"],
      });
      children.set(r, child);
      if (child.pid !== undefined) options.onSpawn?.(r, child.pid);
      tails.set(r, []);
      child.stderr!.on("data", (d: Buffer) => {
        const lines = d.toString().split("\n").filter(Boolean);
        if (r === 0) for (const l of lines) log(l);
        tails.get(r)!.push(...lines);
        tails.set(r, tails.get(r)!.slice(-20));
      });
      child.on("exit", (code, signal) => {
        exited += 1;
        if (code !== 0 && !settled) {
          const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
          log(`rank ${r} ${why}; stopping the other ranks.${r !== 0 ? "\n" + tails.get(r)!.slice(-5).join("\n") : ""}`);
          finish(code ?? 1);
        } else if (exited === local.length) finish(0);
      });
    }
    process.once("SIGINT", () => {
      for (const c of children.values()) if (c.exitCode === null) c.kill("SIGINT");
    });
  });
}
