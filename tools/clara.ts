#!/usr/bin/env node
// clara: use a trained CLaRa model. Build an on-disk index of compressed documents once, then
// ask questions against it.
//   clara index build <docs.jsonl|file.pdf> --checkpoint <stage3.npz> --out <dir>
//   clara index add <docs.jsonl|file.pdf> --index <dir>
//   clara ask --index <dir> "question"        clara ask --index <dir> --interactive

import * as fs from "node:fs";
import * as path from "node:path";
import * as readline from "node:readline";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { ClaraError, ClaraIndex, ClaraModel, type IndexDocument } from "../lib";
import { readJsonl } from "../lib/data/jsonl";
import { formatError, runCli, usageFailure } from "./commands/ui";

/** Documents from a JSONL file ({id?, text | doc | docs[0] | content, source?, page?}) or a PDF. */
async function readDocuments(file: string, docMaxLength: number, clara: ClaraModel): Promise<IndexDocument[]> {
  if (file.toLowerCase().endsWith(".pdf")) {
    // The PDF reader chunks to the compressor's document length (lib/eval/pdf.ts); the evaluation
    // code loads only here, when a PDF is indexed.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { pdfChunks } = require("../lib/eval") as typeof import("../lib/eval");
    const chunks = await pdfChunks(file, { maxTokens: docMaxLength, countTokens: (t) => clara.model.tokenizer.encode(t).length });
    return chunks.map((c) => ({ id: c.id, text: c.text, source: path.basename(file), page: c.page }));
  }
  return readJsonl(file).map(({ value, line }) => {
    const v = value as Record<string, unknown>;
    const text = [v.text, v.doc, Array.isArray(v.docs) ? v.docs[0] : undefined, v.content].find((t) => typeof t === "string" && t.length > 0);
    if (typeof text !== "string") {
      throw new ClaraError("E_DATA_FIELD", `${file}:${line}: a document needs a non-empty "text" (or "doc", "docs", "content") string`, {
        file,
        line,
        field: "text",
      });
    }
    return {
      text,
      ...(typeof v.id === "string" || typeof v.id === "number" ? { id: String(v.id) } : {}),
      source: typeof v.source === "string" ? v.source : path.basename(file),
      ...(typeof v.page === "number" ? { page: v.page } : {}),
    };
  });
}

/** The index's checkpoint: `given` (--checkpoint) or the one its index.json records, which must still exist. */
const checkpointOf = (dir: string, given?: string): string => {
  if (given) return given;
  const file = path.join(dir, "index.json");
  if (!fs.existsSync(file)) throw new ClaraError("E_INDEX", `${dir} is not a CLaRa index (no index.json)`, { file });
  const cp = JSON.parse(fs.readFileSync(file, "utf8")).checkpoint;
  if (typeof cp !== "string") throw new ClaraError("E_INDEX", `${file} does not name its checkpoint; pass --checkpoint <stage3.npz>`, { file, field: "checkpoint" });
  if (!fs.existsSync(cp)) {
    throw new ClaraError("E_INDEX", `the index was built with ${cp}, which no longer exists (moved?); pass --checkpoint <its new path>`, { file, field: "checkpoint" });
  }
  return cp;
};

const CHECKPOINT_OVERRIDE = { type: "string", describe: "the index's stage-3 checkpoint, when it is no longer where index.json says" } as const;

function progress(quiet: boolean) {
  return (done: number, total: number) => {
    if (!quiet) process.stderr.write(`\rcompressed ${done}/${total} documents`);
    if (!quiet && done === total) process.stderr.write("\n");
  };
}

async function printAnswer(index: ClaraIndex, question: string, k: number, maxTokens: number, json: boolean) {
  const a = await index.answer(question, { k, maxTokens });
  if (json) {
    console.log(JSON.stringify(a));
    return;
  }
  console.log(a.answer);
  for (const s of a.sources) console.log(`  [${s.score.toFixed(3)}] ${s.id}${s.page !== undefined ? ` (page ${s.page})` : ""}: ${s.text.slice(0, 80).replace(/\s+/g, " ")}…`);
  console.log(`  (${a.timings.totalMs.toFixed(0)} ms: query ${a.timings.queryMs.toFixed(0)}, search ${a.timings.searchMs.toFixed(0)}, generate ${a.timings.generateMs.toFixed(0)})`);
}

async function main(argv: string[]) {
  await yargs(argv)
    .scriptName("clara")
    .option("json", { type: "boolean", default: false })
    .option("quiet", { type: "boolean", default: false })
    .option("verbose", { type: "boolean", default: false })
    .command("index", "build or grow an index of compressed documents", (y) =>
      y
        .command(
          "build <input>",
          "compress documents (JSONL or PDF) into a new index",
          (c) =>
            c
              .positional("input", { type: "string", demandOption: true })
              .option("checkpoint", { type: "string", demandOption: true, describe: "a stage-3 checkpoint (has the query reasoner)" })
              .option("out", { type: "string", demandOption: true })
              .option("model", { type: "string", describe: "base model path, if not the one recorded in the checkpoint" })
              .option("dtype", { choices: ["float32", "float16"] as const, default: "float32" as const })
              .option("batch-size", { type: "number", default: 8 }),
          async (a) => {
            const clara = await ClaraModel.load(a.checkpoint, { modelPath: a.model });
            const docs = await readDocuments(a.input, clara.docMaxLength, clara);
            const index = await ClaraIndex.build(clara, docs, a.out, { dtype: a.dtype, batchSize: a["batch-size"], onProgress: progress(a.quiet) }, a.checkpoint);
            console.log(a.json ? JSON.stringify(index.info) : `indexed ${index.size} documents in ${a.out}`);
            await clara.dispose();
          },
        )
        .command(
          "add <input>",
          "compress more documents into an existing index",
          (c) =>
            c
              .positional("input", { type: "string", demandOption: true })
              .option("index", { type: "string", demandOption: true })
              .option("checkpoint", CHECKPOINT_OVERRIDE)
              .option("batch-size", { type: "number", default: 8 }),
          async (a) => {
            const clara = await ClaraModel.load(checkpointOf(a.index, a.checkpoint));
            const index = await ClaraIndex.open(a.index, clara);
            const before = index.size;
            await index.add(await readDocuments(a.input, clara.docMaxLength, clara), { batchSize: a["batch-size"], onProgress: progress(a.quiet) });
            console.log(a.json ? JSON.stringify(index.info) : `added ${index.size - before} documents; ${a.index} holds ${index.size}`);
            await clara.dispose();
          },
        )
        .demandCommand(1),
    )
    .command(
      "ask [question]",
      "answer a question from an index",
      (c) =>
        c
          .positional("question", { type: "string" })
          .option("index", { type: "string", demandOption: true })
          .option("checkpoint", CHECKPOINT_OVERRIDE)
          .option("k", { type: "number", default: 5 })
          .option("max-tokens", { type: "number", default: 64 })
          .option("interactive", { type: "boolean", default: false }),
      async (a) => {
        const clara = await ClaraModel.load(checkpointOf(a.index, a.checkpoint));
        const index = await ClaraIndex.open(a.index, clara);
        if (a.interactive) {
          const rl = readline.createInterface({ input: process.stdin, output: process.stderr, prompt: "question> " });
          rl.prompt();
          for await (const line of rl) {
            // A bad question (too long for the model, …) is reported and the session goes on.
            if (line.trim()) {
              try {
                await printAnswer(index, line.trim(), a.k, a["max-tokens"], a.json);
              } catch (err) {
                if (!(err instanceof ClaraError)) throw err;
                console.error(a.json ? JSON.stringify({ type: "error", code: err.code, message: err.message }) : formatError(err, "clara"));
              }
            }
            rl.prompt();
          }
        } else {
          if (!a.question) throw new ClaraError("E_INVALID_ARGUMENT", "give a question, or --interactive", { field: "question" });
          await printAnswer(index, a.question, a.k, a["max-tokens"], a.json);
        }
        await clara.dispose();
      },
    )
    .demandCommand(1, "Name a command; see --help.")
    .strict()
    .fail(usageFailure)
    .parseAsync();
}

// An allocation failure inside MLX: the fix is a smaller batch.
const outOfMemoryHint = (err: unknown) =>
  err instanceof Error && /out of memory|\[malloc\]|allocat/i.test(err.message) ? " (lower --batch-size)" : "";

runCli("clara", () => main(hideBin(process.argv)), outOfMemoryHint);
