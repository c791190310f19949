// The addon against real MLX: runtime facts, values through MLX and back, errors, and the
// promise that MLX work never blocks the event loop.
import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../lib";
import { compute, matmulBenchmark, memoryInfo, mlxVersion, runtimeInfo, tensor } from "../lib/runtime";
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from "../lib/tensor";

const root = path.resolve(__dirname, "..");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));

describe("runtime", () => {
  it("reports the pinned MLX version and a known backend", async () => {
    expect(mlxVersion()).toBe(pkg.mlx.version);
    const info = await runtimeInfo();
    expect(info.mlxVersion).toBe(pkg.mlx.version);
    expect(["metal", "cuda", "cpu"]).toContain(info.backend);
    expect(info.device).toBe(info.backend === "cpu" ? "cpu" : "gpu");
    expect(info.memoryLimit).toBeGreaterThan(0);
  });

  it("does float32 matmul on OpenBLAS, not on the wheel's grafted reference BLAS", async () => {
    const setupFile = path.join(root, "build", "clara-setup.json");
    const setup = fs.existsSync(setupFile) ? JSON.parse(fs.readFileSync(setupFile, "utf8")) : null;
    if (process.platform !== "linux" || !setup?.blas?.redirected) return; // macOS uses Accelerate
    const info = await runtimeInfo();
    expect(info.blasLibrary).toMatch(/openblas/i);
    expect(info.blasLibrary).not.toMatch(/mlx_cpu\.libs/);
    const t = await matmulBenchmark({ n: 512, iterations: 3 });
    expect(t.maxAbsError).toBeLessThan(1e-2);
    expect(t.bestGflops).toBeGreaterThan(20); // reference BLAS manages ~5 here
  });
});

describe("tensors through MLX", () => {
  const cases = [
    tensor("float32", [2, 3], new Float32Array([1.5, -2, 3, 0, 1e-8, -7.25])),
    tensor("float16", [3], new Uint16Array([0x3c00, 0xc000, 0x7bff])), // 1, -2, 65504
    tensor("bfloat16", [2, 2], float32ToBfloat16(new Float32Array([1, -0.5, 3.140625, 1e30]))),
    tensor("int32", [4], new Int32Array([0, -1, 2147483647, -2147483648])),
    tensor("uint32", [2], new Uint32Array([0, 4294967295])),
    tensor("uint8", [1, 3], new Uint8Array([0, 128, 255])),
    tensor("bool", [3], new Uint8Array([1, 0, 1])),
    tensor("float32", [], new Float32Array([42])),
    tensor("int32", [0, 5], new Int32Array(0)),
  ];
  it.each(cases.map((t) => [`${t.dtype}[${t.shape.join(",")}]`, t]))("round-trips %s unchanged", async (_, t) => {
    const back = await compute("identity", [t]);
    expect(back.dtype).toBe(t.dtype);
    expect(back.shape).toEqual(t.shape);
    expect(Object.prototype.toString.call(back.data)).toBe(Object.prototype.toString.call(t.data));
    expect(Array.from(back.data)).toEqual(Array.from(t.data));
  });

  it("computes with MLX: matmul, transpose, sum and casts", async () => {
    const a = tensor("float32", [2, 3], new Float32Array([1, 2, 3, 4, 5, 6]));
    const b = tensor("float32", [3, 2], new Float32Array([7, 8, 9, 10, 11, 12]));
    const c = await compute("matmul", [a, b]);
    expect(c.shape).toEqual([2, 2]);
    expect(Array.from(c.data)).toEqual([58, 64, 139, 154]);
    expect(Array.from((await compute("transpose", [a])).data)).toEqual([1, 4, 2, 5, 3, 6]);
    const s = await compute("sum", [a]);
    expect(s.shape).toEqual([]);
    expect(s.data[0]).toBe(21);
    const x = tensor("float32", [3], new Float32Array([1.00390625, -2.5, 1e-3]));
    const bf = await compute("astype", [x], { dtype: "bfloat16" });
    expect(bf.dtype).toBe("bfloat16");
    expect(Array.from(bf.data)).toEqual(Array.from(float32ToBfloat16(x.data as Float32Array)));
    expect(Array.from(bfloat16ToFloat32(bf.data as Uint16Array))[1]).toBe(-2.5);
  });

  it("turns MLX exceptions into ClaraErrors carrying MLX's message", async () => {
    const a = tensor("float32", [2, 2], new Float32Array(4));
    const b = tensor("float32", [3], new Float32Array(3));
    const err = await compute("matmul", [a, b]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClaraError);
    expect((err as ClaraError).code).toBe("E_NATIVE");
    expect((err as ClaraError).message).toMatch(/^\[matmul\]/);
  });

  it("rejects malformed tensors before they reach native code, naming the field", async () => {
    expect(() => compute("identity", [{ dtype: "float32", shape: [2], data: new Float64Array(2) } as never])).toThrow(
      expect.objectContaining({ code: "E_INVALID_ARGUMENT", field: "inputs[0].data" }),
    );
    expect(() => compute("identity", [{ dtype: "int64", shape: [2], data: new Int32Array(2) } as never])).toThrow(
      expect.objectContaining({ code: "E_INVALID_ARGUMENT", field: "inputs[0].dtype" }),
    );
  });

  it("reports allocator counters", async () => {
    await compute("identity", [tensor("float32", [256, 256], new Float32Array(65536))]);
    const m = await memoryInfo();
    expect(m.peak).toBeGreaterThanOrEqual(256 * 256 * 4);
    expect(m.limit).toBeGreaterThan(0);
  });
});

describe("the MLX thread", () => {
  it("keeps the event loop running during a multi-second MLX computation", async () => {
    // Enough 2048² products to take several seconds at OpenBLAS speed on 2 cores.
    const probe = await matmulBenchmark({ n: 1024, iterations: 2, warmup: 0 });
    const perProduct = Math.max(...probe.seconds) * 8; // a 2048² product is ~8x a 1024² one
    const iterations = Math.max(2, Math.ceil(2.5 / perProduct));
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 10);
    const started = performance.now();
    const work = matmulBenchmark({ n: 2048, iterations, warmup: 0 });
    const result = await work;
    const elapsed = performance.now() - started;
    clearInterval(timer);
    expect(result.seconds.length).toBe(iterations);
    expect(elapsed).toBeGreaterThan(1000);
    // The timer fired all through: no gap near the length of the computation.
    const gaps = ticks.slice(1).map((t, i) => t - ticks[i]);
    expect(ticks.length).toBeGreaterThan(elapsed / 10 / 4);
    expect(Math.max(...gaps)).toBeLessThan(Math.min(500, elapsed / 2));
  });

  it("answers queued calls in order, each with its own result", async () => {
    const inputs = Array.from({ length: 20 }, (_, i) => tensor("int32", [1], new Int32Array([i])));
    const outputs = await Promise.all(inputs.map((t) => compute("add", [t, t])));
    expect(outputs.map((o) => o.data[0])).toEqual(inputs.map((_, i) => 2 * i));
  });
});

describe("half-precision conversions", () => {
  it("float32 -> float16 rounds like MLX's astype, and back exactly", async () => {
    const values = new Float32Array([0, -0, 1, -2.5, 0.1, 1 / 3, 65504, 70000, -1e-5, 6.1e-5, 3.14159, 1e-8, Infinity, -Infinity, 2049, 2051]);
    const ours = float32ToFloat16(values);
    const mlx = await compute("astype", [tensor("float32", [values.length], values)], { dtype: "float16" });
    expect(Array.from(ours)).toEqual(Array.from(mlx.data));
    const back = await compute("astype", [tensor("float16", [values.length], ours)], { dtype: "float32" });
    expect(Array.from(float16ToFloat32(ours))).toEqual(Array.from(back.data));
  });
});
