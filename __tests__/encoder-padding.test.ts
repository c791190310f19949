// Dropping the padding columns every row shares (lib/clara/encoder-padding.ts) leaves the
// compressor's memory vectors and its MSE term as they were, to float32 rounding, for one
// document and for a batch of documents of different lengths; a row keeps its own padding.

import { ClaraModel } from "../lib/clara/clara-model";
import { withoutCommonPadding } from "../lib/clara/encoder-padding";
import { makeTinyClaraBase } from "./helpers/tiny-clara";

let clara: ClaraModel;
beforeAll(async () => {
  clara = await ClaraModel.create(makeTinyClaraBase(), { compressionRate: 8, docMaxLength: 64 });
}, 60_000);
afterAll(() => clara.dispose());

const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

test("columns that are padding in every row are dropped, no others", () => {
  const batch = clara.encoderBatch(["a short one", "a somewhat longer document, with a few more words in it than the other"]);
  const trimmed = withoutCommonPadding(batch);
  const [B, L] = batch.ids.shape;
  const width = trimmed.ids.shape[1];
  expect(trimmed.ids.shape[0]).toBe(B);
  expect(width).toBeLessThan(L);
  const valid = trimmed.keyValid!.data as Uint8Array;
  // The longer row has no padding left; the shorter keeps the difference as its own padding.
  expect(valid.subarray(width, 2 * width).every((x) => x === 1)).toBe(true);
  expect(valid[0]).toBe(0);
  expect(Array.from(trimmed.ids.data as Int32Array).slice(width)).toEqual(Array.from(batch.ids.data as Int32Array).slice(2 * L - width));
  // A full-width row: nothing to drop.
  const full = clara.encoderBatch(["word ".repeat(200)]);
  expect(withoutCommonPadding(full)).toBe(full);
});

test("memory vectors and MSE are unchanged, one document and a batch", async () => {
  for (const texts of [["Velmora was founded in 1911 by a glassmaker."], ["Velmora was founded in 1911.", "The river runs north of the old town, past the mill and the bridge, to the sea."]]) {
    const batch = clara.encoderBatch(texts);
    const padded = await clara.handle.claraCompress({ docs: batch, spec: clara.spec(1) });
    const trimmed = await clara.handle.claraCompress({ docs: withoutCommonPadding(batch), spec: clara.spec(1) });
    expect(trimmed.vectors.shape).toEqual(padded.vectors.shape);
    const scale = Math.max(...Array.from(padded.vectors.data as Float32Array, Math.abs));
    expect(maxAbs(trimmed.vectors.data as Float32Array, padded.vectors.data as Float32Array) / scale).toBeLessThan(1e-4);
    expect(trimmed.mse).toBeCloseTo(padded.mse, 5);
  }
});
