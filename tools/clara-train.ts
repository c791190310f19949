#!/usr/bin/env node
// clara-train: the command-line face of @clara/mlx. Commands parse arguments, call lib/, print.

import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { ClaraError } from "../lib";
import { doctor, formatDoctor } from "./commands/doctor";

async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName("clara-train")
    .option("json", { type: "boolean", default: false, describe: "print JSON instead of text" })
    .option("verbose", { type: "boolean", default: false, describe: "print stack traces on errors" })
    .command(
      "doctor",
      "versions, MLX backend and device, BLAS speed, and whether the default model is present",
      () => {},
      async (args) => {
        const report = await doctor();
        console.log(args.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
      },
    )
    .demandCommand(1, "Name a command; see --help.")
    .strict()
    .fail((msg, err, y) => {
      if (err) throw err;
      console.error(`${msg}\n\n${y.help()}`);
      process.exit(2);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  const verbose = process.argv.includes("--verbose");
  if (err instanceof ClaraError && !verbose) {
    const where = [err.file, err.line, err.field].filter((x) => x !== undefined).join(":");
    console.error(`clara-train: ${where ? `${where}: ` : ""}${err.message}`);
  } else {
    console.error(verbose && err instanceof Error ? err.stack : `clara-train: ${String((err as Error)?.message ?? err)}`);
  }
  process.exit(err instanceof ClaraError && err.code !== "E_NATIVE" ? 2 : 1);
});
