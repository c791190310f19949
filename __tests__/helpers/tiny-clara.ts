// A tiny random Llama model whose tokenizer is learned from the example data, written once per
// test file, for CLaRa tests that need real MLX but no downloads.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readPretrainRecords, type PretrainRecord } from "../../lib/data/records";
import { writeTinyModel, type TinyModelOptions } from "../../tools/tiny-model";

export const REPO = path.resolve(__dirname, "..", "..");

export function examplePretrain(file = "pretrain.jsonl"): PretrainRecord[] {
  return readPretrainRecords(path.join(REPO, "example", file)).records;
}

/** Writes the model into a fresh temp dir and returns the dir. */
export function makeTinyClaraBase(options: TinyModelOptions = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-tiny-"));
  const corpus = examplePretrain().map((r) => [r.doc, ...r.questions, ...r.answers].join(" "));
  writeTinyModel(dir, corpus, { hiddenSize: 32, layers: 2, heads: 4, kvHeads: 2, merges: 600, seed: 1, ...options });
  return dir;
}
