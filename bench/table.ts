// Renders results/bench/*.json into the table in bench/README.md (between the markers).

import * as fs from "node:fs";
import * as path from "node:path";
import { packageRoot } from "../lib/runtime";

const START = "<!-- bench-table:start -->";
const END = "<!-- bench-table:end -->";

function read(name: string): any | null {
  const f = path.join(packageRoot(), "results", "bench", `${name}.json`);
  return fs.existsSync(f) ? JSON.parse(fs.readFileSync(f, "utf8")) : null;
}

export function table(): string {
  const rows: string[] = ["| benchmark | ours | peer | ratio | machine, date |", "| --- | --- | --- | --- | --- |"];
  const when = (r: any) => `${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.backend}; ${r.machine.date.slice(0, 10)}`;
  const mm = read("matmul");
  if (mm) {
    for (const x of mm.results) rows.push(`| matmul ${x.dtype} ${x.n}² | ${x.bestGflops} GFLOP/s | ${x.n === 1024 && x.dtype === "float32" && mm.peer ? `${mm.peer.bestGflops} GFLOP/s (reference BLAS)` : ""} | ${x.n === 1024 && x.dtype === "float32" && mm.ratioVsReferenceBlas1024 ? `${mm.ratioVsReferenceBlas1024}×` : ""} | ${when(mm)} |`);
  }
  const st = read("step");
  if (st) {
    const peer = typeof st.mlxLm === "object" ? `${st.mlxLm.tokensPerSecond} tok/s (mlx-lm, compiled)` : st.mlxLm;
    rows.push(`| LoRA step ${st.model} ${st.batch}×${st.seq} fp32 | ${st.ours.tokensPerSecond} tok/s, ${st.ours.stepSeconds} s, ${(st.ours.fractionOfPeak * 100).toFixed(0)}% of matmul peak | ${peer} | ${st.speedupVsMlxLm ?? ""}× | ${when(st)} |`);
  }
  const cs = read("clara-step");
  if (cs) {
    const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
    const peer = (name: string, p: any) => (typeof p === "object" ? `${name} ${p.tokensPerSecond} tok/s, ${p.stepSeconds} s` : `${name} ${String(p).split(":")[0]}`);
    for (const c of cs.cases) {
      const what = `CLaRa stage ${c.stage} ρ=${c.compressionRate} ${cs.model} B=${cs.batch}${c.stage > 1 ? ` k=${c.k}` : ""}${c.candidates ? ` N=${c.candidates}` : ""}`;
      const ours = `${c.ours.tokensPerSecond} tok/s, ${c.ours.stepSeconds} s, ${(c.ours.fractionOfPeak * 100).toFixed(0)}% of matmul peak, peak ${mb(c.ours.peakMemoryBytes)} (shapes: ${mb(c.memoryEstimate.total)})`;
      const ratio = typeof c.mlx === "object" ? `${c.mlx.speedup}× vs mlx` : "";
      rows.push(`| ${what} | ${ours} | ${peer("mlx", c.mlx)}; ${peer("torch", c.torch)} | ${ratio} | ${when(cs)} |`);
    }
  }
  const ix = read("index");
  if (ix) {
    rows.push(`| index build (${ix.model}, ρ=${ix.compressionRate}) | ${ix.build.docsPerSecond} docs/s | | | ${when(ix)} |`);
    rows.push(`| index search, ${ix.search.documents} docs | ${ix.search.queriesPerSecond} queries/s | | | ${when(ix)} |`);
    rows.push(`| answer latency | ${ix.answerLatencyMs.fromIndex} ms from the index | ${ix.answerLatencyMs.fromRawText} ms from raw text | ${ix.answerLatencyMs.ratio}× | ${when(ix)} |`);
    rows.push(`| bytes per document | ${ix.disk.float32BytesPerDoc} (f32), ${ix.disk.float16BytesPerDoc} (f16) | ${ix.disk.rawTextBytesPerDoc} raw text | | ${when(ix)} |`);
  }
  const dp = read("distributed");
  if (dp) rows.push(`| data parallel (${dp.backend}) | 2 ranks: ${dp.twoRanks.stepsPerSecond} steps/s, all-reduce ${dp.twoRanks.allreduceMsPerStep} ms/step | 1 process: ${dp.oneProcess.stepsPerSecond} steps/s | overhead, not speed-up (shared cores) | ${when(dp)} |`);
  const ln = read("learning");
  if (ln) rows.push(`| stage-1 learning, Cover-EM on ${ln.data.heldOut} held-out | compressed: ${ln.coverEm.compressedUntrained} → ${ln.coverEm.compressedStage1} | full text ${ln.coverEm.fullText}, no context ${ln.coverEm.noContext} | | ${when(ln)} |`);
  return rows.join("\n");
}

function main() {
  const readme = path.join(packageRoot(), "bench", "README.md");
  const text = fs.readFileSync(readme, "utf8");
  const i = text.indexOf(START);
  const j = text.indexOf(END);
  if (i < 0 || j < 0) throw new Error(`${readme} lacks the ${START} … ${END} markers`);
  fs.writeFileSync(readme, text.slice(0, i + START.length) + "\n" + table() + "\n" + text.slice(j));
  console.log(table());
}

if (require.main === module) main();
