#!/usr/bin/env node
// clara-train: the command-line face of @clara/mlx. The whole plan from one command:
//
//   clara-train demo                         the pipeline on example/ data at demo size (~10 min on 2 cores)
//   clara-train pipeline                     stage 1 → 2 → 3 → evaluation, with the plan's default paths
//   clara-train stage1|stage2|stage3 ...     one stage (--from <checkpoint> for stages 2 and 3)
//   clara-train make-data ...                stage-2/3 records from a stage-1 file; --example regenerates example/
//   clara-train doctor                       versions, MLX backend/device, BLAS speed, the model
//   clara-train convert <folder> --base --out   one of Apple's CLaRa checkpoints into ours
//
// Every command takes --config run.yaml|run.json (flags override it), --json (one JSON object
// per event on stdout), --quiet and --verbose. Exit codes: 0 done, 1 an internal failure, 2 bad
// input (one line naming the file, line and field), 3 a non-finite loss, 130 interrupted.

import yargs, { type Argv } from "yargs";
import { hideBin } from "yargs/helpers";
import { launch } from "./launch";
import { readConfigFile, type ConfigFile } from "./commands/config-file";
import { convertCommand } from "./commands/convert";
import { doctor, formatDoctor } from "./commands/doctor";
import { onInterrupt, resumeCommand } from "./commands/interrupt";
import { makeData } from "./commands/make-data";
import { describePipeline, runDemo, runPipeline } from "./commands/pipeline";
import { commandSettings } from "./commands/resolve";
import { kebab, settingsFor, SETTINGS, type CommandName } from "./commands/settings";
import { runStageCommand, type StageName } from "./commands/train";
import { CliExit, EXIT, exitCodeFor, formatError, oneLine, Ui } from "./commands/ui";

type Args = Record<string, unknown> & { json?: boolean; quiet?: boolean; verbose?: boolean; config?: string; resume?: boolean };

function addSettings(y: Argv, command: CommandName): Argv {
  for (const key of settingsFor(command)) {
    const spec = SETTINGS[key];
    const type = spec.kind === "bool" ? "boolean" : spec.kind === "number" || spec.kind === "int" ? "number" : "string";
    const text = spec.help?.[command] ?? spec.describe;
    const describe = Array.isArray(spec.kind) ? `${text} (${spec.kind.join(" | ")})` : text;
    y.option(kebab(key), { type, describe, group: spec.group, ...(spec.alias ? { alias: spec.alias } : {}) });
  }
  return y;
}

function uiFor(args: Args): Ui {
  return new Ui({ json: args.json, quiet: args.quiet, verbose: args.verbose, logEvery: typeof args.logEvery === "number" ? args.logEvery : undefined });
}

function configOf(args: Args): ConfigFile | undefined {
  return typeof args.config === "string" ? readConfigFile(args.config) : undefined;
}

const STAGE_HELP: Record<StageName, string> = {
  stage1: "stage 1: pretrain the compressor (QA and paraphrase targets) on stage-1 records",
  stage2: "stage 2: instruction tuning over k compressed documents, from a stage-1 checkpoint (--from)",
  stage3: "stage 3: end-to-end retrieval and generation, from a stage-2 checkpoint (--from)",
};

async function main(argv: string[]): Promise<void> {
  let y = yargs(argv)
    .parserConfiguration({ "populate--": true })
    .scriptName("clara-train")
    .usage("$0 <command> [options]\n\nTrain CLaRa on MLX: stage 1 → stage 2 → stage 3 → evaluation.")
    .option("config", { type: "string", describe: "settings from a YAML or JSON file (flags override it)" })
    .option("json", { type: "boolean", describe: "one JSON object per event on stdout (human text on stderr)" })
    .option("quiet", { type: "boolean", describe: "print only errors and the final result line" })
    .option("verbose", { type: "boolean", describe: "print stack traces with errors" });

  for (const stage of ["stage1", "stage2", "stage3"] as const) {
    y = y.command(
      stage,
      STAGE_HELP[stage],
      (c) => addSettings(c, stage).option("resume", { type: "boolean", describe: "continue the unfinished checkpoint at --out (identical results)" }),
      async (args: Args) => {
        const ui = uiFor(args);
        const settings = commandSettings(stage, args, configOf(args));
        const interrupt = onInterrupt(ui);
        try {
          await runStageCommand({ stage, settings, resume: Boolean(args.resume), signal: interrupt.signal, ui, resumeCommand: resumeCommand() });
        } finally {
          interrupt.dispose();
        }
      },
    );
  }

  for (const command of ["pipeline", "demo"] as const) {
    y = y.command(
      command,
      command === "pipeline"
        ? "stage 1 → stage 2 → stage 3 → evaluation with the plan's default paths; skips stages whose checkpoint is complete and matches"
        : "the pipeline on the bundled example/ data and the default model at a size that runs in about 10 minutes",
      (c) =>
        addSettings(c, command)
          .option("resume", { type: "boolean", describe: "continue an unfinished stage" })
          .option("stage1", { hidden: true })
          .option("stage2", { hidden: true })
          .option("stage3", { hidden: true })
          .option("eval", { hidden: true })
          .epilogue(
            "Per-stage settings: --stage1.<setting>, --stage2.<setting>, --stage3.<setting>, --eval.<setting> " +
              "(e.g. --stage1.max-steps 20 --stage3.candidates 8), or stage1:/stage2:/stage3:/eval: sections in --config.",
          ),
      async (args: Args) => {
        const ui = uiFor(args);
        const run = { argv: args, resume: Boolean(args.resume), ui };
        const result = command === "demo" ? await runDemo({ ...run, configFile: args.config }) : await runPipeline({ ...run, command, config: configOf(args) });
        ui.result(describePipeline(result), { ...result });
      },
    );
  }

  y = y
    .command(
      "make-data",
      "derive stage-2/3 records from a stage-1 file (--from, --instruction, --end-to-end), or regenerate example/ (--example)",
      (c) => addSettings(c, "make-data"),
      async (args: Args) => {
        const ui = uiFor(args);
        const r = makeData(commandSettings("make-data", args, configOf(args)), ui);
        ui.result(`wrote ${r.files.map((f) => f.file).join(", ")}`, { files: r.files });
      },
    )
    .command(
      "doctor",
      "versions, MLX backend and device, BLAS speed, and whether the default model is present",
      () => {},
      async (args: Args) => {
        const report = await doctor();
        console.log(args.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
      },
    )
    .command(
      "convert <folder>",
      "convert one of Apple's CLaRa checkpoint folders into this package's .npz checkpoint",
      (c) =>
        c
          .positional("folder", { type: "string", describe: "the reference folder, e.g. CLaRa-7B-Instruct/compression-16" })
          .option("base", { type: "string", demandOption: true, describe: "the base model folder (Mistral-7B-Instruct-v0.2)" })
          .option("out", { type: "string", demandOption: true, describe: "the .npz to write" })
          .option("check-base", { type: "boolean", default: true, describe: "compare the checkpoint's base rows with the base model's" })
          .option("quantize", { type: "string", describe: "base precision the checkpoint loads with: 4 or 8 (QLoRA: CLaRa-7B on a 16 GB Mac), source, or float" })
          .option("group-size", { type: "number", describe: "with --quantize 4|8: affine group size, 32, 64 (default) or 128" }),
      async (args: Args) => {
        const ui = uiFor(args);
        const result = convertCommand(
          {
            folder: args.folder as string,
            base: args.base as string,
            out: args.out as string,
            checkBase: args.checkBase as boolean,
            quantize: args.quantize === undefined ? undefined : String(args.quantize),
            groupSize: args.groupSize as number | undefined,
          },
          (line) => (line.startsWith("warning: ") ? ui.warn(line.slice(9)) : ui.info(line)),
        );
        ui.result(`wrote ${result.file}`, { ...result });
      },
    )
    .command(
      "launch",
      "run a clara-train command data-parallel over MLX's distributed layer: clara-train launch --nproc 2 -- stage1 …",
      (c) =>
        c
          .option("nproc", { type: "number", describe: "ranks to start on this machine (ring backend over loopback)" })
          .option("hosts", { type: "string", describe: "comma-separated host of each rank (e.g. Thunderbolt bridge IPs)" })
          .option("rank", { type: "number", describe: "with --hosts: the rank to start on this machine" })
          .option("base-port", { type: "number", describe: "first TCP port of the ring (rank i uses base + i)" })
          .option("backend", { type: "string", default: "ring", describe: "MLX distributed backend: ring, mpi, jaccl, nccl or any" })
          .strict(false),
      async (args: Args) => {
        const rest = (args["--"] as string[] | undefined) ?? [];
        if (rest.length === 0) throw new CliUsageError("name the command to run after --, e.g. clara-train launch --nproc 2 -- stage1 --data …");
        const hosts = typeof args.hosts === "string" ? (args.hosts as string).split(",").map((h) => h.trim()).filter(Boolean) : undefined;
        if (!hosts && !(Number(args.nproc) >= 2)) throw new CliUsageError("give --nproc N (N ≥ 2) or --hosts h1,h2,…");
        const code = await launch({
          command: [process.execPath, __filename, ...rest],
          hosts,
          nproc: args.nproc as number | undefined,
          rank: args.rank as number | undefined,
          basePort: args.basePort as number | undefined,
          backend: args.backend as string,
        });
        if (code !== 0) throw new CliExit(code);
      },
    )
    .demandCommand(1, "name a command: demo, pipeline, stage1, stage2, stage3, make-data, doctor, convert or launch")
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(120, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      const command = argv.find((a) => !a.startsWith("-"));
      throw new CliUsageError(`${tidyUsage(oneLine(msg))} (see clara-train ${command ? `${command} ` : ""}--help)`);
    });
  await y.parseAsync();
}

class CliUsageError extends Error {}

/** yargs lists an unknown --foo-bar twice (foo-bar, fooBar): name it once, as typed. */
function tidyUsage(msg: string): string {
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (!m) return msg;
  const names = m[1].split(", ");
  const kept = names.filter((n) => !(n !== n.toLowerCase() && names.includes(kebab(n))));
  return `Unknown argument${kept.length > 1 ? "s" : ""}: ${kept.map((n) => `--${n}`).join(", ")}`;
}

function finish(code: number): void {
  // Let stdout drain (a pipe) before leaving; native worker threads must not keep the process alive.
  process.exitCode = code;
  process.stdout.write("", () => process.exit(code));
}

main(hideBin(process.argv)).then(
  () => finish(EXIT.ok),
  (err: unknown) => {
    const argv = process.argv;
    if (err instanceof CliExit) {
      if (err.message) process.stderr.write(`${err.message}\n`);
      return finish(err.code);
    }
    const code = err instanceof CliUsageError ? EXIT.badInput : exitCodeFor(err);
    const line = err instanceof CliUsageError ? `clara-train: ${err.message}` : formatError(err);
    if (argv.includes("--json")) {
      const e = err as { code?: string; file?: string; line?: number; field?: string; message?: string };
      process.stdout.write(
        JSON.stringify({ type: "error", exitCode: code, code: e.code, file: e.file, line: e.line, field: e.field, message: line.replace(/^clara-train: /, "") }) + "\n",
      );
    }
    process.stderr.write(`${line}\n`);
    if (argv.includes("--verbose") && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    else if (code === EXIT.failure) process.stderr.write("(run with --verbose for the stack trace)\n");
    finish(code);
  },
);
