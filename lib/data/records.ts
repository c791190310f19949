// The training records of CLaRa's three stages, read from JSON Lines and normalised.
//
// Field names and aliases follow the reference loader (`preprocess_data`, spec §3.1):
//   documents  <- "docs" | "context" | "content" (a list; the first of these keys present is used)
//   answer(s)  <- "answer" (string) | "answers" (list) | "golden_answers" (list, first item)
//   data_type  <- defaults to "qa"
//   pos_index  <- defaults to []
// and a record with only "gold_answer" is rejected, as the reference rejects it.
//
// Where the reference is silently lenient we are strict, because a bad record should stop the
// run before training starts, not corrupt a batch hours later: the first alias present must
// have the right type (the reference would fall through to the next alias), data_type must be
// "qa" or "paraphrase" (the reference treats any other value as "qa"), and empty documents,
// questions and answers are errors. Every problem is a ClaraError with file, line and field.
//
// Literal special-token strings (<MEM0>, <ENC>, </s>, …) in documents, questions and answers
// are broken with a zero-width space (see escape.ts) and counted in the stats.
//
// Documents longer than the encoder's limit are NOT rejected here: that needs the tokenizer
// (the reference truncates them to 256 tokens).

import { ClaraError, describe, invalidArgument } from "../errors";
import { escapeSpecialTokensCounted } from "./escape";
import { readJsonl } from "./jsonl";

export { ESCAPE_MARK, escapeSpecialTokens, escapeSpecialTokensCounted } from "./escape";

export type PretrainDataType = "qa" | "paraphrase";

/** Stage 1 (salient compressor pretraining): one document and its QA pairs, or its paraphrase. */
export interface PretrainRecord {
  dataType: PretrainDataType;
  /** The questions of a "qa" record; [] for "paraphrase" (the reference ignores them). */
  questions: string[];
  /** One answer per question ("qa"), or [the paraphrase of the document] ("paraphrase"). */
  answers: string[];
  doc: string;
  /** 1-based line of the record in its file (absent for records built in memory). */
  line?: number;
}

/** Stage 2 (compression instruction tuning): a question, exactly k documents, the target answer. */
export interface InstructionRecord {
  question: string;
  docs: string[];
  /** The training target. In Apple's data this is a teacher model's answer. */
  answer: string;
  /** The dataset's gold answer ("gold_answer", else "golden_answers"[0]); not trained on. */
  goldAnswer?: string;
  line?: number;
}

/** Stage 3 (end to end): a question, N candidate documents, the answer, the positives. */
export interface EndToEndRecord {
  question: string;
  docs: string[];
  answer: string;
  /** Indices into `docs` of the documents that support the answer (metrics only). */
  posIndex: number[];
  line?: number;
}

export interface ReadStats {
  file: string;
  records: number;
  /** Literal special-token strings broken by escapeSpecialTokens (see escape.ts). */
  escaped: number;
}

export interface ReadResult<T> {
  records: T[];
  stats: ReadStats;
}

/** Where a record came from, for error messages. */
export interface RecordSource {
  file: string;
  line: number;
}

export interface ParsedRecord<T> {
  record: T;
  escaped: number;
}

const DOC_KEYS = ["docs", "context", "content"] as const;

// ---------------------------------------------------------------------------------------
// Readers

/** Reads and validates a stage-1 file (Apple's example/pretrain_data.jsonl format). */
export function readPretrainRecords(file: string): ReadResult<PretrainRecord> {
  return readAll(file, (value, where) => parsePretrainRecord(value, where));
}

/** Reads and validates a stage-2 file; every record must have exactly `k` documents (default 5). */
export function readInstructionRecords(file: string, options: { k?: number } = {}): ReadResult<InstructionRecord> {
  const k = options.k ?? 5;
  checkCount("k", k);
  return readAll(file, (value, where) => parseInstructionRecord(value, where, { k }));
}

/**
 * Reads and validates a stage-3 file. `candidates`, when given, is the exact number of
 * documents every record must have (the trainer needs equal N within a micro-batch).
 */
export function readEndToEndRecords(file: string, options: { candidates?: number } = {}): ReadResult<EndToEndRecord> {
  if (options.candidates !== undefined) checkCount("candidates", options.candidates);
  return readAll(file, (value, where) => parseEndToEndRecord(value, where, options));
}

function readAll<T>(file: string, parse: (value: unknown, where: RecordSource) => ParsedRecord<T>): ReadResult<T> {
  const lines = readJsonl(file);
  if (lines.length === 0) {
    throw new ClaraError("E_DATA_FORMAT", `${file}: no records (the file is empty or has only blank lines)`, { file });
  }
  const records: T[] = [];
  let escaped = 0;
  for (const { value, line } of lines) {
    const parsed = parse(value, { file, line });
    records.push(parsed.record);
    escaped += parsed.escaped;
  }
  return { records, stats: { file, records: records.length, escaped } };
}

function checkCount(name: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) {
    throw invalidArgument(name, "a positive integer", n);
  }
}

// ---------------------------------------------------------------------------------------
// Single records

/** Validates and normalises one stage-1 record (a parsed JSON value). */
export function parsePretrainRecord(value: unknown, where: RecordSource): ParsedRecord<PretrainRecord> {
  const r = new Fields(value, where);
  let dataType: PretrainDataType = "qa";
  const rawType = r.get("data_type");
  if (rawType !== undefined) {
    if (rawType !== "qa" && rawType !== "paraphrase") {
      throw r.fail(
        "data_type",
        typeof rawType === "string"
          ? `Unknown data_type ${JSON.stringify(rawType)}: expected "qa" or "paraphrase" (or leave it out for "qa").`
          : `Expected "qa" or "paraphrase" for "data_type" but received ${describe(rawType)}.`,
      );
    }
    dataType = rawType;
  }
  const docs = r.docs({ exactly: 1, why: "Stage-1 records compress one document each; split this record into one record per document." });
  const { key: answerKey, values: answers } = r.pretrainAnswers(dataType);
  let questions: string[] = [];
  if (dataType === "qa") {
    questions = r.stringArray("question", 'A "qa" record needs "question": a list of questions, e.g. "question": ["Who founded X?"].');
    if (questions.length === 0) throw r.fail("question", `"question" is an empty list; a "qa" record needs at least one question and its answer.`);
    if (questions.length !== answers.length) {
      throw r.fail(
        answerKey,
        `"question" has ${plural(questions.length, "question")} but "${answerKey}" has ${plural(answers.length, "answer")}; every question needs exactly one answer, in the same order.`,
      );
    }
  }
  return r.done({ dataType, questions, answers: dataType === "paraphrase" ? answers.slice(0, 1) : answers, doc: docs[0], line: where.line });
}

/** Validates and normalises one stage-2 record; it must have exactly `k` documents. */
export function parseInstructionRecord(value: unknown, where: RecordSource, options: { k?: number } = {}): ParsedRecord<InstructionRecord> {
  const k = options.k ?? 5;
  const r = new Fields(value, where);
  const question = r.string("question", 'A stage-2 record needs "question": the question as a string.');
  const docs = r.docs({
    exactly: k,
    why: `Stage 2 trains on k = ${k} documents per question and every record must have the same number; add retrieved distractor documents, or set k to match the data.`,
  });
  const answer = r.answer(
    'Stage 2 trains on "answer" (in Apple\'s data, the teacher model\'s answer); add it, or rename "gold_answer" to "answer" to train on the gold answer.',
  );
  const goldAnswer = r.goldAnswer();
  const record: InstructionRecord = { question, docs, answer };
  if (goldAnswer !== undefined) record.goldAnswer = goldAnswer;
  record.line = where.line;
  return r.done(record);
}

/** Validates and normalises one stage-3 record. */
export function parseEndToEndRecord(value: unknown, where: RecordSource, options: { candidates?: number } = {}): ParsedRecord<EndToEndRecord> {
  const r = new Fields(value, where);
  const question = r.string("question", 'A stage-3 record needs "question": the question as a string.');
  const docs = r.docs(
    options.candidates !== undefined
      ? { exactly: options.candidates, why: `Every stage-3 record must have the same number of candidate documents (${options.candidates} here).` }
      : { atLeast: 1, why: "A stage-3 record needs its candidate documents." },
  );
  const answer = r.answer('The reference loader rejects such records too; rename "gold_answer" to "answer".');
  const posIndex = r.posIndex(docs.length);
  return r.done({ question, docs, answer, posIndex, line: where.line });
}

// ---------------------------------------------------------------------------------------
// Writing records back in the reference's field names (what the readers read)

export function pretrainRecordToJson(r: PretrainRecord): Record<string, unknown> {
  return { data_type: r.dataType, question: r.dataType === "qa" ? r.questions : [], answers: r.answers, docs: [r.doc] };
}

export function instructionRecordToJson(r: InstructionRecord): Record<string, unknown> {
  return { question: r.question, docs: r.docs, answer: r.answer, ...(r.goldAnswer !== undefined ? { gold_answer: r.goldAnswer } : {}) };
}

export function endToEndRecordToJson(r: EndToEndRecord): Record<string, unknown> {
  return { question: r.question, docs: r.docs, answer: r.answer, pos_index: r.posIndex };
}

// ---------------------------------------------------------------------------------------
// Field access with file/line/field errors

class Fields {
  private readonly obj: Record<string, unknown>;
  private escaped = 0;

  constructor(
    value: unknown,
    private readonly where: RecordSource,
  ) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new ClaraError("E_DATA_FORMAT", `${where.file}:${where.line}: Expected a JSON object (one record per line) but received ${describe(value)}.`, {
        file: where.file,
        line: where.line,
      });
    }
    this.obj = value as Record<string, unknown>;
  }

  /** The field's value; null counts as absent. */
  get(key: string): unknown {
    const v = Object.prototype.hasOwnProperty.call(this.obj, key) ? this.obj[key] : undefined;
    return v === null ? undefined : v;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  fail(field: string, message: string): ClaraError {
    return new ClaraError("E_DATA_FIELD", `${this.where.file}:${this.where.line}: ${message}`, { file: this.where.file, line: this.where.line, field });
  }

  done<T>(record: T): ParsedRecord<T> {
    return { record, escaped: this.escaped };
  }

  private text(s: string): string {
    const r = escapeSpecialTokensCounted(s);
    this.escaped += r.escaped;
    return r.text;
  }

  private fieldList(): string {
    const keys = Object.keys(this.obj);
    return keys.length === 0 ? "the record is an empty object" : `its fields are ${keys.map((k) => JSON.stringify(k)).join(", ")}`;
  }

  private missing(field: string, fix: string, aliases: readonly string[] = []): ClaraError {
    const names = [field, ...aliases].map((k) => `"${k}"`);
    const what = aliases.length ? `${names[0]} (or ${names.slice(1).join(" / ")})` : names[0];
    const near = Object.keys(this.obj).find((k) => k !== field && k.toLowerCase().replace(/s$/, "") === field.toLowerCase().replace(/s$/, ""));
    const hint = near ? ` Found "${near}"; did you mean "${field}"?` : "";
    return this.fail(field, `Missing ${what}; ${this.fieldList()}.${hint} ${fix}`);
  }

  /** A non-empty string field. */
  string(field: string, fix: string): string {
    const v = this.get(field);
    if (v === undefined) throw this.missing(field, fix);
    return this.nonEmpty(v, field, fix);
  }

  private nonEmpty(v: unknown, field: string, fix: string): string {
    if (typeof v !== "string") throw this.fail(field, `Expected a string for "${field}" but received ${describe(v)}. ${fix}`);
    if (v.trim() === "") throw this.fail(field, `"${field}" is empty. ${fix}`);
    return this.text(v);
  }

  /** A list of non-empty strings (possibly empty: callers check the length they need). */
  stringArray(field: string, fix: string): string[] {
    const v = this.get(field);
    if (v === undefined) throw this.missing(field, fix);
    return this.stringArrayValue(v, field, fix);
  }

  private stringArrayValue(v: unknown, field: string, fix: string): string[] {
    if (!Array.isArray(v)) throw this.fail(field, `Expected an array of strings for "${field}" but received ${describe(v)}. ${fix}`);
    return v.map((item, i) => {
      const name = `${field}[${i}]`;
      if (typeof item !== "string") {
        throw this.fail(name, `Expected an array of strings for "${field}" but item ${i} is ${describe(item)}. ${fix}`);
      }
      if (item.trim() === "") throw this.fail(name, `Item ${i} of "${field}" is an empty string; fill it in or remove it.`);
      return this.text(item);
    });
  }

  /** The documents, from the first of "docs" / "context" / "content" that is present. */
  docs(count: { exactly?: number; atLeast?: number; why: string }): string[] {
    const key = DOC_KEYS.find((k) => this.has(k));
    const example = '"docs": ["This is a document about …"]';
    if (key === undefined) throw this.missing("docs", `Put the document text in a list, e.g. ${example}.`, DOC_KEYS.slice(1));
    const v = this.get(key);
    if (!Array.isArray(v)) {
      throw this.fail(key, `Expected an array of strings for "${key}" but received ${describe(v)}. Put the document text in a list, e.g. ${example}.`);
    }
    if (count.exactly !== undefined && v.length !== count.exactly) {
      throw this.fail(key, `Expected exactly ${plural(count.exactly, "document")} in "${key}" but found ${v.length}. ${count.why}`);
    }
    if (count.atLeast !== undefined && v.length < count.atLeast) {
      throw this.fail(key, `Expected at least ${plural(count.atLeast, "document")} in "${key}" but found ${v.length}. ${count.why}`);
    }
    return v.map((item, i) => {
      if (typeof item !== "string") {
        throw this.fail(`${key}[${i}]`, `Expected an array of strings for "${key}" but document ${i} is ${describe(item)}. Each document must be its text as a string.`);
      }
      if (item.trim() === "") throw this.fail(`${key}[${i}]`, `Document ${i} of "${key}" is empty; a document needs text to compress. Remove the record or fill the document in.`);
      return this.text(item);
    });
  }

  /** Stage 1: "answers" (list) | "answer" (string) | "golden_answers" (list, first item). */
  pretrainAnswers(dataType: PretrainDataType): { key: string; values: string[] } {
    const fix =
      dataType === "qa"
        ? 'Give one answer per question, e.g. "answers": ["Jane Doe", "1874"].'
        : 'A "paraphrase" record needs the paraphrase of the document as "answers": ["…"].';
    if (this.has("answers")) {
      const values = this.stringArrayValue(this.get("answers"), "answers", fix);
      if (values.length === 0) throw this.fail("answers", `"answers" is an empty list. ${fix}`);
      return { key: "answers", values };
    }
    if (this.has("answer")) {
      const v = this.get("answer");
      if (Array.isArray(v)) throw this.fail("answer", `Expected a string for "answer" but received ${describe(v)}. Rename the list to "answers".`);
      return { key: "answer", values: [this.nonEmpty(v, "answer", fix)] };
    }
    if (this.has("golden_answers")) {
      return { key: "golden_answers", values: [this.firstOfList("golden_answers", fix)] };
    }
    throw this.noAnswer("answers", fix, ["answer", "golden_answers"]);
  }

  /** Stages 2-3: "answer" (string) | "answers"[0] | "golden_answers"[0], the reference's order. */
  answer(goldOnlyFix: string): string {
    const fix = 'Give the answer as a string, e.g. "answer": "Jane Doe".';
    if (this.has("answer")) {
      const v = this.get("answer");
      if (Array.isArray(v)) {
        throw this.fail("answer", `Expected a string for "answer" but received ${describe(v)}. Give one answer as a string, or rename the list to "answers" (its first item is used).`);
      }
      return this.nonEmpty(v, "answer", fix);
    }
    if (this.has("answers")) return this.firstOfList("answers", fix);
    if (this.has("golden_answers")) return this.firstOfList("golden_answers", fix);
    if (this.has("gold_answer")) {
      throw this.fail("answer", `Missing "answer": this record has only "gold_answer", which the loader does not read. ${goldOnlyFix}`);
    }
    throw this.noAnswer("answer", fix, ["answers", "golden_answers"]);
  }

  private noAnswer(field: string, fix: string, aliases: string[]): ClaraError {
    if (this.has("gold_answer")) {
      return this.fail(field, `Missing "${field}": this record has only "gold_answer", which the loader does not read (nor does the reference); rename it to "${field}".`);
    }
    return this.missing(field, fix, aliases);
  }

  private firstOfList(field: string, fix: string): string {
    const values = this.stringArrayValue(this.get(field), field, fix);
    if (values.length === 0) throw this.fail(field, `"${field}" is an empty list; its first item is the answer. ${fix}`);
    return values[0];
  }

  /** "gold_answer" (string, or a list: first item), else "golden_answers"[0]; optional. */
  goldAnswer(): string | undefined {
    const fix = 'Give "gold_answer" as a string, or leave it out.';
    if (this.has("gold_answer")) {
      const v = this.get("gold_answer");
      if (Array.isArray(v)) {
        const values = this.stringArrayValue(v, "gold_answer", fix);
        if (values.length === 0) throw this.fail("gold_answer", `"gold_answer" is an empty list. ${fix}`);
        return values[0];
      }
      return this.nonEmpty(v, "gold_answer", fix);
    }
    if (this.has("golden_answers")) return this.firstOfList("golden_answers", fix);
    return undefined;
  }

  /** "pos_index": distinct integers in [0, n); [] when absent. */
  posIndex(n: number): number[] {
    const v = this.get("pos_index");
    if (v === undefined) return [];
    const fix = `"pos_index" lists the positions (0-based) in "docs" of the documents that support the answer, e.g. "pos_index": [0].`;
    if (!Array.isArray(v)) throw this.fail("pos_index", `Expected an array of integers for "pos_index" but received ${describe(v)}. ${fix}`);
    const seen = new Set<number>();
    return v.map((item, i) => {
      const name = `pos_index[${i}]`;
      if (typeof item !== "number" || !Number.isInteger(item)) {
        throw this.fail(name, `Expected an array of integers for "pos_index" but item ${i} is ${describe(item)}. ${fix}`);
      }
      if (item < 0 || item >= n) {
        throw this.fail(name, `pos_index ${item} is out of range: this record has ${plural(n, "document")}, so positions run from 0 to ${n - 1}. ${fix}`);
      }
      if (seen.has(item)) throw this.fail(name, `pos_index ${item} is listed twice; list each positive document once.`);
      seen.add(item);
      return item;
    });
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Stage-3 records trimmed to `n` candidates: the positives and the first others, in their order. */
export function trimCandidates(records: EndToEndRecord[], n: number, file: string): EndToEndRecord[] {
  return records.map((r) => {
    if (r.docs.length < n) {
      throw new ClaraError("E_DATA_FIELD", `has ${r.docs.length} candidate documents, fewer than --candidates ${n}; lower --candidates or add documents`, {
        file,
        line: r.line,
        field: "docs",
      });
    }
    if (r.docs.length === n) return r;
    const pos = new Set(r.posIndex);
    let others = n - Math.min(pos.size, n);
    const keep: number[] = [];
    r.docs.forEach((_, i) => {
      if (pos.has(i) && keep.length < n) keep.push(i);
      else if (!pos.has(i) && others > 0) keep.push(i), others--;
    });
    const docs = keep.map((i) => r.docs[i]);
    const posIndex = keep.flatMap((i, j) => (pos.has(i) ? [j] : []));
    return { ...r, docs, posIndex };
  });
}
