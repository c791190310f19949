// Token sequences -> the left-padded int32 batches native code takes. Left padding keeps every
// sequence's last token in the last column, which generation and the reference both rely on.

import { invalidArgument } from "../errors";
import { tensor, type Tensor } from "../tensor";

export interface TokenBatch {
  ids: Tensor<"int32">;      // [B, L]
  keyValid: Tensor<"uint8">; // [B, L] 1 = token, 0 = padding
  lossMask?: Tensor<"uint8">; // [B, L] 1 where ids[b, t] is a supervised target
}

/**
 * Left-pads `sequences` to their longest length (or `length`). `lossMasks`, when given, are
 * per-token 0/1 flags aligned with each sequence.
 */
export function leftPad(sequences: number[][], padId: number, options: { lossMasks?: number[][]; length?: number } = {}): TokenBatch {
  if (!Array.isArray(sequences) || sequences.length === 0) throw invalidArgument("sequences", "a non-empty array of token arrays", sequences);
  const B = sequences.length;
  const L = options.length ?? Math.max(...sequences.map((s) => s.length));
  if (L === 0) throw invalidArgument("sequences", "at least one token", sequences);
  const ids = new Int32Array(B * L).fill(padId);
  const valid = new Uint8Array(B * L);
  const loss = options.lossMasks ? new Uint8Array(B * L) : undefined;
  sequences.forEach((seq, b) => {
    if (seq.length > L) throw invalidArgument(`sequences[${b}]`, `at most ${L} tokens`, seq);
    const offset = b * L + (L - seq.length);
    for (let t = 0; t < seq.length; t++) {
      ids[offset + t] = seq[t];
      valid[offset + t] = 1;
      if (loss) loss[offset + t] = options.lossMasks![b][t] ? 1 : 0;
    }
  });
  return {
    ids: tensor("int32", [B, L], ids),
    keyValid: tensor("uint8", [B, L], valid),
    ...(loss ? { lossMask: tensor("uint8", [B, L], loss) } : {}),
  };
}
