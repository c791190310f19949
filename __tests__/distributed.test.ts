// Data parallelism over MLX's ring backend on loopback: 2 ranks × a global batch of 4 give the
// loss curve and adapter weights of 1 process with the same global batch, and a rank that dies
// stops the run with a clear message while the last checkpoint stays intact.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readCheckpoint } from "../lib";
import { launch } from "../tools/launch";
import { makeTinyClaraBase, REPO } from "./helpers/tiny-clara";

const RANK = path.join(__dirname, "fixtures", "dp-rank.js");
let base: string;
let work: string;

beforeAll(() => {
  base = makeTinyClaraBase();
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-dp-"));
  if (!fs.existsSync(path.join(REPO, "dist", "lib", "index.js"))) throw new Error("run `npm run build` first: the ranks load dist/");
});
afterAll(() => {
  for (const d of [base, work]) fs.rmSync(d, { recursive: true, force: true });
});

const port = () => 31000 + Math.floor(Math.random() * 20000);

describe("data-parallel training", () => {
  it("2 ranks × global batch 4 match 1 process × batch 4 (loss curve and weights within 1e-5)", async () => {
    const single = path.join(work, "single.npz");
    const one = spawnSync(process.execPath, [RANK, base, single, "3", "4", "2"], { encoding: "utf8" });
    expect(one.status).toBe(0);
    const singleLosses = JSON.parse(one.stdout.trim().split("\n").pop()!) as number[];

    const multi = path.join(work, "multi.npz");
    let stdout = "";
    // rank 0's stdout is inherited: capture it through a child of our own.
    const code = await new Promise<number>((resolve) => {
      const p = spawn(process.execPath, ["-e", `require(${JSON.stringify(path.join(REPO, "dist", "tools", "launch.js"))}).launch({nproc: 2, basePort: ${port()}, command: [process.execPath, ${JSON.stringify(RANK)}, ${JSON.stringify(base)}, ${JSON.stringify(multi)}, "3", "4", "2"]}).then((c) => process.exit(c))`], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      p.stdout.on("data", (d) => (stdout += d.toString()));
      p.on("exit", (c) => resolve(c ?? 1));
    });
    expect(code).toBe(0);
    const multiLosses = JSON.parse(stdout.trim().split("\n").pop()!) as number[];
    expect(multiLosses.length).toBe(3);
    multiLosses.forEach((l, i) => expect(Math.abs(l - singleLosses[i])).toBeLessThan(1e-5));
    const a = new Map(readCheckpoint(single).entries);
    const b = new Map(readCheckpoint(multi).entries);
    let worst = 0;
    for (const [k, v] of a) {
      const w = b.get(k)!;
      for (let i = 0; i < v.data.length; i++) worst = Math.max(worst, Math.abs((v.data as Float32Array)[i] - (w.data as Float32Array)[i]));
    }
    expect(worst).toBeLessThan(1e-5);
  });

  it("a rank that dies stops the others with a clear message; the last checkpoint is intact", async () => {
    const out = path.join(work, "killed.npz");
    // A first, complete run leaves a checkpoint; the second run is killed mid-way.
    expect(spawnSync(process.execPath, [RANK, base, out, "1", "4", "2"]).status).toBe(0);
    const before = fs.readFileSync(out);
    const lines: string[] = [];
    const pids = new Map<number, number>();
    const started = Date.now();
    const run = launch({
      nproc: 2,
      basePort: port(),
      command: [process.execPath, RANK, base, out, "200", "4", "2"],
      log: (l) => lines.push(l),
      onSpawn: (rank, pid) => pids.set(rank, pid),
    });
    // Kill rank 1 once both ranks are training.
    await new Promise((r) => setTimeout(r, 4000));
    expect(pids.size).toBe(2);
    process.kill(pids.get(1)!, "SIGKILL");
    const code = await run;
    expect(code).not.toBe(0);
    expect(lines.join("\n")).toMatch(/rank 1 was killed by SIGKILL; stopping the other ranks/);
    expect(Date.now() - started).toBeLessThan(60000);
    expect(fs.readFileSync(out).equals(before)).toBe(true);
    expect(readCheckpoint(out).metadata.complete).toBe(true);
  });
});
