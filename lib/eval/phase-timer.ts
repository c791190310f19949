// Wall time of the named phases of an evaluation (corpus, compression, each scenario), kept in
// its results and printed as it goes: the record of where a `clara-eval run` spends its time.

import { performance } from "node:perf_hooks";

export class PhaseTimer {
  /** Milliseconds per phase, in the order the phases ran; a phase run twice adds up. */
  readonly ms: Record<string, number> = {};

  constructor(private readonly onPhase?: (phase: string, ms: number) => void) {}

  async time<T>(phase: string, run: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    const value = await run();
    const ms = performance.now() - t0;
    this.ms[phase] = (this.ms[phase] ?? 0) + ms;
    this.onPhase?.(phase, ms);
    return value;
  }
}
