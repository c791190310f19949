// tools/tiny-model.ts: contextEmbeddings starts words used alike close together (as in a
// pretrained model) and keeps every token distinct; without it the rows are plain noise.
import * as fs from "node:fs";
import * as path from "node:path";
import { Tokenizer } from "../lib/tokenizer";
import { makeTinyClaraBase } from "./helpers/tiny-clara";

const COLOURS = ["red", "blue", "green", "yellow", "orange", "purple", "white", "black", "grey", "brown", "pink"];
const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

/** The embedding rows of a tiny model folder, read straight from its safetensors file. */
function embeddingRows(dir: string): { rows: Float32Array; H: number } {
  const buf = fs.readFileSync(path.join(dir, "model.safetensors"));
  const n = Number(buf.readBigUInt64LE(0));
  const entry = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"))["model.embed_tokens.weight"];
  const [start, end] = entry.data_offsets as [number, number];
  const bytes = buf.subarray(8 + n + start, 8 + n + end);
  return { rows: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), H: entry.shape[1] };
}

function similarities(share: number) {
  const dir = makeTinyClaraBase({ hiddenSize: 64, merges: 2000, contextEmbeddings: share });
  try {
    const tok = Tokenizer.fromHfDir(dir);
    const { rows, H } = embeddingRows(dir);
    // Single-token words as they appear mid-sentence (with their leading space); 2,000 merges make
    // most colours and months one token each.
    const ids = (words: string[]) => words.map((w) => tok.encode(` ${w}`)).filter((t) => t.length === 1).map((t) => t[0]);
    const row = (i: number) => rows.subarray(i * H, (i + 1) * H);
    const cos = (a: number, b: number) => {
      let d = 0, na = 0, nb = 0;
      for (let h = 0; h < H; h++) (d += row(a)[h] * row(b)[h]), (na += row(a)[h] ** 2), (nb += row(b)[h] ** 2);
      return d / Math.sqrt(na * nb);
    };
    const mean = (pairs: [number, number][]) => pairs.reduce((s, [a, b]) => s + cos(a, b), 0) / pairs.length;
    const colours = ids(COLOURS);
    const months = ids(MONTHS);
    expect(colours.length).toBeGreaterThanOrEqual(6);
    expect(months.length).toBeGreaterThanOrEqual(6);
    const within = mean([...colours.flatMap((a, i) => colours.slice(i + 1).map((b) => [a, b] as [number, number])), ...months.flatMap((a, i) => months.slice(i + 1).map((b) => [a, b] as [number, number]))]);
    const across = mean(colours.flatMap((a) => months.map((b) => [a, b] as [number, number])));
    const closest = Math.max(...colours.flatMap((a, i) => colours.slice(i + 1).map((b) => cos(a, b))));
    console.log(`share ${share}: mean cosine within a kind ${within.toFixed(3)}, across kinds ${across.toFixed(3)}, closest colours ${closest.toFixed(3)}`);
    return { within, across, closest };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

it("contextEmbeddings puts words used alike together and keeps them distinct; 0 leaves noise", () => {
  const plain = similarities(0);
  const mixed = similarities(0.8);
  expect(Math.abs(plain.within - plain.across)).toBeLessThan(0.03);
  expect(mixed.within).toBeGreaterThan(mixed.across + 0.05);
  expect(mixed.closest).toBeLessThan(0.95);
});
