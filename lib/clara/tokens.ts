// CLaRa's added tokens (spec §1.2): <MEM0>…<MEM{n-1}>, <AE>, <ENC>, <SEP>, appended in that
// order right after the model's vocabulary, so native code can address their rows by offset.

import { ClaraError } from "../errors";
import type { Tokenizer } from "../tokenizer";

export interface ClaraTokens {
  /** Ids of <MEM0>…<MEM{n-1}>. */
  mem: number[];
  ae: number;
  enc: number;
  sep: number;
  /** The id the native side sees as the first added row (the base vocabulary size). */
  baseVocab: number;
}

export function memoryTokenNames(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `<MEM${i}>`);
}

/**
 * Adds the tokens to `tokenizer` (idempotent) and checks they sit at baseVocab, baseVocab+1, …
 * When the embedding table is larger than the tokenizer (padded vocabularies), filler tokens
 * take the unused rows first, so the memory tokens still start at the table's end.
 */
export function addClaraTokens(tokenizer: Tokenizer, n: number, baseVocab: number): ClaraTokens {
  const names = [...memoryTokenNames(n), "<AE>", "<ENC>", "<SEP>"];
  const existing = tokenizer.tokenToId(names[0]);
  if (existing === undefined) {
    if (tokenizer.vocabSize > baseVocab) {
      throw new ClaraError(
        "E_TOKENIZER",
        `the tokenizer has ${tokenizer.vocabSize} tokens but the model's embedding table only ${baseVocab} rows`,
        { field: "vocab_size" },
      );
    }
    const fillers = Array.from({ length: baseVocab - tokenizer.vocabSize }, (_, i) => `<|clara_unused_${i}|>`);
    if (fillers.length > 0) tokenizer.addSpecialTokens(fillers);
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
