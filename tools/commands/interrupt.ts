// Ctrl-C during training, and SIGTERM / SIGHUP (sent by `timeout`, `docker stop`, SLURM, a closing
// terminal) alike: the first one lets the current update finish and the trainer write a resumable
// checkpoint (atomically); a second one exits at once without a checkpoint.

import type { Ui } from "./ui";
import { EXIT } from "./ui";

export interface Interrupt {
  signal: AbortSignal;
  dispose(): void;
}

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export function onInterrupt(ui: Ui): Interrupt {
  const controller = new AbortController();
  const handler = (signal: NodeJS.Signals) => {
    const name = signal === "SIGINT" ? "Ctrl-C" : signal;
    if (!controller.signal.aborted) {
      ui.event({ type: "signal", signal });
      ui.notice(`\n${name}: finishing the current update and writing a checkpoint (send it again to quit without one)`);
      controller.abort();
      return;
    }
    ui.notice("clara-train: stopped without writing a checkpoint");
    process.exit(EXIT.interrupted);
  };
  for (const s of SIGNALS) process.on(s, handler);
  return { signal: controller.signal, dispose: () => SIGNALS.forEach((s) => process.off(s, handler)) };
}

/** The command line that repeats this invocation with --resume. */
export function resumeCommand(argv: readonly string[] = process.argv.slice(2)): string {
  const args = argv.filter((a) => a !== "--resume" && a !== "--no-resume");
  const quote = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return `npx clara-train ${[...args, "--resume"].map(quote).join(" ")}`;
}
