// Encoder inputs are left-padded to one width (docMaxLength + 3 + n, ClaraTemplates.encoderInput)
// so that training batches stack. At inference a column that is padding in every row only costs
// time: padding is masked out of attention and RoPE depends on relative positions, so dropping
// such columns leaves every real token's state the same (to rounding). A question of 20 tokens
// then runs as ~20 + n positions instead of docMaxLength + 3 + n.

import type { NativeBatch } from "../native";
import { tensor } from "../tensor";

/** The batch without the leading columns that are padding in every row. */
export function withoutCommonPadding(batch: NativeBatch): NativeBatch {
  const valid = batch.keyValid;
  if (!valid) return batch;
  const [B, L] = batch.ids.shape;
  const v = valid.data as Uint8Array;
  let first = L;
  for (let b = 0; b < B; b++) {
    let i = 0;
    while (i < L && v[b * L + i] === 0) i++;
    first = Math.min(first, i);
  }
  if (first === 0 || first === L) return batch;
  const width = L - first;
  const ids = new Int32Array(B * width);
  const keep = new Uint8Array(B * width);
  for (let b = 0; b < B; b++) {
    ids.set((batch.ids.data as Int32Array).subarray(b * L + first, (b + 1) * L), b * width);
    keep.set(v.subarray(b * L + first, (b + 1) * L), b * width);
  }
  return { ...batch, ids: tensor("int32", [B, width], ids), keyValid: tensor("uint8", [B, width], keep) };
}
