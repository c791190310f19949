// bench:quantized — what a quantized base costs and saves: a CLaRa stage-1 update (ρ 4, document
// 160 tokens, batch 4 in micro-batches of 2, LoRA r 16) on SmolLM2-135M-Instruct with its
// projections in float32, 8-bit and 4-bit affine groups of 64, and in the GGUF file's own Q4_1
// blocks; seconds per update and MLX's peak memory, each precision in a process of its own
// (a clean peak), the precisions interleaved round by round so that load on the machine falls
// on all alike. Then the memory a Mistral-7B-shaped CLaRa needs per precision, computed from
// shapes, for the README's "which Mac" table. Writes results/bench/quantized.json.
//
//   node dist/bench/quantized.js [--rounds 2] [--steps 3]

import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { readPretrainRecords, Stage1Trainer, type QuantizeOption } from "../lib";
import { memoryInfo, packageRoot } from "../lib/runtime";
import { machine, writeBenchResult } from "./machine";

const PRECISIONS: Record<string, QuantizeOption> = {
  float32: "float",
  "8-bit (g64)": { bits: 8, groupSize: 64 },
  "4-bit (g64)": { bits: 4, groupSize: 64 },
  "GGUF Q4_1 blocks (g32)": "source",
};

interface OneRun {
  precision: string;
  seconds: number[];
  peakMiB: number;
  loadedMiB: number;
  losses: number[];
}

/** One precision, in this process: load, then `steps` updates after a warm-up one. */
async function runOne(precision: string, steps: number): Promise<OneRun> {
  const root = packageRoot();
  const model = path.join(root, "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  const records = readPretrainRecords(path.join(root, "example", "pretrain.jsonl")).records.slice(0, 4 * (steps + 1));
  const trainer = await Stage1Trainer.create(model, records, {
    compressionRate: 4,
    docMaxLength: 160,
    lora: { rank: 16, alpha: 32, dropout: 0 },
    quantize: PRECISIONS[precision],
    out: path.join(root, "checkpoints", "bench", "quantized", "stage1.npz"),
    batchSize: 4,
    microBatchSize: 2,
    maxSteps: steps + 1,
    checkpointMinutes: 0,
    lr: 1e-4,
    onEvent: (e) => {
      if (e.type === "step") {
        seconds.push(e.stepSeconds);
        losses.push(e.loss);
      }
    },
  });
  const seconds: number[] = [];
  const losses: number[] = [];
  const loaded = (await memoryInfo(true)).active;
  await trainer.run();
  const peak = (await memoryInfo()).peak;
  await trainer.clara.dispose();
  return { precision, seconds: seconds.slice(1), peakMiB: Math.round(peak / 2 ** 20), loadedMiB: Math.round(loaded / 2 ** 20), losses };
}

/**
 * Bytes of a Mistral-7B-shaped CLaRa (hidden 4096, 32 layers, 32/8 heads, MLP 14336, vocab 32000
 * + memory tokens) at one precision: projections at `bits` with a 16-bit scale and bias per
 * `group` weights (or 16-bit floats), embeddings and head in bfloat16, three LoRA r 16 adapters
 * in bfloat16 with AdamW moments (float32) for the two a stage trains, and the activations of
 * one stage-1 example (document 256 + prompt 256 tokens) kept for the backward pass.
 */
function mistral7bBytes(bits: number | null, group = 64) {
  const [H, L, heads, kv, I, V] = [4096, 32, 32, 8, 14336, 32000 + 35];
  const hd = H / heads;
  const proj = L * (H * H * 2 + 2 * H * kv * hd + 3 * H * I);
  const weights = bits === null ? proj * 2 : (proj * bits) / 8 + (proj / group) * 2 * 2;
  const embeddings = 2 * V * H * 2;
  const perLayerLora = 16 * ((H + H) * 2 + (H + kv * hd) * 2 + (H + I) * 3);
  const adapters = 3 * L * perLayerLora * 2;
  const optimizer = 2 * L * perLayerLora * (4 + 4 + 4); // two moments and a float32 gradient
  // Per token per layer: the residual, norms, q/k/v/o, MLP gate/up/activation in bfloat16, kept
  // for the backward pass (no checkpointing), plus the logits of the supervised prompt.
  const tokens = 256 + 256;
  const activations = tokens * L * (H * 6 + kv * hd * 2 + I * 3) * 2 + 256 * V * 4;
  const total = weights + embeddings + adapters + optimizer + activations;
  const gb = (x: number) => +(x / 1e9).toFixed(2);
  return { weightsGB: gb(weights + embeddings), adaptersAndOptimizerGB: gb(adapters + optimizer), activationsGB: gb(activations), totalGB: gb(total) };
}

async function main() {
  const { values } = parseArgs({ options: { one: { type: "string" }, steps: { type: "string", default: "3" }, rounds: { type: "string", default: "2" } } });
  const steps = Number(values.steps);
  if (values.one) {
    process.stdout.write(JSON.stringify(await runOne(values.one, steps)) + "\n");
    return;
  }
  const runs: Record<string, OneRun[]> = {};
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const precision of Object.keys(PRECISIONS)) {
      const r = spawnSync(process.execPath, [__filename, "--one", precision, "--steps", String(steps)], { encoding: "utf8", maxBuffer: 1 << 24 });
      if (r.status !== 0) throw new Error(`${precision}: ${r.stderr}`);
      const one = JSON.parse(r.stdout.trim().split("\n").at(-1)!) as OneRun;
      (runs[precision] ??= []).push(one);
      console.error(`${precision}: ${one.seconds.map((s) => s.toFixed(1)).join(", ")} s per update, peak ${one.peakMiB} MiB`);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(runs.float32.flatMap((r) => r.seconds));
  const smollm2 = Object.fromEntries(
    Object.entries(runs).map(([p, rs]) => {
      const s = median(rs.flatMap((r) => r.seconds));
      return [p, { secondsPerUpdate: +s.toFixed(2), ratioToFloat32: +(s / base).toFixed(2), peakMiB: Math.max(...rs.map((r) => r.peakMiB)), loadedMiB: rs[0].loadedMiB, firstLoss: +rs[0].losses[0].toFixed(4) }];
    }),
  );
  const record = {
    bench: "quantized",
    machine: await machine(),
    setup: "SmolLM2-135M-Instruct stage-1 update: ρ 4, document 160, batch 4 (micro 2), LoRA r 16 on every projection; float32 compute",
    smollm2,
    mistral7bComputed: {
      note: "from shapes (bench/quantized.ts mistral7bBytes): bfloat16 compute, LoRA r 16 ×3 adapters, one stage-1 example of 256 + 256 tokens",
      bfloat16: mistral7bBytes(null),
      "8-bit": mistral7bBytes(8),
      "4-bit": mistral7bBytes(4),
    },
  };
  console.log(JSON.stringify(record, null, 2));
  console.log(`wrote ${writeBenchResult("quantized", record)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
