// Evaluation questions (lib/eval/qa-set.ts): the file format and its errors, the category
// round-robin cut, the LLM generator's validation (malformed, unsupported, trivial, duplicate
// pairs dropped and counted), the extractive cloze generator, and how the sources combine.
// Also BM25 (lib/eval/bm25.ts) against hand-computed scores.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Bm25, bm25Tokens } from "../lib/eval/bm25";
import { extractPdf, type ExtractedPdf } from "../lib/eval/pdf";
import type { Section } from "../lib/eval/pdf-sections";
import { extractiveQa, llmQa, makeQaSet, parseJsonObjects, QA_EXAMPLE_LINE, QA_FORMAT_HELP, readQaSet, selectQuestions, writeQaSet, type QaItem } from "../lib/eval/qa-set";
import { squashSpace } from "../lib/eval/text";
import { catchClara } from "./helpers/errors";

const REPO = path.resolve(__dirname, "..");
const QA = path.join(REPO, "knowledge_data", "sample_paper_qa.jsonl");

let doc: ExtractedPdf;
let work: string;
beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-qa-test-"));
  doc = await extractPdf(path.join(REPO, "knowledge_data", "sample_paper.pdf"));
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function section(title: string, text: string, page = 1): Section {
  return { index: 0, title, number: null, level: 1, path: [title], kind: "body", pages: [page, page], text, paragraphs: [{ text, page }] };
}

describe("QA files", () => {
  test("the hand-written sample set: 20 questions, 4 per category, all fields", () => {
    const items = readQaSet(QA);
    expect(items.length).toBe(20);
    for (const c of ["factual", "technical", "detailed", "comparative", "numeric"]) expect(items.filter((q) => q.category === c).length).toBe(4);
    for (const q of items) {
      expect(q.keywords.length).toBeGreaterThan(0);
      expect(q.evidence.text).toBeTruthy();
      expect(q.source).toBe("hand-written");
    }
  });

  test("write then read gives the same items", () => {
    const file = path.join(work, "rt.jsonl");
    const items = readQaSet(QA).slice(0, 3);
    writeQaSet(file, items);
    expect(readQaSet(file)).toEqual(items);
  });

  test("errors name the file, the line and the field", () => {
    const good = JSON.parse(fs.readFileSync(QA, "utf8").split("\n")[0]);
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ...good, category: "trivia" }, "category"],
      [{ ...good, question: "" }, "question"],
      [{ ...good, keywords: "8" }, "keywords"],
      [{ ...good, evidence: { section: "2.1", page: 0 } }, "evidence.page"],
      [{ ...good, evidence: undefined }, "evidence"],
    ];
    for (const [record, field] of cases) {
      const file = path.join(work, `bad-${field}.jsonl`);
      fs.writeFileSync(file, JSON.stringify(good) + "\n" + JSON.stringify(record) + "\n");
      const e = catchClara(() => readQaSet(file), "E_DATA_FIELD");
      expect({ field: e.field, line: e.line, file: e.file }).toEqual({ field, line: 2, file });
    }
    // A 10^6-character question is refused at reading, before any model loads.
    const huge = path.join(work, "huge-question.jsonl");
    fs.writeFileSync(huge, JSON.stringify({ ...good, question: "why ".repeat(250_000) }) + "\n");
    const e = catchClara(() => readQaSet(huge), "E_DATA_FIELD");
    expect({ field: e.field, line: e.line }).toEqual({ field: "question", line: 1 });
    expect(e.message).toMatch(/question is 999999 characters \(trimmed\); at most 2000 are accepted/);
    const dup = path.join(work, "dup.jsonl");
    fs.writeFileSync(dup, JSON.stringify(good) + "\n" + JSON.stringify(good) + "\n");
    expect(catchClara(() => readQaSet(dup), "E_DATA_FIELD").field).toBe("id");
  });

  test("the variants a person writes: integer ids, answer for reference_answer, evidence as a section title, capitalised categories", () => {
    const file = path.join(work, "hand.jsonl");
    const lines = [
      { id: 1, question: "How many documents?", answer: " 400 ", category: "Numeric", evidence: "3.1 Data" },
      { id: "q2", question: "Which split?", reference_answer: "training", answer: "training", category: "factual", evidence: { section: "3.1 Data" } },
      { id: 3, question: "What is described?", reference_answer: "an entity", category: "detailed", evidence: { section: "3.1 Data", text: "Every document describes an entity." } },
    ];
    fs.writeFileSync(file, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
    expect(readQaSet(file)).toEqual([
      { id: "1", question: "How many documents?", reference_answer: "400", category: "numeric", keywords: [], evidence: { section: "3.1 Data" } },
      { id: "q2", question: "Which split?", reference_answer: "training", category: "factual", keywords: [], evidence: { section: "3.1 Data" } },
      { id: "3", question: "What is described?", reference_answer: "an entity", category: "detailed", keywords: [], evidence: { section: "3.1 Data", text: "Every document describes an entity." } },
    ]);
  });

  test("a refusal quotes the shape to write", () => {
    const good = { id: "q1", question: "How many documents?", answer: "400", category: "numeric", evidence: "3.1 Data" };
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ ...good, id: 1.5 }, "id", 'write "id": "q1" (or "id": 1)'],
      [{ ...good, answer: undefined }, "answer", 'write "answer": "16"'],
      [{ ...good, answer: ["400"] }, "answer", "received array of length 1"],
      [{ ...good, reference_answer: "four hundred" }, "answer", "answer and reference_answer differ"],
      [{ ...good, category: "trivia" }, "category", 'write "category": "numeric" (one of factual, technical, detailed, comparative, numeric)'],
      [{ ...good, evidence: ["3.1 Data"] }, "evidence", 'write "evidence": {"section": "2.1 Compression", "page": 2, "text": "<the sentence>"} or "evidence": "2.1 Compression"'],
      [{ ...good, evidence: { section: "3.1 Data", page: "2" } }, "evidence.page", 'write "page": 2 (1-based) or no page'],
      [{ ...good, keywords: "400" }, "keywords", 'write "keywords": ["16"]'],
    ];
    for (const [record, field, message] of cases) {
      const file = path.join(work, `shape-${field}.jsonl`);
      fs.writeFileSync(file, JSON.stringify(record) + "\n");
      const e = catchClara(() => readQaSet(file), "E_DATA_FIELD");
      expect({ field: e.field, line: e.line, has: e.message.includes(message) }).toEqual({ field, line: 1, has: true });
    }
    const notObject = path.join(work, "not-object.jsonl");
    fs.writeFileSync(notObject, '"How many documents?"\n');
    expect(catchClara(() => readQaSet(notObject), "E_DATA_FIELD").message).toContain(`write a line like ${QA_EXAMPLE_LINE}`);
    // The example that help and errors show is itself a valid line.
    const example = path.join(work, "example.jsonl");
    fs.writeFileSync(example, QA_EXAMPLE_LINE + "\n");
    expect(readQaSet(example)[0]).toMatchObject({ id: "1", reference_answer: "16", evidence: { section: "2.1 Compression", page: 2 } });
    expect(QA_FORMAT_HELP).toContain(QA_EXAMPLE_LINE);
  });

  test("a cut takes the categories in turn and keeps file order", () => {
    const items = readQaSet(QA);
    const five = selectQuestions(items, 5);
    expect(new Set(five.map((q) => q.category)).size).toBe(5);
    expect(five.map((q) => items.indexOf(q))).toEqual([...five.map((q) => items.indexOf(q))].sort((a, b) => a - b));
    expect(selectQuestions(items, 7).length).toBe(7);
    expect(selectQuestions(items)).toBe(items);
  });
});

describe("LLM questions", () => {
  const s = section("3.1 Data", "The training split has 400 documents. Every document describes an invented entity.", 2);

  test("replies are parsed leniently: an array, or objects one by one", () => {
    expect(parseJsonObjects('Sure! [{"question": "a?", "answer": "b"}] done')).toEqual([{ question: "a?", answer: "b" }]);
    expect(parseJsonObjects('1. {"question": "a?", "answer": "b"}\n2. {"question": broken}\n3. {"question": "c?", "answer": 4}')).toEqual([
      { question: "a?", answer: "b" },
      { question: "c?", answer: 4 },
    ]);
    expect(parseJsonObjects("I cannot do that.")).toEqual([]);
  });

  test("only pairs the section supports are kept; the others are counted", async () => {
    const reply = JSON.stringify([
      { question: "How many documents does the training split have?", answer: "400", category: "numeric", keywords: ["400", "nonsense"] },
      { question: "What does every document describe?", answer: "an invented entity", category: "whatever" },
      { question: "How many GPUs were used?", answer: "8", category: "numeric" },
      { question: "Is the training split 400 documents?", answer: "400 documents" },
      { question: "How many documents does the training split have?", answer: "400" },
      { question: "short", answer: "x" },
      { answer: "no question" },
    ]);
    const prompts: string[] = [];
    const r = await llmQa([s], async (p) => (prompts.push(p), reply), { document: "paper" });
    expect(prompts.length).toBe(1);
    expect(prompts[0]).toContain('Section "3.1 Data"');
    expect(prompts[0]).toContain("JSON array");
    expect(r.stats).toEqual({ sections: 1, malformedReplies: 0, pairs: 7, accepted: 2, malformed: 2, unsupported: 1, trivial: 1, duplicate: 1 });
    expect(r.items[0]).toEqual({
      id: "llm-s0-1",
      question: "How many documents does the training split have?",
      reference_answer: "400",
      category: "numeric",
      keywords: ["400"],
      evidence: { section: "3.1 Data", page: 2, text: "The training split has 400 documents." },
      source: "llm",
      document: "paper",
    });
    // An unknown category is inferred; missing keywords fall back to the answer.
    expect(r.items[1]).toMatchObject({ category: "factual", keywords: ["an invented entity"] });
  });

  test("a batched generator gets all prompts in batches; an unparseable reply is counted", async () => {
    const sections = [s, { ...s, title: "3.2 Settings" }, { ...s, title: "4 Conclusion" }];
    const sizes: number[] = [];
    const r = await llmQa(sections, { size: 2, batch: async (ps) => (sizes.push(ps.length), ps.map(() => "no json here")) });
    expect(sizes).toEqual([2, 1]);
    expect(r.stats.malformedReplies).toBe(3);
    expect(r.items).toEqual([]);
  });
});

describe("cloze questions", () => {
  test("deterministic, categories mixed, answers in their evidence sentences", () => {
    const a = extractiveQa(doc.sections);
    expect(extractiveQa(doc.sections)).toEqual(a);
    expect(a.length).toBeGreaterThan(15);
    expect(new Set(a.map((q) => q.category)).size).toBeGreaterThanOrEqual(3);
    for (const q of a) {
      expect(q.question.startsWith("Fill in the blank: ")).toBe(true);
      expect(q.question).toContain("____");
      expect(q.question.replace("Fill in the blank: ", "").replace("____", q.reference_answer)).toBe(q.evidence.text);
      const sec = doc.sections.find((x) => x.title === q.evidence.section)!;
      expect(squashSpace(sec.text)).toContain(q.evidence.text);
      expect(["references", "front"]).not.toContain(sec.kind);
    }
    // Citation and section numbers are never the blank.
    expect(a.some((q) => /^\[?\d\]$/.test(q.reference_answer) && q.evidence.text!.includes(`[${q.reference_answer}]`))).toBe(false);
  });

  test("a number in a comparison is a comparative question", () => {
    const [q] = extractiveQa([section("3.2 Settings", "The learning rate of stage 3 is 20 times smaller than that of stages 1 and 2.")], { perSection: 1 });
    expect(q).toMatchObject({ category: "comparative", reference_answer: "3" });
  });
});

describe("the whole set", () => {
  test("a hand-written file is used whole; without it, the LLM and then cloze questions fill each section", async () => {
    const hand = await makeQaSet(doc.sections, { handWritten: QA, generate: async () => "[]" });
    expect(hand.stats).toMatchObject({ handWritten: 20, llm: null, extractive: 0, total: 20 });

    const reply = JSON.stringify([{ question: "How many documents does the training split have?", answer: "400", category: "numeric" }]);
    const mixed = await makeQaSet(doc.sections, { generate: async (p) => (p.includes('"3.1 Data"') ? reply : "no"), perSection: 2, document: "sample_paper" });
    const data = mixed.items.filter((q: QaItem) => q.evidence.section === "3.1 Data");
    expect(data.map((q) => q.source)).toEqual(["llm", "extractive"]);
    expect(mixed.stats.llm!.accepted).toBe(1);
    expect(mixed.stats.total).toBe(mixed.items.length);
    expect(mixed.items.every((q) => q.document === "sample_paper")).toBe(true);
    expect(new Set(mixed.items.map((q) => q.id)).size).toBe(mixed.items.length);

    const both = await makeQaSet(doc.sections, { handWritten: QA, alsoGenerate: true });
    expect(both.stats.handWritten).toBe(20);
    expect(both.stats.extractive).toBeGreaterThan(10);
  });
});

describe("BM25", () => {
  test("tokens: lower case, letters and digits, stopwords dropped", () => {
    expect(bm25Tokens("The top-k selection of 5e-6, in CLaRa!")).toEqual(["top", "k", "selection", "5e", "6", "clara"]);
  });

  test("scores match the formula by hand", () => {
    const docs = ["compression rate compression", "retrieval with bm25", "compression of documents into vectors here"];
    const bm = new Bm25(docs);
    // N = 3; "compression" in 2 docs: idf = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6).
    const idf = Math.log(1.6);
    expect(bm.idf("compression")).toBeCloseTo(idf, 12);
    // doc 0: tf 2, length 3; avg length (3 + 2 + 4) / 3 = 3 ("with", "of", "into" are stopwords).
    const k1 = 1.2;
    const norm0 = k1 * (1 - 0.75 + (0.75 * 3) / 3);
    const s0 = (idf * 2 * (k1 + 1)) / (2 + norm0);
    const norm2 = k1 * (1 - 0.75 + (0.75 * 4) / 3);
    const s2 = (idf * 1 * (k1 + 1)) / (1 + norm2);
    const scores = bm.scores("compression");
    expect(scores[0]).toBeCloseTo(s0, 12);
    expect(scores[1]).toBe(0);
    expect(scores[2]).toBeCloseTo(s2, 12);
    expect(bm.rank("compression")).toEqual([0, 2, 1]);
    expect(bm.rank("nothing matches", 2)).toEqual([0, 1]);
  });
});
