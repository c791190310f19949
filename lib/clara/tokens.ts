// CLaRa's added tokens (spec §1.2): <MEM0>…<MEM{n-1}>, <AE>, <ENC>, <SEP>, appended in that
// order right after the tokenizer's last id, as the reference's add_special_tokens does, so
// native code can address their rows by offset.

import { ClaraError } from "../errors";
import type { Tokenizer } from "../tokenizer";

export interface ClaraTokens {
  /** Ids of <MEM0>…<MEM{n-1}>. */
  mem: number[];
  ae: number;
  enc: number;
  sep: number;
  /**
   * The first added id: the tokenizer's length. Below the embedding table's rows for a padded
   * vocabulary (Qwen's): the reference then resizes the table to len(tokenizer) + the new
   * tokens, so they take the rows right after the tokenizer's last id (native keeps that layout).
   */
  baseVocab: number;
}

export function memoryTokenNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `<MEM${i}>`);
}

/**
 * Adds the tokens to `tokenizer` (idempotent) right after its last id and checks they sit at
 * baseVocab, baseVocab+1, … `tableRows` is the embedding table's row count (config vocab_size).
 */
export function addClaraTokens(tokenizer: Tokenizer, n: number, tableRows: number): ClaraTokens {
  const names = [...memoryTokenNames(n), "<AE>", "<ENC>", "<SEP>"];
  const existing = tokenizer.tokenToId(names[0]);
  const baseVocab = existing ?? tokenizer.vocabSize;
  if (existing === undefined) {
    if (tokenizer.vocabSize > tableRows) {
      throw new ClaraError(
        "E_TOKENIZER",
        `the tokenizer has ${tokenizer.vocabSize} tokens but the model's embedding table only ${tableRows} rows`,
        { field: "vocab_size" },
      );
    }
    tokenizer.addSpecialTokens(names);
  }
  const ids = names.map((t) => tokenizer.tokenToId(t));
  ids.forEach((id, i) => {
    if (id !== baseVocab + i) {
      throw new ClaraError("E_TOKENIZER", `${names[i]} has id ${id}, expected ${baseVocab + i}; the tokenizer was extended differently`, {
        field: names[i],
      });
    }
  });
  return { mem: ids.slice(0, n) as number[], ae: baseVocab + n, enc: baseVocab + n + 1, sep: baseVocab + n + 2, baseVocab };
}
