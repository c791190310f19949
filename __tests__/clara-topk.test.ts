// The straight-through differentiable top-k (spec §2.3) against its definition: the forward
// value is the hard one-hot of the top-k, and the gradient is that of the soft relaxation,
// checked by finite differences computed here in float64.
import { native } from "../lib/native";
import { tensor } from "../lib/tensor";

const TAU = 0.02;

/** K_soft of the reference (M:274-297) for fixed hard indices, in float64. */
function softRelaxation(s: number[][], idx: number[][], tau: number): number[][][] {
  return s.map((row, b) => {
    const taken = new Array(row.length).fill(0);
    const st = row.map((v) => v / Math.max(tau, 1e-6));
    return idx[b].map((i) => {
      const logits = st.map((v, j) => v + Math.log(1 - taken[j] + 1e-8));
      const m = Math.max(...logits);
      const e = logits.map((v) => Math.exp(v - m));
      const z = e.reduce((a, c) => a + c, 0);
      taken[i] = Math.min(taken[i] + 1, 1);
      return e.map((v) => v / z);
    });
  });
}

function objective(s: number[][], idx: number[][], cot: number[][][]): number {
  const soft = softRelaxation(s, idx, TAU);
  let total = 0;
  soft.forEach((slots, b) => slots.forEach((p, j) => p.forEach((v, i) => (total += v * cot[b][j][i]))));
  return total;
}

describe("differentiable top-k", () => {
  const B = 2;
  const N = 6;
  const k = 3;
  // Scores with clear gaps (no ties) and a scale where τ = 0.02 leaves the softmax informative.
  const s = [
    [0.31, 0.12, 0.44, 0.05, 0.36, 0.2],
    [0.02, 0.27, 0.15, 0.33, 0.09, 0.24],
  ];
  const cot = Array.from({ length: B }, (_, b) =>
    Array.from({ length: k }, (_, j) => Array.from({ length: N }, (_, i) => Math.sin(1 + b * 7 + j * 3 + i * 1.7))),
  );
  const flat = (x: number[][] | number[][][]) => new Float32Array((x as number[][]).flat(2) as number[]);

  it("returns the hard one-hot of the top-k, best first", async () => {
    const r = await native().differentiableTopK(tensor("float32", [B, N], flat(s)), k, TAU, tensor("float32", [B, k, N], flat(cot)));
    const idx = Array.from(r.indices.data);
    expect(idx).toEqual([2, 4, 0, 3, 1, 5]);
    const w = Array.from(r.weights.data as Float32Array);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < k; j++)
        for (let i = 0; i < N; i++) expect(w[(b * k + j) * N + i]).toBeCloseTo(i === idx[b * k + j] ? 1 : 0, 6);
  });

  it("has the gradient of the soft relaxation (central finite differences)", async () => {
    const r = await native().differentiableTopK(tensor("float32", [B, N], flat(s)), k, TAU, tensor("float32", [B, k, N], flat(cot)));
    const idx = [0, 1].map((b) => Array.from(r.indices.data).slice(b * k, (b + 1) * k) as number[]);
    const grad = Array.from(r.gradScores.data as Float32Array);
    const eps = 1e-5;
    let worst = 0;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < N; i++) {
        const up = s.map((row) => [...row]);
        const down = s.map((row) => [...row]);
        up[b][i] += eps;
        down[b][i] -= eps;
        const fd = (objective(up, idx, cot) - objective(down, idx, cot)) / (2 * eps);
        const err = Math.abs(fd - grad[b * N + i]) / Math.max(1, Math.abs(fd));
        worst = Math.max(worst, err);
      }
    }
    expect(worst).toBeLessThan(1e-3);
    expect(grad.some((g) => Math.abs(g) > 1e-2)).toBe(true); // the check is not vacuous
  });

  it("refuses k larger than the candidates", async () => {
    await expect(
      native().differentiableTopK(tensor("float32", [1, 3], new Float32Array(3)), 4, TAU, tensor("float32", [1, 4, 3], new Float32Array(12))),
    ).rejects.toThrow(/k = 4 must be in 1..3/);
  });
});
