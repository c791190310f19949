// @clara/mlx/eval: scoring answers and retrieval as the reference does, held-out question answering
// on unseen documents, and the paper-PDF evaluation (extraction, question sets, the suite and its
// report) that clara-eval runs. pdfjs-dist and the chart libraries load only when a PDF is read or a
// chart drawn, but this entry loads the evaluation code: the main entry does not.
export * as metrics from "./metrics";
export type { AnswerMetrics, AnswerSample, RetrievalSample } from "./metrics";
export { Bm25 } from "./bm25";
export {
  answerFromCompressed,
  answerFromCompressedDocs,
  answerFromText,
  compressDistinct,
  heldOutProbes,
  meanSe,
  pairedGap,
  type HeldOutAnswers,
  type HeldOutProbe,
  type HeldOutScores,
  type MemoryDiversity,
} from "./heldout";
export { extractPdf, pdfChunks, type ExtractedPdf } from "./pdf";
export type { Chunk, ChunkOptions } from "./chunks";
export type { Section } from "./pdf-sections";
export { extractionQuality, type ExtractionQuality } from "./pdf-quality";
export { makeQaSet, readQaSet, writeQaSet, type MakeQaOptions, type MakeQaStats, type QaGenerator, type QaItem } from "./qa-set";
export { runEvaluationSuite, type EvaluationSuiteOptions } from "./suite";
export type { ModelEvaluation } from "./evaluation";
export { loadEvaluations, writeEvaluationReport } from "./report";
