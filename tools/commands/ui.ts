// What clara-train prints, and where. Human text goes to stderr (progress, notes, warnings)
// and the final result line to stdout; --json puts one JSON object per event on stdout and all
// human text on stderr; --quiet keeps only errors and the final result line. Training progress
// is a bar per stage on a terminal and plain log lines otherwise (CI).

import { SingleBar } from "cli-progress";
import { ClaraError, type TrainEvent } from "../../lib";

export interface UiOptions {
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  /** Progress bar instead of log lines (default: stderr is a terminal). */
  tty?: boolean;
  /** Log line interval in updates when not a terminal (default: about 20 lines per stage). */
  logEvery?: number;
}

export class Ui {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly tty: boolean;
  logEvery?: number;
  private bar: SingleBar | null = null;

  constructor(o: UiOptions = {}) {
    this.json = Boolean(o.json);
    this.quiet = Boolean(o.quiet);
    this.verbose = Boolean(o.verbose);
    this.tty = o.tty ?? Boolean(process.stderr.isTTY);
    this.logEvery = o.logEvery;
  }

  /** A note for people (stderr); silent under --quiet. */
  info(message: string): void {
    if (this.quiet) return;
    this.stopBar();
    process.stderr.write(`${message}\n`);
  }

  warn(message: string, data: Record<string, unknown> = {}): void {
    this.event({ type: "warning", message, ...data });
    if (this.quiet) return;
    this.stopBar();
    process.stderr.write(`warning: ${message}\n`);
  }

  /** One JSON object on stdout (only under --json). */
  event(e: Record<string, unknown>): void {
    if (this.json) process.stdout.write(`${JSON.stringify(e)}\n`);
  }

  /** The final line of a command: stdout (a "result" event under --json). */
  result(message: string, data: Record<string, unknown>): void {
    this.stopBar();
    if (this.json) {
      this.event({ type: "result", ...data });
      if (!this.quiet) process.stderr.write(`${message}\n`);
    } else process.stdout.write(`${message}\n`);
  }

  /** A line that must be seen even under --quiet (interruptions). */
  notice(message: string): void {
    this.stopBar();
    process.stderr.write(`${message}\n`);
  }

  stopBar(): void {
    if (this.bar) {
      this.bar.stop();
      this.bar = null;
    }
  }

  /** The onEvent handler of a training run. */
  trainEvents(label: string): (e: TrainEvent) => void {
    let every = this.logEvery;
    let lastEval: string = "";
    return (e) => {
      this.event(e as unknown as Record<string, unknown>);
      if (this.json || this.quiet) return;
      switch (e.type) {
        case "start":
          every ??= Math.max(1, Math.round(e.totalSteps / 20));
          this.info(
            `${label}: ${e.step > 0 ? `resuming at update ${e.step} of ${e.totalSteps}` : `${e.totalSteps} updates`}, ` +
              `${e.examples} training and ${e.evalExamples} held-out examples, ${e.trainable.parameters.toLocaleString("en-US")} trainable parameters`,
          );
          if (this.tty) {
            this.bar = new SingleBar({
              format: `${label} {bar} {value}/{total} | loss {loss} | lr {lr} | {tps} tok/s | ETA {etaText} | mem {mem}{extra}`,
              barsize: 24,
              barCompleteChar: "\u2588",
              barIncompleteChar: "\u2591",
              hideCursor: true,
              clearOnComplete: false,
              stream: process.stderr,
              etaBuffer: 1,
            });
            this.bar.start(e.totalSteps, e.step, { loss: "-", lr: "-", tps: "-", etaText: "-", mem: "-", extra: "" });
          }
          break;
        case "step": {
          const p = {
            loss: fmtLoss(e.loss),
            lr: e.lr.toExponential(2),
            tps: Math.round(e.tokensPerSecond).toString(),
            etaText: duration(e.etaSeconds),
            mem: bytes(e.memory.active),
            extra: lastEval,
          };
          if (this.bar) this.bar.update(e.step, p);
          else if (e.step === 1 || e.step % every! === 0 || e.step === e.totalSteps) {
            process.stderr.write(
              `${label} update ${e.step}/${e.totalSteps} loss ${p.loss} lr ${p.lr} ${p.tps} tok/s ${e.stepSeconds.toFixed(2)} s/update ETA ${p.etaText} mem ${p.mem}\n`,
            );
          }
          break;
        }
        case "eval":
          lastEval = ` | eval ${fmtLoss(e.loss)}`;
          if (this.bar) this.bar.update({ extra: lastEval });
          else process.stderr.write(`${label} eval at update ${e.step}: loss ${fmtLoss(e.loss)} over ${e.examples} held-out examples\n`);
          break;
        case "checkpoint":
          if (!this.bar && !e.complete) process.stderr.write(`${label} checkpoint at update ${e.step}: ${e.path}\n`);
          break;
        case "end":
          this.stopBar();
          break;
      }
    };
  }
}

export function fmtLoss(x: number): string {
  return Number.isFinite(x) ? x.toFixed(4) : String(x);
}

export function duration(s: number): string {
  if (!Number.isFinite(s)) return "-";
  s = Math.round(s);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export function bytes(n: number): string {
  if (!Number.isFinite(n) || n <= 0) return "-";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

// ---------------------------------------------------------------------------------------
// Errors and exit codes

/** Exit codes: 0 done, 1 a failure of ours, 2 bad input, 3 non-finite loss, 130 interrupted. */
export const EXIT = { ok: 0, failure: 1, badInput: 2, nonFinite: 3, interrupted: 130 } as const;

/** Ends the command with a code after its message was printed. */
export class CliExit extends Error {
  constructor(
    readonly code: number,
    message = "",
  ) {
    super(message);
    this.name = "CliExit";
  }
}

const INTERNAL: ReadonlySet<string> = new Set(["E_NATIVE", "E_NATIVE_LOAD", "E_DISPOSED", "E_NO_TRAINER", "E_OPTIMIZER_STATE", "E_PARAMETER_SHAPE", "E_MEMORY"]);

export function exitCodeFor(err: unknown): number {
  if (err instanceof CliExit) return err.code;
  if (err instanceof ClaraError) {
    if (err.code === "E_NONFINITE") return EXIT.nonFinite;
    return INTERNAL.has(err.code) ? EXIT.failure : EXIT.badInput;
  }
  return EXIT.failure;
}

/** `<program>: <file>:<line>: <field>: <message>`, on one line. */
export function formatError(err: unknown, program = "clara-train"): string {
  if (err instanceof ClaraError) {
    let message = err.message;
    const where: string[] = [];
    if (err.file !== undefined) {
      where.push(err.line !== undefined ? `${err.file}:${err.line}` : err.file);
      // The location is printed once, in front: a message that starts with it ("x.npz is not …",
      // "x.jsonl:3: …") drops its copy.
      for (const prefix of [`${err.file}:${err.line}: `, `${err.file}: `, `${err.file} `]) {
        if (message.startsWith(prefix)) {
          message = message.slice(prefix.length);
          break;
        }
      }
    } else if (err.line !== undefined) where.push(`line ${err.line}`);
    if (err.field !== undefined) where.push(err.field);
    return `${program}: ${where.map((w) => `${w}: `).join("")}${oneLine(message)}`;
  }
  const e = err as Error;
  return `${program}: ${oneLine(String(e?.message ?? err))}`;
}

/** The yargs `.fail` of the small CLIs: a usage mistake prints the message and the help, exit 2. */
export function usageFailure(msg: string, err: Error | undefined, y: { help(): unknown }): void {
  if (err) throw err;
  console.error(`${msg}\n\n${y.help()}`);
  process.exit(EXIT.badInput);
}

/**
 * Runs a small CLI's main: a failure prints one line under the program's name (and the stack
 * with --verbose), plus `hint(err)` when it has one, and exits with the failure's code.
 */
export function runCli(program: string, main: () => Promise<unknown>, hint: (err: unknown) => string = () => ""): void {
  main().catch((err: unknown) => {
    console.error(formatError(err, program) + hint(err));
    if (process.argv.includes("--verbose") && err instanceof Error && err.stack) console.error(err.stack);
    process.exit(exitCodeFor(err));
  });
}

export function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}
