import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError } from "../lib/errors";
import { deriveEndToEndRecords, deriveInstructionRecords } from "../lib/data/derive";
import { ESCAPE_MARK, escapeSpecialTokens, escapeSpecialTokensCounted } from "../lib/data/escape";
import { formatJsonl, parseJsonl, readJsonl, writeJsonl } from "../lib/data/jsonl";
import { Random, mulberry32 } from "../lib/data/random";
import {
  endToEndRecordToJson,
  instructionRecordToJson,
  pretrainRecordToJson,
  readEndToEndRecords,
  readInstructionRecords,
  readPretrainRecords,
  type PretrainRecord,
} from "../lib/data/records";
import { generateExampleData, main as makeExampleMain, makeExampleData } from "../tools/make-example-data";
import { catchClara } from "./helpers/errors";

// ---------------------------------------------------------------------------------------
// Helpers

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "clara-data-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
/** A JSONL file from raw lines (strings are written as they are, anything else as JSON). */
function jsonl(lines: unknown[]): string {
  const file = path.join(dir, `f${fileNo++}.jsonl`);
  fs.writeFileSync(file, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n") + "\n");
  return file;
}

/** The ClaraError `fn` throws, checked for code, file, line, field and (optionally) message. */
function expectDataError(
  fn: () => unknown,
  code: "E_DATA_FIELD" | "E_DATA_FORMAT",
  where: { file: string; line?: number; field?: string },
  message?: RegExp,
): ClaraError {
  const e = catchClara(fn, code);
  expect(e.file).toBe(where.file);
  expect(e.line).toBe(where.line);
  expect(e.field).toBe(where.field);
  expect(e.message).toContain(where.file);
  if (where.line !== undefined) expect(e.message).toContain(`:${where.line}:`);
  if (message) expect(e.message).toMatch(message);
  return e;
}

const DOC = "This is a document about Velmora. Velmora was founded in 1801.";
const docs = (n: number) => Array.from({ length: n }, (_, i) => `Document ${i} text.`);
const qa = (extra: Record<string, unknown> = {}) => ({ data_type: "qa", question: ["When was Velmora founded?"], answers: ["1801"], docs: [DOC], ...extra });
const without = (obj: Record<string, unknown>, ...keys: string[]) => Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)));

// ---------------------------------------------------------------------------------------
// JSON Lines

describe("readJsonl", () => {
  test("returns values with 1-based line numbers and skips blank lines", () => {
    const file = jsonl(['{"a":1}', "", "   ", '{"b":2}', "[3]"]);
    expect(readJsonl(file)).toEqual([
      { value: { a: 1 }, line: 1 },
      { value: { b: 2 }, line: 4 },
      { value: [3], line: 5 },
    ]);
  });

  test("tolerates CRLF line ends, a byte-order mark and a missing final newline", () => {
    const file = path.join(dir, "crlf.jsonl");
    fs.writeFileSync(file, '\uFEFF{"a":1}\r\n\r\n{"b":"x"}');
    expect(readJsonl(file)).toEqual([
      { value: { a: 1 }, line: 1 },
      { value: { b: "x" }, line: 3 },
    ]);
  });

  test("invalid UTF-8 is refused with its line and byte offset, not decoded to U+FFFD (multi-byte characters before it are fine)", () => {
    const file = path.join(dir, "latin1.jsonl");
    const good = Buffer.from('{"a":"caf\u00e9 \u2014 \ud83d\ude00"}\n', "utf8");
    const bad = Buffer.concat([Buffer.from('{"a":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]);
    fs.writeFileSync(file, Buffer.concat([good, good, bad]));
    const e = expectDataError(() => readJsonl(file), "E_DATA_FORMAT", { file, line: 3 }, /invalid UTF-8 at byte (\d+) \(0xe9\)/);
    expect(Number(/at byte (\d+)/.exec(e.message)![1])).toBe(2 * good.length + 9);
  });

  test("a malformed line is E_DATA_FORMAT with file, line, the parser's reason and the fix", () => {
    const file = jsonl(['{"a":1}', "", '{"a":2,}', '{"a":3}']);
    const e = expectDataError(() => readJsonl(file), "E_DATA_FORMAT", { file, line: 3 }, /not valid JSON \(.*JSON.*\)/);
    expect(e.message).toMatch(/fix or delete this line/);
    expect(e.cause).toBeInstanceOf(SyntaxError);
  });

  test("a pretty-printed JSON file gets a hint about JSON Lines", () => {
    const file = path.join(dir, "pretty.jsonl");
    fs.writeFileSync(file, JSON.stringify([{ a: 1 }], null, 2));
    expectDataError(() => readJsonl(file), "E_DATA_FORMAT", { file, line: 1 }, /pretty-printed JSON.*one complete object on its own line/);
  });

  test("a truncated last line is reported on its line", () => {
    const file = path.join(dir, "trunc.jsonl");
    fs.writeFileSync(file, '{"a":1}\n{"a":');
    expectDataError(() => readJsonl(file), "E_DATA_FORMAT", { file, line: 2 });
  });

  test("a missing file is E_IO", () => {
    const file = path.join(dir, "nope.jsonl");
    const e = catchClara(() => readJsonl(file), "E_IO");
    expect(e.file).toBe(file);
    expect(e.message).toMatch(/does not exist/);
  });

  test("formatJsonl / writeJsonl round-trip through readJsonl", () => {
    const values = [{ a: "é\n\"x\"" }, [1, 2], "s", 3, null];
    expect(formatJsonl(values)).toBe('{"a":"é\\n\\"x\\""}\n[1,2]\n"s"\n3\nnull\n');
    const file = path.join(dir, "rt.jsonl");
    writeJsonl(file, values);
    expect(readJsonl(file).map((l) => l.value)).toEqual(values);
    expect(parseJsonl(formatJsonl(values)).map((l) => l.line)).toEqual([1, 2, 3, 4, 5]);
  });
});

// ---------------------------------------------------------------------------------------
// Stage 1

describe("readPretrainRecords", () => {
  test("normalises Apple's format and reports stats", () => {
    const file = jsonl([qa(), { data_type: "qa", question: ["Q1?", "Q2?"], answers: ["A1", "A2"], docs: ["D2"] }]);
    const { records, stats } = readPretrainRecords(file);
    expect(records).toEqual([
      { dataType: "qa", questions: ["When was Velmora founded?"], answers: ["1801"], doc: DOC, line: 1 },
      { dataType: "qa", questions: ["Q1?", "Q2?"], answers: ["A1", "A2"], doc: "D2", line: 2 },
    ]);
    expect(stats).toEqual({ file, records: 2, escaped: 0 });
  });

  test("aliases: data_type defaults to qa; context/content; answer (str); golden_answers (first)", () => {
    const file = jsonl([
      { question: ["Q?"], answers: ["A"], context: ["C1"] },
      { question: ["Q?"], answer: "A", content: ["C2"] },
      { question: ["Q?"], golden_answers: ["G1", "G2"], docs: ["C3"] },
      { question: ["Q?"], answers: ["A"], docs: ["D"], context: ["ignored"] },
    ]);
    const r = readPretrainRecords(file).records;
    expect(r.map((x) => [x.dataType, x.doc, x.answers])).toEqual([
      ["qa", "C1", ["A"]],
      ["qa", "C2", ["A"]],
      ["qa", "C3", ["G1"]],
      ["qa", "D", ["A"]],
    ]);
  });

  test("paraphrase records keep answers[0] and ignore question", () => {
    const file = jsonl([
      { data_type: "paraphrase", question: "", answers: ["Reworded.", "extra"], docs: [DOC] },
      { data_type: "paraphrase", answer: "Reworded again.", docs: [DOC] },
      { data_type: "paraphrase", question: 7, answers: ["R"], docs: [DOC] },
    ]);
    expect(readPretrainRecords(file).records).toEqual([
      { dataType: "paraphrase", questions: [], answers: ["Reworded."], doc: DOC, line: 1 },
      { dataType: "paraphrase", questions: [], answers: ["Reworded again."], doc: DOC, line: 2 },
      { dataType: "paraphrase", questions: [], answers: ["R"], doc: DOC, line: 3 },
    ]);
  });

  test("null counts as absent", () => {
    const file = jsonl([{ data_type: null, question: ["Q?"], answer: null, answers: ["A"], docs: null, context: ["C"] }]);
    expect(readPretrainRecords(file).records[0]).toMatchObject({ dataType: "qa", answers: ["A"], doc: "C" });
  });

  const bad: [string, unknown, string | undefined, RegExp][] = [
    ["question of the wrong type", qa({ question: 5 }), "question", /Expected an array of strings for "question" but received number 5\. .*"question": \[/],
    ["a question that is not a string", qa({ question: ["Q?", 3], answers: ["A", "B"] }), "question[1]", /item 1 is number 3/],
    ["an empty question", qa({ question: ["  "] }), "question[0]", /Item 0 of "question" is an empty string/],
    ["no questions", qa({ question: [], answers: [] }), "answers", /"answers" is an empty list/],
    ["an empty question list with answers", qa({ question: [] }), "question", /"question" is an empty list/],
    ["missing question", without(qa(), "question"), "question", /Missing "question"; its fields are "data_type", "answers", "docs"/],
    ["questions instead of question", { ...without(qa(), "question"), questions: ["Q?"] }, "question", /Found "questions"; did you mean "question"\?/],
    ["more questions than answers", qa({ question: ["Q1?", "Q2?"] }), "answers", /"question" has 2 questions but "answers" has 1 answer; every question needs exactly one answer/],
    ["more answers than questions", qa({ answers: ["A", "B"] }), "answers", /has 1 question but "answers" has 2 answers/],
    ["answers of the wrong type", qa({ answers: "1801" }), "answers", /Expected an array of strings for "answers" but received string "1801"/],
    ["an answer list under answer", { ...without(qa(), "answers"), answer: ["1801"] }, "answer", /Expected a string for "answer" but received array of length 1\. Rename the list to "answers"/],
    ["only gold_answer", { ...without(qa(), "answers"), gold_answer: "1801" }, "answers", /only "gold_answer".*rename it to "answers"/],
    ["no answers at all", without(qa(), "answers"), "answers", /Missing "answers" \(or "answer" \/ "golden_answers"\)/],
    ["empty golden_answers", { ...without(qa(), "answers"), golden_answers: [] }, "golden_answers", /"golden_answers" is an empty list/],
    ["missing docs", without(qa(), "docs"), "docs", /Missing "docs" \(or "context" \/ "content"\)/],
    ["doc instead of docs", { ...without(qa(), "docs"), doc: DOC }, "docs", /Found "doc"; did you mean "docs"\?/],
    ["docs as a string", qa({ docs: DOC }), "docs", /Expected an array of strings for "docs" but received string "This is a document about Velmora\. Velmor…"/],
    ["context as an object", { ...without(qa(), "docs"), context: { a: 1 } }, "context", /Expected an array of strings for "context" but received object/],
    ["two documents", qa({ docs: [DOC, DOC] }), "docs", /Expected exactly 1 document in "docs" but found 2\. Stage-1 records compress one document each/],
    ["no documents", qa({ docs: [] }), "docs", /Expected exactly 1 document in "docs" but found 0/],
    ["an empty document", qa({ docs: [" \n "] }), "docs[0]", /Document 0 of "docs" is empty/],
    ["a document that is not a string", qa({ docs: [42] }), "docs[0]", /document 0 is number 42/],
    ["an unknown data_type", qa({ data_type: "summary" }), "data_type", /Unknown data_type "summary": expected "qa" or "paraphrase"/],
    ["a data_type of the wrong type", qa({ data_type: 1 }), "data_type", /Expected "qa" or "paraphrase" for "data_type" but received number 1/],
    ["a paraphrase without its text", { data_type: "paraphrase", docs: [DOC] }, "answers", /Missing "answers"/],
    ["an empty paraphrase", { data_type: "paraphrase", answers: [""], docs: [DOC] }, "answers[0]", /empty string/],
  ];
  test.each(bad)("%s -> E_DATA_FIELD with file, line and field", (_name, record, field, message) => {
    const file = jsonl([qa(), "", record]);
    expectDataError(() => readPretrainRecords(file), "E_DATA_FIELD", { file, line: 3, field }, message);
  });

  test("a line that is not an object is E_DATA_FORMAT", () => {
    const file = jsonl([qa(), '["not", "an", "object"]']);
    expectDataError(() => readPretrainRecords(file), "E_DATA_FORMAT", { file, line: 2 }, /Expected a JSON object \(one record per line\) but received array of length 3/);
    const file2 = jsonl(["null"]);
    expectDataError(() => readPretrainRecords(file2), "E_DATA_FORMAT", { file: file2, line: 1 }, /received null/);
  });

  test("an empty file is E_DATA_FORMAT", () => {
    const file = jsonl(["", "  "]);
    expectDataError(() => readPretrainRecords(file), "E_DATA_FORMAT", { file }, /no records/);
  });

  test("validation covers every record before returning (a bad last record stops the read)", () => {
    const lines: unknown[] = Array.from({ length: 50 }, () => qa());
    lines.push(qa({ answers: [3] }));
    const file = jsonl(lines);
    expectDataError(() => readPretrainRecords(file), "E_DATA_FIELD", { file, line: 51, field: "answers[0]" });
  });

  test("long documents are not an error here", () => {
    const long = "word ".repeat(5000);
    const file = jsonl([qa({ docs: [long] })]);
    expect(readPretrainRecords(file).records[0].doc).toBe(long);
  });
});

// ---------------------------------------------------------------------------------------
// Stage 2

describe("readInstructionRecords", () => {
  const inst = (extra: Record<string, unknown> = {}) => ({ question: "Who?", docs: docs(5), gold_answer: "Ann", answer: "It was Ann.", ...extra });

  test("normalises records; answer (the teacher's) is the target", () => {
    const file = jsonl([inst(), without(inst(), "gold_answer")]);
    const { records, stats } = readInstructionRecords(file);
    expect(records).toEqual([
      { question: "Who?", docs: docs(5), answer: "It was Ann.", goldAnswer: "Ann", line: 1 },
      { question: "Who?", docs: docs(5), answer: "It was Ann.", line: 2 },
    ]);
    expect(stats).toEqual({ file, records: 2, escaped: 0 });
  });

  test("aliases: answer > answers[0] > golden_answers[0]; context/content; gold_answer list or golden_answers", () => {
    const base = { question: "Who?" };
    const file = jsonl([
      { ...base, context: docs(5), answer: "A", answers: ["B"], golden_answers: ["C"] },
      { ...base, content: docs(5), answers: ["B", "B2"], golden_answers: ["C"] },
      { ...base, docs: docs(5), golden_answers: ["C", "C2"] },
      { ...base, docs: docs(5), answer: "A", gold_answer: ["G1", "G2"] },
    ]);
    expect(readInstructionRecords(file).records.map((r) => [r.answer, r.goldAnswer])).toEqual([
      ["A", "C"],
      ["B", "C"],
      ["C", "C"],
      ["A", "G1"],
    ]);
  });

  test("exactly k documents: the error names the count; k can be changed", () => {
    const file = jsonl([inst(), inst({ docs: docs(3) })]);
    expectDataError(() => readInstructionRecords(file), "E_DATA_FIELD", { file, line: 2, field: "docs" }, /Expected exactly 5 documents in "docs" but found 3\. Stage 2 trains on k = 5/);
    const file3 = jsonl([inst({ docs: docs(3) })]);
    expect(readInstructionRecords(file3, { k: 3 }).records[0].docs).toHaveLength(3);
    expectDataError(() => readInstructionRecords(file3, { k: 4 }), "E_DATA_FIELD", { file: file3, line: 1, field: "docs" }, /exactly 4 documents/);
    catchClara(() => readInstructionRecords(file3, { k: 0 }), "E_INVALID_ARGUMENT");
  });

  const bad: [string, unknown, string, RegExp][] = [
    ["only gold_answer", without(inst(), "answer"), "answer", /only "gold_answer".*Stage 2 trains on "answer".*rename "gold_answer" to "answer"/],
    ["a question list", inst({ question: ["Who?"] }), "question", /Expected a string for "question" but received array of length 1/],
    ["missing question", without(inst(), "question"), "question", /Missing "question"/],
    ["an empty question", inst({ question: "" }), "question", /"question" is empty/],
    ["an answer number", inst({ answer: 5 }), "answer", /Expected a string for "answer" but received number 5/],
    ["an answer list", inst({ answer: ["x"] }), "answer", /rename the list to "answers"/],
    ["an empty doc", inst({ docs: ["a", "b", "", "d", "e"] }), "docs[2]", /Document 2 of "docs" is empty/],
    ["gold_answer of the wrong type", inst({ gold_answer: 1 }), "gold_answer", /Expected a string for "gold_answer" but received number 1/],
    ["missing docs", without(inst(), "docs"), "docs", /Missing "docs"/],
  ];
  test.each(bad)("%s -> E_DATA_FIELD", (_name, record, field, message) => {
    const file = jsonl([record]);
    expectDataError(() => readInstructionRecords(file), "E_DATA_FIELD", { file, line: 1, field }, message);
  });
});

// ---------------------------------------------------------------------------------------
// Stage 3

describe("readEndToEndRecords", () => {
  const e2e = (extra: Record<string, unknown> = {}) => ({ question: "Who?", docs: docs(20), answer: "Ann", pos_index: [0, 3], ...extra });

  test("normalises records; pos_index defaults to []; N may differ unless candidates is given", () => {
    const file = jsonl([e2e(), { question: "Q", context: docs(3), golden_answers: ["G", "H"] }]);
    expect(readEndToEndRecords(file).records).toEqual([
      { question: "Who?", docs: docs(20), answer: "Ann", posIndex: [0, 3], line: 1 },
      { question: "Q", docs: docs(3), answer: "G", posIndex: [], line: 2 },
    ]);
    expectDataError(() => readEndToEndRecords(file, { candidates: 20 }), "E_DATA_FIELD", { file, line: 2, field: "context" }, /Expected exactly 20 documents in "context" but found 3/);
  });

  test("a record with only gold_answer is an error that says to rename it", () => {
    const file = jsonl([e2e(), without(e2e({ gold_answer: "Ann" }), "answer")]);
    const e = expectDataError(() => readEndToEndRecords(file), "E_DATA_FIELD", { file, line: 2, field: "answer" });
    expect(e.message).toMatch(/only "gold_answer"/);
    expect(e.message).toMatch(/rename "gold_answer" to "answer"/);
  });

  const bad: [string, unknown, string, RegExp][] = [
    ["pos_index out of range", e2e({ pos_index: [0, 20] }), "pos_index[1]", /pos_index 20 is out of range: this record has 20 documents, so positions run from 0 to 19/],
    ["a negative pos_index", e2e({ pos_index: [-1] }), "pos_index[0]", /pos_index -1 is out of range/],
    ["a fractional pos_index", e2e({ pos_index: [1.5] }), "pos_index[0]", /Expected an array of integers for "pos_index" but item 0 is number 1\.5/],
    ["a string pos_index", e2e({ pos_index: ["1"] }), "pos_index[0]", /item 0 is string "1"/],
    ["pos_index not a list", e2e({ pos_index: 3 }), "pos_index", /Expected an array of integers for "pos_index" but received number 3/],
    ["a repeated pos_index", e2e({ pos_index: [2, 2] }), "pos_index[1]", /listed twice/],
    ["no documents", e2e({ docs: [], pos_index: [] }), "docs", /Expected at least 1 document in "docs" but found 0/],
    ["a question list", e2e({ question: ["Who?"] }), "question", /Expected a string for "question"/],
    ["no answer", without(e2e(), "answer"), "answer", /Missing "answer" \(or "answers" \/ "golden_answers"\)/],
  ];
  test.each(bad)("%s -> E_DATA_FIELD", (_name, record, field, message) => {
    const file = jsonl([e2e(), record]);
    expectDataError(() => readEndToEndRecords(file), "E_DATA_FIELD", { file, line: 2, field }, message);
  });
});

// ---------------------------------------------------------------------------------------
// Escaping

describe("escapeSpecialTokens", () => {
  const Z = ESCAPE_MARK;

  test("breaks CLaRa's tokens, SentencePiece control tokens and <|...|> tokens with a zero-width space", () => {
    expect(Z).toBe("\u200B");
    const text = "a <MEM0> b <MEM127><ENC><SEP><AE><KBTC> </s><s><unk><pad> <|im_start|> <|endoftext|>";
    const r = escapeSpecialTokensCounted(text);
    expect(r.escaped).toBe(12);
    expect(r.text).toBe(`a <${Z}MEM0> b <${Z}MEM127><${Z}ENC><${Z}SEP><${Z}AE><${Z}KBTC> <${Z}/s><${Z}s><${Z}unk><${Z}pad> <${Z}|im_start|> <${Z}|endoftext|>`);
    // Removing the marks gives the original text back: nothing else changed.
    expect(r.text.split(Z).join("")).toBe(text);
  });

  test("leaves look-alikes alone (matching is exact and case-sensitive)", () => {
    const text = "<mem0> <MEM> <MEMx> <MEM0 > < MEM0> <b>x</b> <sep> a<b and c>d <| |> <||> 3 < 4 > 2";
    expect(escapeSpecialTokensCounted(text)).toEqual({ text, escaped: 0 });
  });

  test("is idempotent", () => {
    const once = escapeSpecialTokens("x<MEM0>y</s>");
    expect(escapeSpecialTokens(once)).toBe(once);
    expect(escapeSpecialTokensCounted(once).escaped).toBe(0);
  });

  test("survives Unicode normalisation (a fullwidth look-alike would not)", () => {
    const once = escapeSpecialTokens("<MEM0>");
    expect(once.normalize("NFKC")).toBe(once);
    expect(once.normalize("NFC")).toBe(once);
    expect("\uFF1CMEM0>".normalize("NFKC")).toBe("<MEM0>");
  });

  test("extra tokenizer-specific tokens are broken after their first character", () => {
    expect(escapeSpecialTokensCounted("[INST] hi [/INST] [INST]", ["[INST]", "[/INST]"])).toEqual({
      text: `[${Z}INST] hi [${Z}/INST] [${Z}INST]`,
      escaped: 3,
    });
  });

  test("the readers escape documents, questions and answers and count them", () => {
    const file = jsonl([
      { question: ["What is <MEM0>?", "And <SEP>?"], answers: ["<ENC>", "x"], docs: ["A doc with <MEM0> and </s> inside."] },
      { data_type: "paraphrase", answers: ["<AE> again"], docs: ["plain"] },
    ]);
    const { records, stats } = readPretrainRecords(file);
    expect(stats.escaped).toBe(6);
    expect(records[0].doc).toBe(`A doc with <${Z}MEM0> and <${Z}/s> inside.`);
    expect(records[0].questions).toEqual([`What is <${Z}MEM0>?`, `And <${Z}SEP>?`]);
    expect(records[0].answers[0]).toBe(`<${Z}ENC>`);
    expect(records[1].answers[0]).toBe(`<${Z}AE> again`);

    const f2 = jsonl([{ question: "<MEM1>?", docs: ["<SEP>", "b", "c", "d", "e"], answer: "<ENC>", gold_answer: "<AE>" }]);
    const r2 = readInstructionRecords(f2);
    expect(r2.stats.escaped).toBe(4);
    expect(r2.records[0].goldAnswer).toBe(`<${Z}AE>`);
    const f3 = jsonl([{ question: "<MEM1>?", docs: ["<SEP>", "b"], answer: "<ENC>" }]);
    expect(readEndToEndRecords(f3).stats.escaped).toBe(3);
  });
});

// ---------------------------------------------------------------------------------------
// Random

describe("Random", () => {
  test("mulberry32 is deterministic and in [0, 1)", () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(mulberry32(43)()).not.toBe(xs[0]);
  });

  test("sample draws k distinct values from [0, n)", () => {
    const rng = new Random(1);
    for (const [n, k] of [[10, 10], [100, 4], [5, 1], [1, 1]]) {
      const s = rng.sample(n, k);
      expect(s).toHaveLength(k);
      expect(new Set(s).size).toBe(k);
      expect(s.every((v) => Number.isInteger(v) && v >= 0 && v < n)).toBe(true);
    }
    expect(() => rng.sample(3, 4)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------
// Deriving stage-2/3 records

describe("deriveInstructionRecords / deriveEndToEndRecords", () => {
  const pretrain: PretrainRecord[] = Array.from({ length: 12 }, (_, i) => ({
    dataType: "qa",
    questions: [`Q${i}a?`, `Q${i}b?`],
    answers: [`A${i}a`, `A${i}b`],
    doc: `Doc ${i}`,
  }));
  pretrain.push({ dataType: "paraphrase", questions: [], answers: ["Doc 0 reworded"], doc: "Doc 0" });

  test("each QA pair becomes a question with its gold doc among k distinct docs", () => {
    const out = deriveInstructionRecords(pretrain, { k: 5, seed: 7 });
    expect(out).toHaveLength(24);
    out.forEach((r, j) => {
      const src = pretrain[Math.floor(j / 2)];
      expect(r.question).toBe(src.questions[j % 2]);
      expect(r.answer).toBe(src.answers[j % 2]);
      expect(r.goldAnswer).toBe(r.answer);
      expect(r.docs).toHaveLength(5);
      expect(new Set(r.docs).size).toBe(5);
      expect(r.docs.filter((d) => d === src.doc)).toHaveLength(1);
    });
    // The gold position varies.
    expect(new Set(out.map((r, j) => r.docs.indexOf(pretrain[Math.floor(j / 2)].doc))).size).toBeGreaterThan(2);
  });

  test("stage 3: pos_index points at the gold doc among N candidates", () => {
    const out = deriveEndToEndRecords(pretrain, { candidates: 12, seed: 7 });
    expect(out).toHaveLength(24);
    out.forEach((r, j) => {
      expect(r.docs).toHaveLength(12);
      expect(new Set(r.docs).size).toBe(12);
      expect(r.posIndex).toHaveLength(1);
      expect(r.docs[r.posIndex[0]]).toBe(pretrain[Math.floor(j / 2)].doc);
    });
  });

  test("deterministic for a seed, different across seeds", () => {
    expect(deriveInstructionRecords(pretrain, { seed: 3 })).toEqual(deriveInstructionRecords(pretrain, { seed: 3 }));
    expect(deriveInstructionRecords(pretrain, { seed: 3 })).not.toEqual(deriveInstructionRecords(pretrain, { seed: 4 }));
    expect(deriveEndToEndRecords(pretrain, { candidates: 6 })).toEqual(deriveEndToEndRecords(pretrain, { candidates: 6, seed: 42 }));
  });

  test("questionsPerDoc and limit", () => {
    const one = deriveInstructionRecords(pretrain, { questionsPerDoc: 1 });
    expect(one).toHaveLength(12);
    one.forEach((r, i) => expect(pretrain[i].questions).toContain(r.question));
    expect(deriveEndToEndRecords(pretrain, { candidates: 5, limit: 7 })).toHaveLength(7);
    expect(deriveEndToEndRecords(pretrain, { candidates: 5, limit: 0 })).toHaveLength(0);
  });

  test("too few distinct documents or bad options are E_INVALID_ARGUMENT", () => {
    const e = catchClara(() => deriveEndToEndRecords(pretrain, { candidates: 13 }), "E_INVALID_ARGUMENT");
    expect(e.message).toMatch(/only 12 distinct documents/);
    expect(e.field).toBe("candidates");
    catchClara(() => deriveInstructionRecords(pretrain, { k: 0 }), "E_INVALID_ARGUMENT");
    catchClara(() => deriveInstructionRecords(pretrain, { seed: 1.5 }), "E_INVALID_ARGUMENT");
    catchClara(() => deriveInstructionRecords(pretrain.slice(12), { k: 1 }), "E_INVALID_ARGUMENT");
  });

  test("derived records survive a write/read round trip", () => {
    const inst = deriveInstructionRecords(pretrain, { k: 5 });
    const file = path.join(dir, "derived-inst.jsonl");
    writeJsonl(file, inst.map(instructionRecordToJson));
    expect(readInstructionRecords(file, { k: 5 }).records.map((r) => without(r as never, "line"))).toEqual(inst);
    const e2e = deriveEndToEndRecords(pretrain, { candidates: 8 });
    const file2 = path.join(dir, "derived-e2e.jsonl");
    writeJsonl(file2, e2e.map(endToEndRecordToJson));
    expect(readEndToEndRecords(file2, { candidates: 8 }).records.map((r) => without(r as never, "line"))).toEqual(e2e);
    const file3 = path.join(dir, "pretrain-rt.jsonl");
    writeJsonl(file3, pretrain.map(pretrainRecordToJson));
    expect(readPretrainRecords(file3).records.map((r) => without(r as never, "line"))).toEqual(pretrain);
  });
});

// ---------------------------------------------------------------------------------------
// Apple's sample stage-1 data (read-only, outside the repository)

const APPLE = path.resolve(__dirname, "../../shared/data/ml-clara/pretrain_data.jsonl");
const describeApple = fs.existsSync(APPLE) ? describe : describe.skip;

describeApple("Apple's pretrain_data.jsonl", () => {
  let records: PretrainRecord[];
  beforeAll(() => {
    const read = readPretrainRecords(APPLE);
    records = read.records;
    expect(read.stats).toEqual({ file: APPLE, records: 900, escaped: 0 });
  });

  test("reads as 900 valid stage-1 qa records", () => {
    expect(records.every((r) => r.dataType === "qa" && r.questions.length === r.answers.length && r.questions.length >= 1)).toBe(true);
    expect(records[0].doc.startsWith("This a document about Flip Skateboards.")).toBe(true);
    expect(records[0].answers[0]).toBe("Jake Phelps");
    expect(records[899].line).toBe(900);
  });

  test("derives stage-2 records: one per QA pair, 5 docs, the gold doc once", () => {
    const total = records.reduce((s, r) => s + r.questions.length, 0);
    const out = deriveInstructionRecords(records, { k: 5, seed: 42 });
    expect(out).toHaveLength(total);
    let j = 0;
    for (const r of records) {
      for (let q = 0; q < r.questions.length; q++, j++) {
        const d = out[j];
        expect(d.question).toBe(r.questions[q]);
        expect(d.answer).toBe(r.answers[q]);
        expect(d.docs).toHaveLength(5);
        expect(new Set(d.docs).size).toBe(5);
        expect(d.docs.filter((x) => x === r.doc)).toHaveLength(1);
      }
    }
    expect(deriveInstructionRecords(records, { k: 5, seed: 42 })).toEqual(out);
  });

  test("derives stage-3 records: 20 candidates, the gold doc at pos_index", () => {
    const out = deriveEndToEndRecords(records, { candidates: 20, seed: 42, questionsPerDoc: 2 });
    expect(out).toHaveLength(records.reduce((s, r) => s + Math.min(2, r.questions.length), 0));
    const positions = new Set<number>();
    for (const d of out) {
      expect(d.docs).toHaveLength(20);
      expect(new Set(d.docs).size).toBe(20);
      expect(d.posIndex).toHaveLength(1);
      positions.add(d.posIndex[0]);
      expect(records.some((r) => r.doc === d.docs[d.posIndex[0]] && r.questions.includes(d.question))).toBe(true);
    }
    expect(positions.size).toBe(20);
    expect(deriveEndToEndRecords(records, { candidates: 20, seed: 42, questionsPerDoc: 2 })).toEqual(out);
    // The derived records are valid stage-3 input.
    const file = path.join(dir, "apple-e2e.jsonl");
    writeJsonl(file, out.slice(0, 50).map(endToEndRecordToJson));
    expect(readEndToEndRecords(file, { candidates: 20 }).records).toHaveLength(50);
  });
});

// ---------------------------------------------------------------------------------------
// The example data

const EXAMPLE = path.resolve(__dirname, "../example");

describe("example data (tools/make-example-data.ts)", () => {
  let generated: Map<string, string>;
  beforeAll(() => {
    generated = generateExampleData({ seed: 42 });
  });

  test("the generator is deterministic and the seed matters", () => {
    expect(generateExampleData({ seed: 42 })).toEqual(generated);
    const other = generateExampleData({ seed: 7 });
    expect(other.get("pretrain.jsonl")).not.toBe(generated.get("pretrain.jsonl"));
  });

  test("the committed files in example/ equal a fresh generation, byte for byte", () => {
    const out = path.join(dir, "example-fresh");
    const written = makeExampleData({ seed: 42, out });
    expect(written.map((w) => path.relative(out, w.file)).sort()).toEqual([...generated.keys()].sort());
    const listed = (root: string): string[] =>
      fs
        .readdirSync(root, { withFileTypes: true })
        .filter((e) => !e.name.startsWith(".")) // .gitkeep
        .flatMap((e) => (e.isDirectory() ? listed(path.join(root, e.name)).map((f) => `${e.name}/${f}`) : [e.name]));
    expect(listed(EXAMPLE).sort()).toEqual(listed(out).sort());
    for (const rel of generated.keys()) {
      const fresh = fs.readFileSync(path.join(out, rel));
      expect(fresh.equals(Buffer.from(generated.get(rel)!, "utf8"))).toBe(true);
      expect(fs.readFileSync(path.join(EXAMPLE, rel)).equals(fresh)).toBe(true);
    }
  });

  test("the files are valid input for the three stages, with the intended shapes", () => {
    const words = (s: string) => s.split(/\s+/).filter(Boolean).length;
    for (const sub of ["", "heldout/"]) {
      const pre = readPretrainRecords(path.join(EXAMPLE, `${sub}pretrain.jsonl`));
      expect(pre.stats.escaped).toBe(0);
      const paraphrases = pre.records.filter((r) => r.dataType === "paraphrase").length;
      expect(paraphrases / pre.records.length).toBeGreaterThan(0.1);
      expect(paraphrases / pre.records.length).toBeLessThan(0.3);
      for (const r of pre.records) {
        expect(r.doc).toMatch(/^This is a document about [A-Z"t].*\.$/);
        expect(words(r.doc)).toBeGreaterThanOrEqual(60);
        expect(words(r.doc)).toBeLessThanOrEqual(150);
        if (r.dataType === "qa") {
          expect(r.questions.length).toBeGreaterThanOrEqual(4);
          expect(r.questions.length).toBeLessThanOrEqual(8);
          for (const a of r.answers) {
            expect(words(a)).toBeLessThanOrEqual(3);
            expect(r.doc).toContain(a); // every answer is stated in the document
          }
        } else {
          expect(r.answers[0]).not.toBe(r.doc);
          expect(r.answers[0].startsWith("This is a document")).toBe(false);
        }
      }
      const inst = readInstructionRecords(path.join(EXAMPLE, `${sub}instruction.jsonl`), { k: 5 });
      const docsOf = new Set(pre.records.map((r) => r.doc));
      for (const r of inst.records) {
        expect(r.goldAnswer).toBe(r.answer);
        expect(r.docs.every((d) => docsOf.has(d))).toBe(true);
        expect(r.docs.filter((d) => d.includes(r.answer)).length).toBeGreaterThanOrEqual(1);
      }
      const e2e = readEndToEndRecords(path.join(EXAMPLE, `${sub}end_to_end.jsonl`), { candidates: 20 });
      for (const r of e2e.records) {
        expect(r.posIndex).toHaveLength(1);
        expect(r.docs[r.posIndex[0]]).toContain(r.answer);
        expect(r.docs.every((d) => docsOf.has(d))).toBe(true);
      }
    }
    const sizes = [...generated.values()].reduce((s, c) => s + Buffer.byteLength(c), 0);
    expect(sizes).toBeLessThan(5 * 1024 * 1024);
  });

  test("held-out entities never appear in the training files", () => {
    const heldout = readPretrainRecords(path.join(EXAMPLE, "heldout/pretrain.jsonl")).records;
    const train = ["pretrain.jsonl", "instruction.jsonl", "end_to_end.jsonl"].map((f) => fs.readFileSync(path.join(EXAMPLE, f), "utf8")).join("\n");
    const names = new Set(heldout.filter((r) => r.dataType === "qa").map((r) => /^This is a document about (?:the )?(.+?)\.(?: |$)/.exec(r.doc)![1]));
    expect(names.size).toBe(60);
    for (const name of names) expect(new RegExp(`\\b${name}\\b`).test(train)).toBe(false);
    // Nor do the invented names the held-out documents mention (founders, towns, dogs, ...).
    const months = new Set(["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]);
    let checked = 0;
    for (const r of heldout.filter((x) => x.dataType === "qa")) {
      for (const a of r.answers) {
        if (!/^[A-Z][a-z]+( [A-Z][a-z]+)?$/.test(a) || months.has(a)) continue;
        expect(new RegExp(`\\b${a}\\b`).test(train)).toBe(false);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  test("the command line validates its arguments", () => {
    const err = jest.spyOn(console, "error").mockImplementation(() => {});
    const log = jest.spyOn(console, "log").mockImplementation(() => {});
    try {
      expect(makeExampleMain(["--seed", "abc"])).toBe(2);
      expect(makeExampleMain(["--bogus"])).toBe(2);
      expect(makeExampleMain(["--help"])).toBe(0);
      const out = path.join(dir, "cli-out");
      expect(makeExampleMain(["--seed", "42", "--out", out])).toBe(0);
      expect(fs.readFileSync(path.join(out, "end_to_end.jsonl")).equals(fs.readFileSync(path.join(EXAMPLE, "end_to_end.jsonl")))).toBe(true);
    } finally {
      err.mockRestore();
      log.mockRestore();
    }
  });
});
