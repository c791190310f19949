// Quantized bases (QLoRA, as mlx-lm trains on 4-bit models): folders quantized by mlx-lm's own
// converter load as shipped and give mlx-lm's logits; `quantize: { bits, groupSize }` at load
// equals that converter's projections; GGUF Q4_1 blocks kept packed give the dequantized path's
// logits; adapters train on a 4-bit base and a checkpoint reloads on the base it trained on.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraModel, Stage1Trainer } from "../lib";
import { Model } from "../lib/model/model";
import { parseQuantizeFlag, resolveQuantization, sourceQuantizationFromHf } from "../lib/model/quantization";
import { readCheckpoint } from "../lib/io/checkpoint";
import { MLX_LM_MODULES, REPO, makeTinyModel, oracleLogits, oracleTest, relativeError, removeDir, runMlxLmOracle, tempDir } from "./helpers/oracle";
import { examplePretrain } from "./helpers/tiny-clara";

const itOracle = oracleTest(...MLX_LM_MODULES);
const SMOL = path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf");
const SEQS = [
  [5, 17, 42, 99, 7, 250, 3, 64],
  [120, 8, 33, 1, 299, 45],
];
// Float32 compute over the same packed weights: only the order of sums differs.
const TOL = 1e-4;

let work: string;
let float: string;
beforeAll(async () => {
  work = tempDir("clara-quant-");
  float = await makeTinyModel("llama", path.join(work, "float"), { seed: 21 });
});
afterAll(() => removeDir(work));

async function ourLogits(model: Model): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const s of SEQS) out.push((await model.logits([s])).data as Float32Array);
  return out;
}

const worst = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((x, i) => relativeError(x, b[i])));

describe.each([
  { bits: 4, groupSize: 32 },
  { bits: 8, groupSize: 64 },
])("$bits-bit, groups of $groupSize", ({ bits, groupSize }) => {
  itOracle("a folder quantized by mlx_lm.convert loads quantized and gives mlx-lm's logits", async () => {
    const dir = path.join(work, `mlx-q${bits}-g${groupSize}`);
    await runMlxLmOracle(["quantize", "--model", float, "--bits", String(bits), "--group-size", String(groupSize), "--out", dir]);
    const model = await Model.load(dir);
    try {
      expect(model.quantization).toEqual({ mode: "source", bits: 0, groupSize: 0 });
      const ours = await ourLogits(model);
      expect(worst(ours, await oracleLogits(dir, SEQS, work))).toBeLessThanOrEqual(TOL);
      // It really is quantized: the float model's logits differ.
      const f = await Model.load(float);
      expect(worst(ours, await ourLogits(f))).toBeGreaterThan(1e-4);
      await f.dispose();
    } finally {
      await model.dispose();
    }
    // "float" dequantizes the same folder: the same values, held as floats.
    const asFloat = await Model.load(dir, { quantize: "float" });
    expect(worst(await ourLogits(asFloat), await oracleLogits(dir, SEQS, work))).toBeLessThanOrEqual(TOL);
    await asFloat.dispose();
  });

  itOracle("quantize at load equals mlx_lm.convert's quantization of the projections", async () => {
    const dir = path.join(work, `mlx-proj-q${bits}-g${groupSize}`);
    await runMlxLmOracle(["quantize", "--model", float, "--bits", String(bits), "--group-size", String(groupSize), "--out", dir, "--projections-only"]);
    const model = await Model.load(float, { quantize: { bits: bits as 4 | 8, groupSize: groupSize as 32 | 64 } });
    try {
      expect(model.quantization).toEqual({ mode: "affine", bits, groupSize });
      expect(worst(await ourLogits(model), await oracleLogits(dir, SEQS, work))).toBeLessThanOrEqual(TOL);
    } finally {
      await model.dispose();
    }
  });
});

describe("SmolLM2-135M-Instruct Q4_1 GGUF", () => {
  const present = fs.existsSync(SMOL);
  (present ? it : it.skip)("kept in its own blocks (quantize: source) gives the dequantized float path's logits", async () => {
    const packed = await Model.load(SMOL, { quantize: "source" });
    const unpacked = await Model.load(SMOL);
    try {
      expect(unpacked.quantization.mode).toBe("float");
      const ids = [packed.tokenizer.encode("The capital of France is"), packed.tokenizer.encode("Gravity pulls")];
      for (const s of ids) {
        const a = (await packed.logits([s])).data as Float32Array;
        const b = (await unpacked.logits([s])).data as Float32Array;
        // Q4_1 blocks are MLX affine groups of 32 exactly; the float path dequantizes the same
        // blocks, so the only difference is summation order inside the matrix products.
        expect(relativeError(a, b)).toBeLessThanOrEqual(2e-5);
      }
      // Greedy tokens agree.
      const prompt = packed.tokenizer.encode(packed.tokenizer.applyChatTemplate([{ role: "user", content: "What is the capital of France?" }], { addGenerationPrompt: true }));
      const [g1, g2] = [await packed.generate([prompt], { maxTokens: 12 }), await unpacked.generate([prompt], { maxTokens: 12 })];
      expect(g1.texts).toEqual(g2.texts);
    } finally {
      await packed.dispose();
      await unpacked.dispose();
    }
  }, 120_000);
});

describe("SmolLM2-135M-Instruct requantized at load", () => {
  const present = fs.existsSync(SMOL);
  // Measured 2026-12-07: 8-bit g64 0.041 / 0.020 relative logit error, same greedy answer; 4-bit
  // g32 0.0000 (a Q4_1 file's values lie on the 4-bit g32 grid, which quantize finds again);
  // 4-bit g64 0.45 (too coarse for a 135M model: its answer changes).
  (present ? it : it.skip)("8-bit stays within 0.1 relative of the float logits with the same answer; 4-bit g32 gives back the Q4_1 grid exactly", async () => {
    const float = await Model.load(SMOL);
    const prompt = float.tokenizer.encode(float.tokenizer.applyChatTemplate([{ role: "user", content: "What is the capital of France?" }], { addGenerationPrompt: true }));
    const seq = float.tokenizer.encode("The capital of France is");
    const want = (await float.logits([seq])).data as Float32Array;
    const answer = (await float.generate([prompt], { maxTokens: 12 })).texts[0];
    await float.dispose();
    for (const [q, tolerance] of [
      [{ bits: 8, groupSize: 64 }, 0.1],
      [{ bits: 4, groupSize: 32 }, 1e-5],
    ] as const) {
      const m = await Model.load(SMOL, { quantize: q });
      try {
        expect(relativeError((await m.logits([seq])).data as Float32Array, want)).toBeLessThanOrEqual(tolerance);
        expect((await m.generate([prompt], { maxTokens: 12 })).texts[0]).toBe(answer);
      } finally {
        await m.dispose();
      }
    }
  }, 180_000);
});

describe("QLoRA: CLaRa on a 4-bit base", () => {
  itOracle("a stage-1 run trains the adapters on a 4-bit base, and the checkpoint reloads on that base", async () => {
    const records = examplePretrain().slice(0, 16);
    const out = path.join(work, "qlora", "stage1.npz");
    const t = await Stage1Trainer.create(float, records, {
      compressionRate: 8,
      docMaxLength: 64,
      lora: { rank: 4, alpha: 8, dropout: 0 },
      quantize: { bits: 4, groupSize: 32 },
      out,
      batchSize: 4,
      microBatchSize: 2,
      maxSteps: 3,
      lr: 1e-3,
      mseWeight: 0.1,
    });
    const before = new Map(await t.clara.model.parameters());
    const summary = await t.run();
    const after = new Map(await t.clara.model.parameters());
    await t.clara.dispose();
    expect(summary.history.every((h) => Number.isFinite(h.loss))).toBe(true);
    const changed = (name: string) => (before.get(name)!.data as Float32Array).some((v, i) => v !== (after.get(name)!.data as Float32Array)[i]);
    expect(changed("model.layers.0.self_attn.q_proj.lora.compressor.a")).toBe(true);
    expect(changed("model.layers.1.mlp.down_proj.lora.generator.b")).toBe(true);
    expect(readCheckpoint(out).metadata.base.quantization).toEqual({ mode: "affine", bits: 4, groupSize: 32 });
    const reloaded = await ClaraModel.load(out);
    expect(reloaded.model.quantization).toEqual({ mode: "affine", bits: 4, groupSize: 32 });
    await reloaded.dispose();
  }, 120_000);
});

describe("the quantize option", () => {
  it("defaults: GGUF float, an MLX-quantized folder as shipped, a float folder float", () => {
    expect(resolveQuantization(undefined, "gguf")).toEqual({ mode: "float", bits: 0, groupSize: 0 });
    expect(resolveQuantization(undefined, "safetensors", { bits: 4, groupSize: 64 })).toEqual({ mode: "source", bits: 0, groupSize: 0 });
    expect(resolveQuantization(undefined, "safetensors")).toEqual({ mode: "float", bits: 0, groupSize: 0 });
    expect(resolveQuantization({ bits: 8 }, "gguf")).toEqual({ mode: "affine", bits: 8, groupSize: 64 });
  });

  it("refuses what MLX cannot hold, naming the field", () => {
    expect(() => resolveQuantization({ bits: 3 } as never, "gguf")).toThrow(expect.objectContaining({ code: "E_INVALID_ARGUMENT", field: "quantize" }));
    expect(() => resolveQuantization({ bits: 4, groupSize: 48 } as never, "gguf")).toThrow(expect.objectContaining({ field: "quantize.groupSize" }));
    expect(() => parseQuantizeFlag("2")).toThrow(/--quantize must be 4, 8, source or float/);
    expect(parseQuantizeFlag("4", 32)).toEqual({ bits: 4, groupSize: 32 });
    expect(parseQuantizeFlag(undefined)).toBeUndefined();
  });

  it("reads config.json's quantization as mlx-lm writes it, and refuses mixed per-layer recipes", () => {
    expect(sourceQuantizationFromHf({ quantization: { group_size: 64, bits: 4 } }, "c.json")).toEqual({ bits: 4, groupSize: 64 });
    expect(sourceQuantizationFromHf({ quantization: { group_size: 64, bits: 4, "model.embed_tokens": false } }, "c.json")).toEqual({ bits: 4, groupSize: 64 });
    expect(sourceQuantizationFromHf({}, "c.json")).toBeUndefined();
    expect(() => sourceQuantizationFromHf({ quantization: { group_size: 64, bits: 4, "model.layers.0.mlp.down_proj": { bits: 6, group_size: 64 } } }, "c.json")).toThrow(
      expect.objectContaining({ code: "E_MODEL_CONFIG", field: "quantization", message: expect.stringMatching(/per-layer settings \(model\.layers\.0\.mlp\.down_proj\)/) }),
    );
    expect(() => sourceQuantizationFromHf({ quantization: { group_size: 32, bits: 4, mode: "mxfp4" } }, "c.json")).toThrow(/only affine/);
  });

  itOracle("a quantized folder without its config.json entry is refused with the fix", async () => {
    const dir = path.join(work, "no-quant-config");
    await runMlxLmOracle(["quantize", "--model", float, "--bits", "4", "--group-size", "32", "--out", dir]);
    const configFile = path.join(dir, "config.json");
    const config = JSON.parse(fs.readFileSync(configFile, "utf8"));
    delete config.quantization;
    delete config.quantization_config;
    fs.writeFileSync(configFile, JSON.stringify(config));
    await expect(Model.load(dir)).rejects.toMatchObject({ code: "E_MODEL_CONFIG", message: expect.stringMatching(/has no "quantization"/) });
  });
});
