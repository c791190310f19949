// bench:clara — one CLaRa training step per stage (1, 2, 3) and compression rate (ρ = 4, 16,
// 32, 128), doc length 256, batch 4, fp32, on SmolLM2-135M-Instruct (a tiny model when it is
// absent): tokens/s (compressor + generator tokens), step time, MLX peak memory beside a sum
// computed from shapes, and FLOP/s as a fraction of the fp32 matmul peak measured in this
// process. Each case is written to a folder (bench/clara-case.ts) that the peers read: the same
// step in Python MLX (bench/peers/mlx_clara_step.py) and, when torch, transformers and peft
// import, in PyTorch on the CPU (bench/peers/torch_clara_step.py). Every peer first checks
// its no-dropout loss against ours. Writes results/bench/clara-step.json.
//
// Environment: BENCH_STAGES (default 1,2,3), BENCH_RATES (4,16,32,128), BENCH_STEPS (timed
// steps, default 2), BENCH_WARMUP (1), BENCH_CANDIDATES (stage-3 N, default 10), BENCH_MODEL
// (a GGUF file, an HF folder, or "tiny"), BENCH_KEEP_CASES=1 keeps the case folders, CLARA_PYTHON,
// BENCH_LANES=1 also times our step as two micro-batches of 2, in turn and on two CPU streams,
// BENCH_GRAD_CHECKPOINT=1 also times our step with gradient checkpointing (peak memory and
// seconds beside the plain step's), BENCH_RECORD names the record (default clara-step),
// BENCH_PEERS=0 skips the peers.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraModel, readPretrainRecords, type PretrainRecord, type StageOptions } from "../lib";
import { deriveEndToEndRecords, deriveInstructionRecords } from "../lib/data";
import { ADAPTERS, CLARA_DEFAULTS as DEFAULTS } from "../lib/model";
import { matmulBenchmark, memoryInfo, packageRoot } from "../lib/runtime";
// The step is timed at the addon's call, below the public API.
import { nativeModel } from "../lib/model/model";
import type { NativeStageBatch } from "../lib/native";
import type { LoopConfig } from "../lib/trainers/stage-config";
import { processedTokens, type StagePlan } from "../lib/trainers/trainer";
import { writeTinyModel } from "../tools/tiny-model";
import { perturbLoraB, plannedTrainer, stageCaseFields, writeCase, type CaseMeta } from "./clara-case";
import { claraStageFlops, type DecoderPass } from "./flops";
import { machine, writeBenchResult } from "./machine";
import { claraMemoryEstimate } from "./memory";
import { peerEnv } from "./step";

const list = (v: string | undefined, d: string) => (v ?? d).split(",").map((s) => Number(s.trim()));
const STAGES = list(process.env.BENCH_STAGES, "1,2,3") as Array<1 | 2 | 3>;
const RATES = list(process.env.BENCH_RATES, "4,16,32,128");
const STEPS = Number(process.env.BENCH_STEPS ?? 2);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const BATCH = 4;
const DOC_MAX_LENGTH = 256;
/** Documents per prompt in stages 2 and 3 (the reference's generation_top_k). */
const K = 5;
/**
 * Stage-3 candidates per question. The reference reranks 20, but the frozen compressor's
 * forward over B·N documents of 259 + n tokens dominates the step and grows linearly in N;
 * 10 keeps a choice of twice k for the top-k while halving that cost on a 2-core CPU.
 */
const CANDIDATES = Number(process.env.BENCH_CANDIDATES ?? 10);
const SEED = 0;


function python(): string | null {
  const venv = path.join(packageRoot(), ".venv", "bin", "python");
  const exe = process.env.CLARA_PYTHON ?? (fs.existsSync(venv) ? venv : "python3");
  return spawnSync(exe, ["-c", "import mlx_lm"]).status === 0 ? exe : null;
}

/** The Python that runs the torch peer, or why it cannot run. */
function torchPython(): { exe: string } | { reason: string } {
  const script = path.join(packageRoot(), "bench", "peers", "torch_clara_step.py");
  if (!fs.existsSync(script)) return { reason: `${path.relative(packageRoot(), script)} does not exist` };
  const venv = path.join(packageRoot(), ".venv", "bin", "python");
  const exe = process.env.CLARA_TORCH_PYTHON ?? process.env.CLARA_PYTHON ?? (fs.existsSync(venv) ? venv : "python3");
  const probe = spawnSync(exe, ["-c", "import torch, transformers, peft"], { encoding: "utf8" });
  if (probe.status !== 0) {
    const last = (probe.stderr || String(probe.error ?? "")).trim().split("\n").pop();
    return { reason: `\`import torch, transformers, peft\` fails in ${exe} (${last}); install them there or set CLARA_TORCH_PYTHON` };
  }
  return { exe };
}

function dataFile(): string {
  const apple = path.resolve(packageRoot(), "..", "shared", "data", "ml-clara", "pretrain_data.jsonl");
  return fs.existsSync(apple) ? apple : path.join(packageRoot(), "example", "pretrain.jsonl");
}


interface Plan {
  plan: StagePlan<unknown>;
  batch: NativeStageBatch;
  /** The stage's settings as its trainer resolved them (the default lr, …). */
  config: LoopConfig;
}

async function stagePlan(stage: 1 | 2 | 3, clara: ClaraModel, pretrain: PretrainRecord[]): Promise<Plan> {
  const options: StageOptions = { out: path.join(os.tmpdir(), "clara-bench-unused.ckpt"), evalSplit: 0, seed: DEFAULTS.seed };
  const records =
    stage === 1
      ? pretrain.slice(0, BATCH)
      : stage === 2
        ? deriveInstructionRecords(pretrain, { k: K, limit: BATCH })
        : deriveEndToEndRecords(pretrain, { candidates: CANDIDATES, limit: BATCH });
  const trainer = plannedTrainer(stage, clara, records, stage === 3 ? { ...options, k: K } : options);
  const plan: StagePlan<unknown> = await trainer.plan();
  if (plan.train.length !== BATCH) throw new Error(`stage ${stage}: ${plan.train.length} records for a batch of ${BATCH}; use a data file with more records`);
  return { plan, batch: plan.batch(plan.train, plan.train.map((_, i) => i)), config: trainer.config };
}

/** The decoder passes of one step, with their padded shapes. */
function passes(stage: 1 | 2 | 3, batch: NativeStageBatch, headWidth: number): DecoderPass[] {
  const rows = (t?: { shape: number[] }) => ({ sequences: t?.shape[0] ?? 0, seq: t?.shape[1] ?? 0 });
  const mask = batch.prompt.lossMask!;
  const [B, L] = mask.shape;
  let supervised = 0;
  for (let b = 0; b < B; b++) for (let t = 1; t < L; t++) supervised += mask.data[b * L + t] ? 1 : 0;
  const generator: DecoderPass = { ...rows(batch.prompt.ids), headRows: supervised, headWidth, backward: true };
  if (stage === 3) {
    return [
      { ...rows(batch.query!.ids), headRows: 0, headWidth, backward: true },
      { ...rows(batch.candidates!.ids), headRows: 0, headWidth, backward: false },
      generator,
    ];
  }
  return [{ ...rows(batch.docs!.ids), headRows: 0, headWidth, backward: true }, generator];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function runPeer(exe: string, script: string, dir: string, env: NodeJS.ProcessEnv): { ok: true; result: any } | { ok: false; error: string } {
  const child = spawnSync(exe, [script, dir, "--steps", String(STEPS), "--warmup", String(WARMUP)], { encoding: "utf8", maxBuffer: 1 << 26, env });
  const last = (child.stdout ?? "").trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) {
    const tail = `${child.stderr ?? ""}${child.error ?? ""}`.trim().split("\n").slice(-15).join("\n");
    return { ok: false, error: `${path.basename(script)} exited with ${child.status}: ${tail}` };
  }
  return { ok: true, result: JSON.parse(last) };
}

async function runCase(stage: 1 | 2 | 3, rate: number, modelPath: string, pretrain: PretrainRecord[], peakGflops: number, root: string) {
  const clara = await ClaraModel.create(modelPath, { compressionRate: rate, docMaxLength: DOC_MAX_LENGTH, seed: SEED });
  const c = clara.model.config;
  // Stage 3 starts its query reasoner as a copy of the compressor (Stage3Trainer.fromCheckpoint).
  if (stage === 3) await clara.model.copyAdapter(ADAPTERS.compressor, ADAPTERS.queryReasoner);
  await perturbLoraB(clara, SEED + 7, 0.01);
  const { plan, batch, config } = await stagePlan(stage, clara, pretrain);
  const spec = { ...clara.spec(plan.k), tau: plan.tau ?? DEFAULTS.tau };
  const expected = (await nativeModel(clara.model).evalLosses({ loss: plan.nativeStage, batches: [batch], spec }))[0];
  const lr = config.lr;
  const adamw = DEFAULTS.adamw;
  const dir = path.join(root, `stage${stage}-rho${rate}`);
  const meta: CaseMeta = {
    ...stageCaseFields(stage, clara, plan, spec, batch, expected),
    model: path.resolve(modelPath),
    lr,
    adamw,
    maxGradNorm: DEFAULTS.maxGradNorm,
    steps: STEPS,
    warmup: WARMUP,
  };
  writeCase(dir, meta, batch, await clara.model.parameters());

  // The optimizer as runStage makes it, at a constant lr (the schedule does not change the work).
  const trainer = await clara.model.createTrainer({
    trainable: plan.trainable,
    lr,
    schedule: "constant",
    maxGradNorm: DEFAULTS.maxGradNorm,
    weightDecay: adamw.weightDecay,
    beta1: adamw.beta1,
    beta2: adamw.beta2,
    eps: adamw.eps,
  });
  const seconds: number[] = [];
  let loss = NaN;
  await memoryInfo(true);
  for (let i = 0; i < WARMUP + STEPS; i++) {
    const t0 = performance.now();
    const r = await nativeModel(clara.model).trainStep({ loss: plan.nativeStage, microBatches: [batch], spec, seed: SEED });
    if (!Number.isFinite(r.loss)) throw new Error(`stage ${stage} ρ=${rate}: non-finite loss ${r.loss}`);
    if (i >= WARMUP) seconds.push((performance.now() - t0) / 1000);
    loss = r.loss;
  }
  const peakMemory = (await memoryInfo()).peak;
  const lanes = process.env.BENCH_LANES === "1" ? await timeLanes(clara, plan, config.lr, spec) : undefined;
  const checkpointed = process.env.BENCH_GRAD_CHECKPOINT === "1" ? await timeGradCheckpoint(clara, plan, config.lr, spec, batch) : undefined;
  const adapters = (await clara.model.adapters()).length;
  await clara.dispose();

  const headWidth = c.vocab_size + clara.nMem + 3;
  const steps = passes(stage, batch, headWidth);
  const flops = claraStageFlops(c, steps, clara.lora.rank);
  const bytesPerElement = 4;
  const estimate = claraMemoryEstimate(c, {
    passes: steps,
    rank: clara.lora.rank,
    adapters,
    extensionRows: clara.nMem + 3,
    trainableParameters: trainer.parameters,
    bytesPerElement,
  });
  const paddedTokens = steps.reduce((a, p) => a + p.sequences * p.seq, 0);
  const realTokens = processedTokens(batch);
  const compressorTokens = steps.slice(0, -1).reduce((a, p) => a + p.sequences * p.seq, 0);
  const s = median(seconds);
  const perf = (sec: number) => ({
    stepSeconds: +sec.toFixed(3),
    tokensPerSecond: +(paddedTokens / sec).toFixed(1),
    achievedGflops: +(flops.training / sec / 1e9).toFixed(2),
    fractionOfPeak: +(flops.training / sec / 1e9 / peakGflops).toFixed(3),
  });
  const result: Record<string, any> = {
    stage,
    compressionRate: rate,
    nMem: clara.nMem,
    k: plan.k,
    ...(stage === 3 ? { candidates: batch.numCandidates } : {}),
    shapes: Object.fromEntries(
      Object.entries({ docs: batch.docs, query: batch.query, candidates: batch.candidates, prompt: batch.prompt })
        .filter(([, v]) => v)
        .map(([k, v]) => [k, v!.ids.shape]),
    ),
    tokens: { compressor: compressorTokens, generator: paddedTokens - compressorTokens, padded: paddedTokens, nonPadding: realTokens },
    trainable: { names: plan.trainable, parameters: trainer.parameters },
    flopsPerStep: flops.training,
    expected: meta.expected,
    ours: { ...perf(s), peakMemoryBytes: peakMemory, loss, seconds },
    memoryEstimate: { ...estimate, peakOverEstimate: +(peakMemory / estimate.total).toFixed(2) },
    ...(lanes ? { lanes: { ...lanes, speedup: +(lanes.inTurn / lanes.twoStreams).toFixed(2) } } : {}),
    ...(checkpointed
      ? {
          gradCheckpoint: {
            ...checkpointed,
            slowdown: +(checkpointed.stepSeconds / s).toFixed(2),
            peakRatio: +(checkpointed.peakMemoryBytes / peakMemory).toFixed(2),
          },
        }
      : {}),
  };
  return { result, dir };
}

/**
 * The batch as two micro-batches of 2 (what a run with microBatchSize 2 does), evaluated one
 * after the other (lanes 1) and at once on two CPU streams (lanes 2): median step seconds.
 */
async function timeLanes(clara: ClaraModel, plan: StagePlan<unknown>, lr: number, spec: ReturnType<ClaraModel["spec"]>) {
  const half = BATCH / 2;
  const microBatches = [0, half].map((from) => {
    const idx = plan.train.map((_, i) => i).slice(from, from + half);
    return plan.batch(idx.map((i) => plan.train[i]), idx);
  });
  const out: Record<"inTurn" | "twoStreams", number> = { inTurn: NaN, twoStreams: NaN };
  for (const [key, lanes] of [["inTurn", 1], ["twoStreams", 2]] as const) {
    await clara.model.createTrainer({ trainable: plan.trainable, lr, schedule: "constant", lanes });
    const seconds: number[] = [];
    for (let i = 0; i < WARMUP + STEPS; i++) {
      const t0 = performance.now();
      await nativeModel(clara.model).trainStep({ loss: plan.nativeStage, microBatches, spec, seed: SEED });
      if (i >= WARMUP) seconds.push((performance.now() - t0) / 1000);
    }
    out[key] = +median(seconds).toFixed(3);
  }
  return out;
}

/** The same step with each decoder layer recomputed in the backward pass: median seconds and peak memory. */
async function timeGradCheckpoint(clara: ClaraModel, plan: StagePlan<unknown>, lr: number, spec: ReturnType<ClaraModel["spec"]>, batch: NativeStageBatch) {
  await clara.model.createTrainer({ trainable: plan.trainable, lr, schedule: "constant", gradCheckpoint: true });
  await memoryInfo(true);
  const seconds: number[] = [];
  for (let i = 0; i < WARMUP + STEPS; i++) {
    const t0 = performance.now();
    await nativeModel(clara.model).trainStep({ loss: plan.nativeStage, microBatches: [batch], spec, seed: SEED });
    if (i >= WARMUP) seconds.push((performance.now() - t0) / 1000);
  }
  return { stepSeconds: +median(seconds).toFixed(3), peakMemoryBytes: (await memoryInfo()).peak, seconds };
}

interface CaseArgs {
  stage: 1 | 2 | 3;
  rate: number;
  modelPath: string;
  file: string;
  peak: number;
  root: string;
}

/**
 * Our step runs in a child process: MLX keeps freed buffers in its cache until the process
 * ends, and a peer started beside a parent holding them could run out of memory (or be
 * measured against a machine with less free memory than ours had).
 */
function ourStepInChild(a: CaseArgs): { result: Record<string, any>; dir: string } {
  const child = spawnSync(process.execPath, [__filename, "--case", JSON.stringify(a)], {
    encoding: "utf8",
    maxBuffer: 1 << 26,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const last = (child.stdout ?? "").trim().split("\n").pop() ?? "";
  if (child.status !== 0 || !last.startsWith("{")) {
    throw new Error(`our stage ${a.stage} ρ=${a.rate} step failed (exit ${child.status ?? child.signal}); its error is above`);
  }
  return JSON.parse(last);
}

async function caseMain(a: CaseArgs) {
  const pretrain = readPretrainRecords(a.file).records;
  console.log(JSON.stringify(await runCase(a.stage, a.rate, a.modelPath, pretrain, a.peak, a.root)));
}

async function main() {
  const smol = path.join(packageRoot(), "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "clara-bench-cases-"));
  let modelPath = process.env.BENCH_MODEL ?? smol;
  if (modelPath === "tiny" || !fs.existsSync(modelPath)) {
    modelPath = path.join(root, "tiny-model");
    fs.mkdirSync(modelPath);
    // Enough merges that documents and answers are tokens, not bytes; 4 layers like bench:step's.
    writeTinyModel(modelPath, ["a tiny corpus for a tiny benchmark model"], { hiddenSize: 256, layers: 4, heads: 4, kvHeads: 2, merges: 50 });
  }
  const file = dataFile();
  const peak = Math.max(...(await Promise.all([1024, 2048].map(async (n) => (await matmulBenchmark({ n, iterations: 5 })).bestGflops))));
  const py = python();
  const torch = torchPython();
  const mlxPeer = path.join(packageRoot(), "bench", "peers", "mlx_clara_step.py");
  const torchPeer = path.join(packageRoot(), "bench", "peers", "torch_clara_step.py");
  const cases: Record<string, unknown>[] = [];
  let failed = false;
  for (const stage of STAGES) {
    for (const rate of RATES) {
      console.error(`stage ${stage}, ρ = ${rate} ...`);
      const { result, dir } = ourStepInChild({ stage, rate, modelPath, file, peak, root });
      const ours = result.ours;
      const peerFigures = (r: any) => {
        const sec = median(r.seconds as number[]);
        return {
          ...r,
          stepSeconds: +sec.toFixed(3),
          tokensPerSecond: +(result.tokens.padded / sec).toFixed(1),
          achievedGflops: +(result.flopsPerStep / sec / 1e9).toFixed(2),
          checkRelativeError: +Math.abs(r.checkLoss / result.expected.loss - 1).toExponential(2),
          // The peer's step time over ours: above 1, ours is faster.
          speedup: +(sec / ours.stepSeconds).toFixed(2),
        };
      };
      const peers = process.env.BENCH_PEERS !== "0";
      if (!peers) {
        result.mlx = "not run: BENCH_PEERS=0";
      } else if (py) {
        const r = runPeer(py, mlxPeer, dir, peerEnv());
        if (r.ok) result.mlx = { ...peerFigures(r.result), blas: peerEnv().LD_PRELOAD ?? "the wheel's own" };
        else {
          failed = true;
          result.mlx = `failed: ${r.error}`;
          console.error(result.mlx);
        }
      } else {
        result.mlx = "not run: Python mlx-lm is not installed (npm test creates .venv with it)";
      }
      if (!peers) {
        result.torch = "not run: BENCH_PEERS=0";
      } else if ("exe" in torch) {
        // PyTorch brings its own BLAS; preloading OpenBLAS under it would mix two BLAS builds.
        const r = runPeer(torch.exe, torchPeer, dir, process.env);
        if (r.ok) result.torch = peerFigures(r.result);
        else {
          failed = true;
          result.torch = `failed: ${r.error}`;
          console.error(result.torch);
        }
      } else {
        result.torch = `not run: ${torch.reason}`;
      }
      cases.push(result);
      console.error(JSON.stringify({ stage, rate, ours: ours.stepSeconds, mlx: (result.mlx as any).stepSeconds, torch: (result.torch as any).stepSeconds }));
    }
  }
  const record = {
    bench: "clara-step",
    machine: await machine(),
    model: path.basename(modelPath),
    data: path.basename(file),
    batch: BATCH,
    docMaxLength: DOC_MAX_LENGTH,
    dtype: "float32",
    lora: DEFAULTS.lora,
    steps: STEPS,
    warmup: WARMUP,
    matmulPeakGflops: +peak.toFixed(1),
    tokensCounted: "compressor rows × padded length + generator rows × padded length (what the step computes)",
    cases,
  };
  const out = writeBenchResult(process.env.BENCH_RECORD ?? "clara-step", record);
  console.log(JSON.stringify(record, null, 2));
  console.log(`wrote ${out}`);
  if (process.env.BENCH_KEEP_CASES) console.log(`case folders kept in ${root}`);
  else fs.rmSync(root, { recursive: true, force: true });
  if (failed) {
    console.error("a peer failed (see the 'failed:' entries above and in the record); its figures are missing");
    process.exitCode = 1;
  }
}

(process.argv[2] === "--case" ? caseMain(JSON.parse(process.argv[3])) : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});
