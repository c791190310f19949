// `clara-train convert <folder> --base <Mistral dir> --out checkpoints/clara-7b-16.npz`: one of
// Apple's CLaRa checkpoint folders (config.json, adapters.pth, decoder_first_last_layers.pth)
// into this package's .npz checkpoint, read by a weights-only .pth reader (nothing in the
// checkpoint can run code).

import * as path from "node:path";
import { convertReferenceCheckpoint, type ConvertResult } from "../../lib/io";
import { parseQuantizeFlag } from "../../lib/model/quantization";

export interface ConvertArgs {
  /** The reference folder, e.g. CLaRa-7B-Instruct/compression-16. */
  folder: string;
  /** The base model folder (mistralai/Mistral-7B-Instruct-v0.2). */
  base: string;
  /** The .npz to write. */
  out: string;
  /** Compare the checkpoint's base embedding rows with the base model's (default true). */
  checkBase?: boolean;
  /** --quantize 4|8|source|float (and --group-size): the base precision the checkpoint loads with. */
  quantize?: string;
  groupSize?: number;
}

export function convertCommand(argv: ConvertArgs, log: (line: string) => void = (l) => process.stdout.write(l + "\n")): ConvertResult {
  const out = argv.out.endsWith(".npz") ? argv.out : `${argv.out}.npz`;
  const result = convertReferenceCheckpoint(argv.folder, argv.base, out, {
    checkBase: argv.checkBase ?? true,
    quantize: parseQuantizeFlag(argv.quantize, argv.groupSize),
    onWarning: (m) => log(`warning: ${m}`),
  });
  log(
    `converted ${argv.folder} (${result.stage}, ρ=${result.compressionRate}, ${result.nMem} memory tokens, ` +
      `adapters ${result.adapters.join(", ")}) into ${path.resolve(result.file)} (${result.tensors} tensors)`,
  );
  return result;
}
