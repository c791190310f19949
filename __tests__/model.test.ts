// The transformer core against Python mlx-lm: logits and greedy generation of tiny random
// models of every supported family (and of the real SmolLM2 GGUF when it is here), left
// padding, LoRA adapters (identity at init, copy, save/load, merged-weight forward), finite-
// difference gradients, an overfitting run, and the loader's errors.
//
// The tiny models are written by __tests__/oracle/mlx_lm_oracle.py with mlx-lm's own model
// classes; without that oracle these tests skip (fail under CLARA_REQUIRE_ORACLE=1).
// CLARA_PRINT_MARGINS=1 prints the measured errors at the end.

import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import { mulberry32 } from "../lib/data/random";
import * as path from "node:path";
import { ClaraError } from "../lib/errors";
import { readNpz } from "../lib/io/npz";
import { Model, type LmExample } from "../lib/model/model";
import type { NamedTensor } from "../lib/native";
import { tensor, type Tensor } from "../lib/tensor";
import {
  MLX_LM_MODULES,
  REPO,
  hasMlxLm,
  makeTinyModel,
  oracleGenerate,
  oracleLogits,
  oracleTest,
  pythonEval,
  relativeError,
  removeDir,
  runMlxLmOracle,
  tempDir,
  type TinyModelOptions,
  type TinyModelType,
} from "./helpers/oracle";

const itOracle = oracleTest(...MLX_LM_MODULES);
const TOL = 1e-4;
const GEN_TOKENS = 32;
const SMOL = path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf");

let work: string;
const margins: Record<string, string | number> = {};
beforeAll(() => {
  work = tempDir("clara-model-test-");
});
afterAll(() => {
  removeDir(work);
  if (process.env.CLARA_PRINT_MARGINS === "1") console.log(JSON.stringify(margins, null, 2));
});

// ---------------------------------------------------------------------------------------
// Helpers

/** Row `b`, positions [from, to) of logits [B, L, V], as one flat array. */
function positions(t: Tensor, b: number, from: number, to: number): Float32Array {
  const [, L, V] = t.shape;
  const data = t.data as Float32Array;
  return data.slice((b * L + from) * V, (b * L + to) * V);
}

/** The logits of each sequence at its real positions, out of a left-padded batch. */
function unpad(t: Tensor, sequences: number[][]): Float32Array[] {
  const L = t.shape[1];
  return sequences.map((s, b) => positions(t, b, L - s.length, L));
}

const rng = mulberry32;

function normal(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

function randomTokens(random: () => number, n: number, vocab: number): number[] {
  return Array.from({ length: n }, () => 3 + Math.floor(random() * (vocab - 3))); // no special ids
}

async function rejection(p: Promise<unknown>): Promise<ClaraError> {
  const e = await p.then(
    () => {
      throw new Error("expected a rejection, but it resolved");
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ClaraError);
  return e as ClaraError;
}

/** B matrices of `adapter` set to N(0, scale²) values, so the adapter changes the output. */
async function randomizeB(model: Model, adapter: string, seed: number, scale = 0.1): Promise<void> {
  const random = rng(seed);
  const entries: NamedTensor[] = [];
  for (const [name, t] of await model.parameters()) {
    if (!name.endsWith(`.lora.${adapter}.b`)) continue;
    entries.push([name, tensor("float32", t.shape, Float32Array.from(t.data, () => scale * normal(random)))]);
  }
  expect(entries.length).toBeGreaterThan(0);
  await model.setParameters(entries);
}

// Three sequences of different lengths (ids of the 300-token tiny vocabulary).
const SEQS = [
  [1, 101, 17, 250, 33, 290, 5],
  [44, 200, 9],
  [260, 3, 77, 77, 120, 18, 299, 64, 150, 2, 11, 180],
];
// Long enough for attention in query blocks (native/model/llama.cpp), unpadded and left-padded.
const LONG_SEQS = [300, 520].map((n, j) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + j * 11 + ((i * i) % 13)) % 297)));

const PROMPTS = [
  [1, 88, 140, 23, 205],
  [61, 7],
];

// ---------------------------------------------------------------------------------------
// Tiny models of each family against mlx-lm

interface TinyCase extends TinyModelOptions {
  name: string;
  type: TinyModelType;
}

const CASES: TinyCase[] = [
  { name: "llama", type: "llama", seed: 11 },
  { name: "llama, tied embeddings, llama3 RoPE scaling", type: "llama", tie: true, ropeScaling: "llama3", seed: 12 },
  { name: "mistral", type: "mistral", seed: 13 },
  { name: "qwen2 (q/k/v biases), tied embeddings", type: "qwen2", tie: true, seed: 14 },
  { name: "qwen3 (q/k norms)", type: "qwen3", seed: 15 },
  { name: "mistral, linear RoPE scaling", type: "mistral", ropeScaling: "linear", seed: 16 },
  // HF Llama's attention_bias puts a bias on o_proj as well as on q/k/v (mlx-lm does the same).
  { name: "llama with attention_bias (q/k/v/o biases)", type: "llama", attentionBias: true, seed: 17 },
];

describe.each(CASES)("$name vs mlx-lm (float32)", (c) => {
  let dir: string;
  let model: Model;
  let expectedLogits: Float32Array[];
  let expectedTokens: number[][];
  let expectedLong: Float32Array[];

  beforeAll(async () => {
    if (!hasMlxLm()) return;
    dir = await makeTinyModel(c.type, path.join(work, `tiny-${c.seed}`), c);
    [expectedLogits, expectedTokens, model, expectedLong] = await Promise.all([
      oracleLogits(dir, SEQS, work),
      oracleGenerate(dir, PROMPTS, GEN_TOKENS, work),
      Model.load(dir),
      oracleLogits(dir, LONG_SEQS, work),
    ]);
  });
  afterAll(async () => {
    await model?.dispose();
  });

  itOracle("loads the tiny model and its tokenizer", () => {
    expect(model.config.model_type).toBe(c.type);
    expect(model.config.tie_word_embeddings).toBe(Boolean(c.tie));
    expect(model.config.rope_scaling?.type).toBe(c.ropeScaling);
    expect(model.config.qkv_bias).toBe(c.type === "qwen2" || Boolean(c.attentionBias));
    expect(model.config.o_bias).toBe(c.type !== "qwen2" && Boolean(c.attentionBias));
    expect(model.tokenizer.vocabSize).toBe(model.config.vocab_size);
    const text = "the river is near the tower";
    const ids = model.tokenizer.encode(text);
    expect(ids.length).toBeLessThan(text.length); // the merges apply
    expect(model.tokenizer.decode(ids)).toBe(text);
    const prompt = model.tokenizer.applyChatTemplate([{ role: "user", content: "hi" }], { addGenerationPrompt: true });
    expect(prompt).toBe("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
    expect(model.tokenizer.encode(prompt).filter((t) => t < 3)).toEqual([1, 2, 1]);
  });

  itOracle("logits of each sequence match mlx-lm within 1e-4 relative", async () => {
    const errors: number[] = [];
    for (let i = 0; i < SEQS.length; i++) {
      const t = await model.logits([SEQS[i]]);
      expect(t.shape).toEqual([1, SEQS[i].length, model.config.vocab_size]);
      errors.push(relativeError(t.data as Float32Array, expectedLogits[i]));
    }
    margins[`logits ${c.name}`] = Math.max(...errors);
    for (const e of errors) expect(e).toBeLessThanOrEqual(TOL);
  });

  itOracle("a left-padded batch gives every row the logits it has alone", async () => {
    const batch = await model.logits(SEQS);
    expect(batch.shape).toEqual([SEQS.length, 12, model.config.vocab_size]);
    const rows = unpad(batch, SEQS);
    let alone = 0;
    let oracle = 0;
    for (let i = 0; i < SEQS.length; i++) {
      const single = await model.logits([SEQS[i]]);
      alone = Math.max(alone, relativeError(rows[i], single.data as Float32Array));
      oracle = Math.max(oracle, relativeError(rows[i], expectedLogits[i]));
    }
    // lastOnly gives the last column of the same batch.
    const last = await model.logits(SEQS, { lastOnly: true });
    expect(last.shape).toEqual([SEQS.length, 1, model.config.vocab_size]);
    for (let i = 0; i < SEQS.length; i++) {
      alone = Math.max(alone, relativeError(positions(last, i, 0, 1), positions(batch, i, 11, 12)));
    }
    margins[`padding vs alone ${c.name}`] = alone;
    margins[`padding vs mlx-lm ${c.name}`] = oracle;
    expect(alone).toBeLessThanOrEqual(TOL);
    expect(oracle).toBeLessThanOrEqual(TOL);
  });

  itOracle("long sequences (attention in query blocks) match mlx-lm alone and left-padded", async () => {
    const errors: number[] = [];
    for (let i = 0; i < LONG_SEQS.length; i++) errors.push(relativeError((await model.logits([LONG_SEQS[i]])).data as Float32Array, expectedLong[i]));
    const padded = unpad(await model.logits(LONG_SEQS), LONG_SEQS);
    for (let i = 0; i < LONG_SEQS.length; i++) errors.push(relativeError(padded[i], expectedLong[i]));
    margins[`long sequences ${c.name}`] = Math.max(...errors);
    for (const e of errors) expect(e).toBeLessThanOrEqual(TOL);
  });

  itOracle(`greedy generation of ${GEN_TOKENS} tokens is token-identical to mlx-lm`, async () => {
    const g = await model.generate(PROMPTS, { maxTokens: GEN_TOKENS, stopTokens: [] });
    expect(g.stopped).toEqual(PROMPTS.map(() => false));
    expect(g.tokens).toEqual(expectedTokens);
    expect(expectedTokens.every((t) => t.length === GEN_TOKENS)).toBe(true);
    // Alone, without padding, the short prompt continues the same way.
    const alone = await model.generate([PROMPTS[1]], { maxTokens: GEN_TOKENS, stopTokens: [] });
    expect(alone.tokens[0]).toEqual(expectedTokens[1]);
  });
});

// ---------------------------------------------------------------------------------------
// The real default model

describe("SmolLM2-135M-Instruct Q4_1 GGUF vs mlx-lm (float32)", () => {
  const present = fs.existsSync(SMOL);
  const itSmol = present ? itOracle : test.skip;
  let model: Model;
  let sequences: number[][];
  let chatPrompt: number[];
  let expectedLogits: Float32Array[];
  let expectedTokens: number[][];

  beforeAll(async () => {
    if (!present || !hasMlxLm()) return;
    model = await Model.load(SMOL);
    sequences = [model.tokenizer.encode("The capital of France is"), model.tokenizer.encode("Gravity pulls")];
    const chat = model.tokenizer.applyChatTemplate([{ role: "user", content: "What is the capital of France?" }], {
      addGenerationPrompt: true,
    });
    chatPrompt = model.tokenizer.encode(chat);
    [expectedLogits, expectedTokens] = await Promise.all([
      oracleLogits(SMOL, sequences, work),
      oracleGenerate(SMOL, [chatPrompt], GEN_TOKENS, work),
    ]);
  });
  afterAll(async () => {
    await model?.dispose();
  });

  // The oracle dequantises with gguf-py (llama.cpp's reader), independently of MLX's GGUF path;
  // measured error 3.7e-6, so 2e-5 leaves room for BLAS order only.
  itSmol("logits match mlx-lm within 2e-5 relative, alone and left-padded", async () => {
    expect(model.config).toMatchObject({ model_type: "llama", num_hidden_layers: 30, vocab_size: 49152, tie_word_embeddings: true });
    const errors: number[] = [];
    for (let i = 0; i < sequences.length; i++) {
      const t = await model.logits([sequences[i]]);
      errors.push(relativeError(t.data as Float32Array, expectedLogits[i]));
    }
    const padded = unpad(await model.logits(sequences), sequences);
    const paddedErrors = padded.map((rows, i) => relativeError(rows, expectedLogits[i]));
    margins["logits SmolLM2 GGUF"] = Math.max(...errors);
    margins["padding vs mlx-lm SmolLM2 GGUF"] = Math.max(...paddedErrors);
    for (const e of [...errors, ...paddedErrors]) expect(e).toBeLessThanOrEqual(2e-5);
  });

  // MLX's GGUF reader opens files read-write: a model on a read-only mount, immutable or owned
  // by another user must load all the same (through a temporary copy).
  itSmol("a GGUF file that cannot be opened for writing loads, with the same logits", async () => {
    const file = path.join(work, "read-only.gguf");
    fs.copyFileSync(SMOL, file);
    const root = process.getuid?.() === 0;
    // Root ignores permission bits: make the file immutable instead (ext4 and most Linux file systems).
    if (root) execFileSync("chattr", ["+i", file]);
    else fs.chmodSync(file, 0o444);
    try {
      expect(() => fs.closeSync(fs.openSync(file, "r+"))).toThrow();
      const before = fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith("clara-gguf-")).length;
      const ro = await Model.load(file);
      const a = await ro.logits([sequences[0]]);
      const b = await model.logits([sequences[0]]);
      expect(Buffer.from((a.data as Float32Array).buffer).equals(Buffer.from((b.data as Float32Array).buffer))).toBe(true);
      await ro.dispose();
      expect(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith("clara-gguf-")).length).toBe(before);
    } finally {
      if (root) execFileSync("chattr", ["-i", file]);
      fs.rmSync(file, { force: true });
    }
  });

  itSmol(`greedy ${GEN_TOKENS} tokens of a chat prompt are identical to mlx-lm`, async () => {
    const g = await model.generate([chatPrompt], { maxTokens: GEN_TOKENS, stopTokens: [] });
    margins["SmolLM2 chat continuation"] = model.tokenizer.decode(g.tokens[0]);
    expect(g.tokens).toEqual(expectedTokens);
    expect(g.tokens[0]).toHaveLength(GEN_TOKENS);
  });
});

// ---------------------------------------------------------------------------------------
// LoRA adapters

describe("LoRA adapters", () => {
  let dir: string;
  let otherDir: string;
  let model: Model;
  let base: Tensor;
  let adapted: Tensor;
  const file = () => path.join(work, "adapters.npz");

  beforeAll(async () => {
    if (!hasMlxLm()) return;
    [dir, otherDir] = await Promise.all([
      makeTinyModel("llama", path.join(work, "lora-base"), { seed: 21 }),
      makeTinyModel("llama", path.join(work, "lora-other"), { seed: 22 }),
    ]);
    model = await Model.load(dir);
    base = await model.logits(SEQS);
  });
  afterAll(async () => {
    await model?.dispose();
  });

  itOracle("a new adapter (B = 0) leaves the logits unchanged, and is listed", async () => {
    await model.addAdapter("first", { rank: 4, alpha: 8, seed: 1 }); // dropout: the default, 0.1
    await model.addAdapter("second", { rank: 2, alpha: 2, dropout: 0, seed: 2 });
    const withAdapter = await model.logits(SEQS, { adapter: "first" });
    expect(relativeError(withAdapter.data as Float32Array, base.data as Float32Array)).toBe(0);
    const list = await model.adapters();
    expect([...list].sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: "first", rank: 4, alpha: 8, dropout: expect.closeTo(0.1, 6) },
      { name: "second", rank: 2, alpha: 2, dropout: 0 },
    ]);
    const params = await model.parameters("model.layers.0.self_attn.q_proj.lora.first.");
    expect(params.map(([n, t]) => [n, t.shape])).toEqual([
      ["model.layers.0.self_attn.q_proj.lora.first.a", [64, 4]],
      ["model.layers.0.self_attn.q_proj.lora.first.b", [4, 64]],
    ]);
    expect(Array.from(params[1][1].data).every((v) => v === 0)).toBe(true);
  });

  itOracle("with B nonzero, the adapter changes the logits; its copy gives identical logits", async () => {
    await randomizeB(model, "first", 5);
    adapted = await model.logits(SEQS, { adapter: "first" });
    margins["LoRA effect (relative change of logits)"] = relativeError(adapted.data as Float32Array, base.data as Float32Array);
    expect(relativeError(adapted.data as Float32Array, base.data as Float32Array)).toBeGreaterThan(1e-2);
    await model.copyAdapter("first", "copy");
    const copied = await model.logits(SEQS, { adapter: "copy" });
    expect(Array.from(copied.data)).toEqual(Array.from(adapted.data));
    // The base stays the base.
    expect(Array.from((await model.logits(SEQS)).data)).toEqual(Array.from(base.data));
    expect((await model.adapters()).map((a) => a.name).sort()).toEqual(["copy", "first", "second"]);
  });

  itOracle("the adapter's forward equals mlx-lm with W + (alpha/r)·(A·B)ᵀ merged into the weights", async () => {
    const single = path.join(work, "first-only.npz");
    await model.saveAdapters(single, ["first"]);
    const merged = path.join(work, "lora-merged");
    await runMlxLmOracle(["merge-lora", "--model", dir, "--adapters", single, "--name", "first", "--out", merged]);
    const expected = await oracleLogits(merged, SEQS, work);
    const rows = unpad(adapted, SEQS);
    const err = Math.max(...rows.map((r, i) => relativeError(r, expected[i])));
    margins["LoRA forward vs merged weights in mlx-lm"] = err;
    expect(err).toBeLessThanOrEqual(TOL);
  });

  itOracle("saveAdapters → loadAdapters into a fresh model gives identical logits", async () => {
    await model.saveAdapters(file(), ["first", "second"]);
    const fresh = await Model.load(dir);
    try {
      const loaded = await fresh.loadAdapters(file());
      expect(loaded.map((a) => a.name).sort()).toEqual(["first", "second"]);
      expect((await fresh.adapters()).map((a) => a.name).sort()).toEqual(["first", "second"]);
      const again = await fresh.logits(SEQS, { adapter: "first" });
      expect(Array.from(again.data)).toEqual(Array.from(adapted.data));
    } finally {
      await fresh.dispose();
    }
  });

  itOracle("an adapter file for another base model is E_CHECKPOINT_MISMATCH", async () => {
    const other = await Model.load(otherDir);
    try {
      const e = await rejection(other.loadAdapters(file()));
      expect(e.code).toBe("E_CHECKPOINT_MISMATCH");
      expect(e.file).toBe(file());
      expect(await other.adapters()).toEqual([]);
    } finally {
      await other.dispose();
    }
  });

  itOracle("Python's mlx.core.load opens the saved adapter file", async () => {
    const keys = JSON.parse(
      await pythonEval("import json, sys, mlx.core as mx; print(json.dumps(sorted(mx.load(sys.argv[1]).keys())))", file()),
    ) as string[];
    const ours = [...readNpz(file()).keys()].sort();
    expect(keys).toEqual(ours);
    expect(keys).toContain("__metadata__");
    expect(keys).toContain("model.layers.1.mlp.down_proj.lora.second.b");
    expect(keys.filter((k) => k.includes(".lora.first."))).toHaveLength(2 * 7 * 2); // a, b × 7 linears × 2 layers
    expect(keys.some((k) => k.includes(".lora.copy."))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------
// Gradients and training

describe("LoRA gradients and training", () => {
  let dir: string;

  beforeAll(async () => {
    if (!hasMlxLm()) return;
    dir = await makeTinyModel("qwen2", path.join(work, "train-base"), { seed: 31 });
  });

  itOracle("analytic LoRA gradients match central finite differences (float32, ε = 1e-3)", async () => {
    const model = await Model.load(dir);
    try {
      await model.addAdapter("fd", { rank: 4, alpha: 8, dropout: 0, seed: 3 });
      await randomizeB(model, "fd", 7, 0.2);
      const random = rng(41);
      const examples: LmExample[] = [10, 7].map((n) => {
        const tokens = randomTokens(random, n, 300);
        return { tokens, lossMask: tokens.map((_, i) => (i >= 3 ? 1 : 0)) };
      });
      await model.createTrainer({ trainable: ["fd"] });
      const { loss, tokens, grads } = await model.lossAndGradients(examples, { adapter: "fd", train: true });
      expect(tokens).toBe(7 + 4);
      expect(Number.isFinite(loss)).toBe(true);
      const params = new Map(await model.parameters(""));
      const gradOf = new Map(grads);
      expect([...gradOf.keys()].sort()).toEqual([...params.keys()].filter((k) => k.includes(".lora.fd.")).sort());

      const linears = [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.k_proj",
        "model.layers.1.self_attn.v_proj",
        "model.layers.1.self_attn.o_proj",
        "model.layers.0.mlp.down_proj",
      ];
      const eps = 1e-3;
      const report: string[] = [];
      let worst = 0;
      for (const linear of linears) {
        for (const part of ["a", "b"]) {
          const name = `${linear}.lora.fd.${part}`;
          const g = gradOf.get(name)!.data as Float32Array;
          let at = 0;
          for (let i = 1; i < g.length; i++) if (Math.abs(g[i]) > Math.abs(g[at])) at = i;
          const theta = params.get(name)!;
          const lossWith = async (delta: number) => {
            const data = Float32Array.from(theta.data);
            data[at] += delta;
            await model.setParameters([[name, tensor("float32", theta.shape, data)]]);
            await model.createTrainer({ trainable: ["fd"] }); // setParameters drops the trainer
            return (await model.lossAndGradients(examples, { adapter: "fd", train: true })).loss;
          };
          const numeric = ((await lossWith(eps)) - (await lossWith(-eps))) / (2 * eps);
          await model.setParameters([[name, theta]]);
          const rel = Math.abs(numeric - g[at]) / Math.max(Math.abs(numeric), Math.abs(g[at]));
          worst = Math.max(worst, rel);
          report.push(`${name}[${at}] analytic ${g[at].toExponential(4)} numeric ${numeric.toExponential(4)} rel ${rel.toExponential(2)}`);
          expect(Math.abs(g[at])).toBeGreaterThan(1e-3);
        }
      }
      margins["finite differences (worst relative error)"] = worst;
      if (process.env.CLARA_PRINT_MARGINS === "1") margins["finite differences"] = report.join("\n");
      expect(worst).toBeLessThanOrEqual(1e-2);
    } finally {
      await model.dispose();
    }
  });

  itOracle("micro-batches on two CPU streams give the same updates as one after another", async () => {
    const random = rng(61);
    const microBatches: LmExample[][] = [3, 2, 3].map((n) =>
      Array.from({ length: n }, () => {
        const tokens = randomTokens(random, 9 + n, 300);
        return { tokens, lossMask: tokens.map((_, i) => (i >= 4 ? 1 : 0)) };
      }),
    );
    const run = async (lanes: 1 | 2) => {
      const model = await Model.load(dir);
      try {
        await model.addAdapter("lanes", { rank: 4, alpha: 8, dropout: 0.1, seed: 5 });
        await model.createTrainer({ trainable: ["lanes"], lr: 1e-2, schedule: "constant", lanes });
        const losses: number[] = [];
        for (let step = 0; step < 3; step++) losses.push((await model.trainStep(microBatches, { adapter: "lanes", seed: 9 })).loss);
        return { losses, params: await model.parameters("") };
      } finally {
        await model.dispose();
      }
    };
    const inTurn = await run(1);
    const together = await run(2);
    expect(together.losses).toEqual(inTurn.losses);
    expect(together.params.map(([n]) => n)).toEqual(inTurn.params.map(([n]) => n));
    together.params.forEach(([, t], i) => expect(Buffer.from((t.data as Float32Array).buffer).equals(Buffer.from((inTurn.params[i][1].data as Float32Array).buffer))).toBe(true));
  });

  itOracle("a rank-8 adapter overfits 4 examples: loss falls below 10% of the first step's in ≤ 60 steps", async () => {
    const model = await Model.load(dir);
    try {
      await model.addAdapter("fit", { rank: 8, alpha: 16, dropout: 0, seed: 4 });
      await model.createTrainer({ trainable: ["fit"], lr: 1e-2, schedule: "constant", warmupSteps: 0 });
      const random = rng(51);
      const examples: LmExample[] = Array.from({ length: 4 }, () => {
        const tokens = randomTokens(random, 12, 300);
        return { tokens, lossMask: tokens.map((_, i) => (i >= 7 ? 1 : 0)) }; // the 5-token "answer"
      });
      const losses: number[] = [];
      for (let step = 0; step < 60; step++) {
        const r = await model.trainStep([examples], { adapter: "fit" });
        expect(r.tokens).toBe(20);
        losses.push(r.loss);
        if (r.loss <= 0.1 * losses[0]) break;
      }
      margins["overfit: steps, first loss, last loss"] = `${losses.length}, ${losses[0].toFixed(4)}, ${losses.at(-1)!.toFixed(4)}`;
      expect(losses.at(-1)!).toBeLessThanOrEqual(0.1 * losses[0]);
      // The base (no adapter) did not move.
      const { loss: baseLoss } = await model.lossAndGradients(examples, {});
      expect(baseLoss).toBeCloseTo(losses[0], 4);
    } finally {
      await model.dispose();
    }
  });
});

// ---------------------------------------------------------------------------------------
// Loader errors

describe("model loading errors", () => {
  it("a config.json of an unsupported model_type is E_MODEL_CONFIG naming the file and field", async () => {
    const dir = path.join(work, "gpt2");
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ model_type: "gpt2", n_embd: 64, n_layer: 2, n_head: 4, vocab_size: 300 }));
    const e = await rejection(Model.load(dir));
    expect(e.code).toBe("E_MODEL_CONFIG");
    expect(e.file!.endsWith("config.json")).toBe(true);
    expect(e.field).toBe("model_type");
    expect(e.message).toContain("gpt2");
  });

  itOracle("weights missing a tensor are E_MODEL_TENSOR naming the tensor", async () => {
    const missing = "model.layers.1.mlp.up_proj.weight";
    const dir = await makeTinyModel("llama", path.join(work, "missing-tensor"), { seed: 61, dropTensor: missing });
    const e = await rejection(Model.load(dir));
    expect(e.code).toBe("E_MODEL_TENSOR");
    expect(e.message).toContain(missing);
    expect(e.field).toBe(missing);
  });

  it("a path that does not exist is E_MODEL_FILES", async () => {
    const nowhere = path.join(work, "no-such-model");
    const e = await rejection(Model.load(nowhere));
    expect(e.code).toBe("E_MODEL_FILES");
    expect(e.file).toBe(nowhere);
    const gguf = path.join(work, "no-such-model.gguf");
    expect((await rejection(Model.load(gguf))).code).toBe("E_MODEL_FILES");
  });
});
