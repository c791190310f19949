// One model's evaluation as results/<label>.json holds it: what the suite (suite.ts) writes and
// the report (report.ts) reads. Its own file so that neither imports the other.
import type { Stage } from "../io/checkpoint";
import type { CompressionResult } from "./compression";
import type { AnswerScenario, RagResult } from "./scenarios";

export const EVAL_FORMAT = "clara-mlx-eval";

export interface ModelEvaluation {
  format: typeof EVAL_FORMAT;
  version: 1;
  /** "stage1" | "stage2" | "stage3" | "untrained". */
  label: string;
  stage: Stage | null;
  checkpoint: string | null;
  createdAt: string;
  config: Record<string, unknown> & { k: number; maxNewTokens: number; docMaxLength: number; compressionRate: number; nMem: number };
  document: { file: string; name: string; title: string; pages: number; sha256: string; sections: number };
  questions: { n: number; file: string; sources: Record<string, number>; evidence: Array<{ id: string; chunks: number[]; match: string }> };
  chunks: Array<{ index: number; section: string; pages: number[]; tokens: number }>;
  index: { chunks: number; compressMs: number };
  /** Wall milliseconds per phase, in order (answers served from the shared cache take ~0). */
  timings: Record<string, number>;
  scenarios: { zero_shot: AnswerScenario; rag: RagResult; compression: CompressionResult };
}
