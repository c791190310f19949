// The evaluation questions about a PDF (data/clara_paper_eval.jsonl): one JSON object per line
//   {id, question, reference_answer, category, keywords, evidence: {section, page, text}, source}
// (QA_FORMAT_HELP below is the format as a person writes it, with the variants the reader takes)
// from up to three sources:
// - a hand-written file (knowledge_data/<pdf name>_qa.jsonl; the sample paper ships one);
// - the loaded LLM, asked per section for JSON question-answer pairs, each checked against the
//   section: malformed replies and answers that the section does not contain are dropped and
//   counted;
// - a deterministic extractive generator (cloze questions on sentences with numbers, names and
//   definitions) that fills each section up to its quota when the LLM delivers too few.

import * as fs from "node:fs";
import { ClaraError, describe } from "../errors";
import { readJsonl, writeJsonl } from "../data/jsonl";
import { DEFAULT_CHUNK_KINDS, sectionSentences } from "./chunks";
import { normalizeAnswer, pySplit } from "./metrics";
import type { Section } from "./pdf-sections";

export const QA_CATEGORIES = ["factual", "technical", "detailed", "comparative", "numeric"] as const;
export type QaCategory = (typeof QA_CATEGORIES)[number];
export type QaSource = "hand-written" | "llm" | "extractive";

export interface QaItem {
  id: string;
  question: string;
  reference_answer: string;
  category: QaCategory;
  keywords: string[];
  /** Where the answer is written; `text` (the sentence) locates the gold chunk best. */
  evidence: { section: string; page?: number; text?: string };
  source?: QaSource;
  /** The PDF's name (file name without .pdf) the question is about. */
  document?: string;
}

// ---------------------------------------------------------------------------------------
// Reading and writing

/** Reads and validates a QA file; every problem is an E_DATA_FIELD error with file, line, field. */
export function readQaSet(file: string): QaItem[] {
  const items = readJsonl(file).map(({ value, line }) => validateQaItem(value, file, line));
  if (items.length === 0) throw new ClaraError("E_DATA_FORMAT", `${file} holds no questions; write one JSON object per line, like ${QA_EXAMPLE_LINE}`, { file });
  const seen = new Map<string, number>();
  items.forEach((q, i) => {
    if (seen.has(q.id)) throw new ClaraError("E_DATA_FIELD", `${file}: id ${JSON.stringify(q.id)} is used twice`, { file, field: "id" });
    seen.set(q.id, i);
  });
  return items;
}

/**
 * Longest question the evaluation accepts, in characters: a question is asked in one prompt
 * beside k documents, and far longer text (a pasted document, a 10⁶-character line) cannot fit
 * a model's context. Refused at reading, with its line, before any model loads.
 */
export const MAX_QUESTION_CHARS = 2_000;

/** One line of a question file as a person writes it (what `--help` shows and errors quote). */
export const QA_EXAMPLE_LINE = JSON.stringify({
  id: 1,
  question: "How many memory vectors does a 256-token chunk become at rate 16?",
  answer: "16",
  category: "numeric",
  keywords: ["16"],
  evidence: { section: "2.1 Compression", page: 2, text: "At rate 16 a 256-token chunk becomes 16 memory vectors." },
});

/** The question-file format, for `clara-eval make-qa --help` and `run --help`. */
export const QA_FORMAT_HELP = [
  "Question file: JSONL, one question per line, for example",
  QA_EXAMPLE_LINE,
  "Fields:",
  "  id          a string or an integer, unique in the file",
  `  question    the question, at most ${MAX_QUESTION_CHARS} characters`,
  '  answer      the reference answer, a string (also read as "reference_answer")',
  `  category    one of ${QA_CATEGORIES.join(", ")}`,
  "  keywords    optional: an array of words a correct answer contains",
  '  evidence    where the answer is written: {"section": "2.1 Compression", "page": 2, "text": "<the sentence>"}',
  '              (page and text optional), or only the section title: "2.1 Compression".',
  "              The text finds the chunk that holds the answer (the gold chunk of retrieval recall);",
  "              without it, the section's chunks on that page count. Questions with no gold chunk",
  "              are left out of recall and counted in the report.",
  "  source      optional: hand-written, llm or extractive (make-qa writes it)",
  "  document    optional: the PDF's name without .pdf (make-qa writes it)",
].join("\n");

const SHAPES = {
  id: '"id": "q1" (or "id": 1)',
  question: '"question": "How many memory vectors ...?"',
  answer: '"answer": "16"',
  category: `"category": "numeric" (one of ${QA_CATEGORIES.join(", ")})`,
  keywords: '"keywords": ["16"]',
  evidence: '"evidence": {"section": "2.1 Compression", "page": 2, "text": "<the sentence>"} or "evidence": "2.1 Compression"',
  "evidence.section": '"section": "2.1 Compression"',
  "evidence.page": '"page": 2 (1-based) or no page',
  "evidence.text": '"text": "<the sentence that holds the answer>" or no text',
  source: '"source": "hand-written" (or llm, extractive) or no source',
  document: '"document": "<pdf name without .pdf>" or no document',
} as const;

function validateQaItem(value: unknown, file: string, line: number): QaItem {
  const bad = (field: keyof typeof SHAPES, expected: string, actual: unknown) =>
    new ClaraError("E_DATA_FIELD", `${file}:${line}: Expected ${expected} for ${field} but received ${describe(actual)}; write ${SHAPES[field]}`, { file, line, field });
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ClaraError("E_DATA_FIELD", `${file}:${line}: Expected a JSON object per line but received ${describe(value)}; write a line like ${QA_EXAMPLE_LINE}`, { file, line, field: "record" });
  }
  const r = value as Record<string, unknown>;
  const text = (field: "question" | "answer", v: unknown) => {
    if (typeof v !== "string" || v.trim() === "") throw bad(field, "a non-empty string", v);
    return v.trim();
  };

  let id: string;
  if (typeof r.id === "string" && r.id.trim() !== "") id = r.id.trim();
  else if (Number.isSafeInteger(r.id)) id = String(r.id);
  else throw bad("id", "a non-empty string or an integer", r.id);

  const question = text("question", r.question);
  if (question.length > MAX_QUESTION_CHARS) {
    throw new ClaraError("E_DATA_FIELD", `${file}:${line}: question is ${question.length} characters (trimmed); at most ${MAX_QUESTION_CHARS} are accepted (a question, not a document)`, {
      file,
      line,
      field: "question",
    });
  }

  // "answer" and "reference_answer" name the same field; both is fine only when they agree.
  if (r.answer !== undefined && r.reference_answer !== undefined && r.answer !== r.reference_answer) {
    throw new ClaraError("E_DATA_FIELD", `${file}:${line}: answer and reference_answer differ (${describe(r.answer)} vs ${describe(r.reference_answer)}); give one of them`, { file, line, field: "answer" });
  }
  const answer = text("answer", r.answer ?? r.reference_answer);

  const category = typeof r.category === "string" ? r.category.trim().toLowerCase() : r.category;
  if (!(QA_CATEGORIES as readonly unknown[]).includes(category)) throw bad("category", `one of ${QA_CATEGORIES.join(", ")}`, r.category);

  const keywords = r.keywords ?? [];
  if (!Array.isArray(keywords) || !keywords.every((k) => typeof k === "string" && k.trim() !== "")) throw bad("keywords", "an array of non-empty strings", keywords);

  const evidence = readEvidence(r.evidence, bad);

  const source = r.source;
  if (source !== undefined && source !== "hand-written" && source !== "llm" && source !== "extractive") throw bad("source", "hand-written, llm or extractive", source);
  if (r.document !== undefined && typeof r.document !== "string") throw bad("document", "a string", r.document);
  return {
    id,
    question,
    reference_answer: answer,
    category: category as QaCategory,
    keywords: (keywords as string[]).map((k) => k.trim()),
    evidence,
    ...(source ? { source: source as QaSource } : {}),
    ...(typeof r.document === "string" ? { document: r.document } : {}),
  };
}

/** `evidence` as an object {section, page?, text?} or as the section title alone. */
function readEvidence(ev: unknown, bad: (field: keyof typeof SHAPES, expected: string, actual: unknown) => ClaraError): QaItem["evidence"] {
  if (typeof ev === "string") {
    if (ev.trim() === "") throw bad("evidence", "a section title or an object {section, page, text}", ev);
    return { section: ev.trim() };
  }
  if (typeof ev !== "object" || ev === null || Array.isArray(ev)) throw bad("evidence", "an object {section, page, text} or a section title", ev);
  const e = ev as Record<string, unknown>;
  if (typeof e.section !== "string" || e.section.trim() === "") throw bad("evidence.section", "a non-empty string", e.section);
  if (e.page !== undefined && (!Number.isInteger(e.page) || (e.page as number) < 1)) throw bad("evidence.page", "a page number (1-based)", e.page);
  if (e.text !== undefined && typeof e.text !== "string") throw bad("evidence.text", "a string", e.text);
  return {
    section: e.section.trim(),
    ...(e.page !== undefined ? { page: e.page as number } : {}),
    ...(typeof e.text === "string" && e.text.trim() ? { text: e.text.trim() } : {}),
  };
}

export function writeQaSet(file: string, items: QaItem[]): void {
  writeJsonl(file, items);
}

/** Up to `n` questions, taking the categories in turn (so a cut keeps the mix), in file order. */
export function selectQuestions(items: QaItem[], n?: number): QaItem[] {
  if (n === undefined || n >= items.length) return items;
  const byCat = QA_CATEGORIES.map((c) => items.filter((q) => q.category === c));
  const picked = new Set<QaItem>();
  for (let round = 0; picked.size < n; round++) {
    let any = false;
    for (const list of byCat) {
      if (round < list.length && picked.size < n) {
        picked.add(list[round]);
        any = true;
      }
    }
    if (!any) break;
  }
  return items.filter((q) => picked.has(q));
}

// ---------------------------------------------------------------------------------------
// Extractive cloze questions

const BLANK = "____";
const STRUCTURAL = /^(section|sections|table|tables|figure|figures|fig|eq|equation|appendix|algorithm|line|page|chapter)$/i;
const COMPARATIVE = /\b(than|whereas|compared|versus|vs|while|more|fewer|less|larger|smaller|higher|lower|better|worse|outperforms?|instead)\b/i;
const DEFINITION = /\b(?:is called|we call (?:this|it|the \w+(?: \w+)?)|is defined as|refers to|denotes|is the|are the)\s+([^,;:()]{3,80}?)(?=[,;:.]|\s+(?:which|that|because|so|and then)\b|$)/;
const COMMON_CAPITALISED = new Set(["the", "a", "an", "this", "that", "these", "those", "we", "our", "it", "its", "in", "on", "at", "for", "with", "each", "every", "all", "only", "both", "one", "two", "three", "four", "five", "table", "section", "figure", "stage", "stages", "however", "because", "then", "when", "while"]);

interface Candidate {
  category: QaCategory;
  answer: string;
  start: number;
}

/** The blanks a sentence offers, best first: a number, a definition, a name, a list item. */
function clozeCandidates(sentence: string): Candidate[] {
  const out: Candidate[] = [];
  const numberRe = /(?<![\w.[\-/])(\d+(?:[.,]\d+)*(?:e-?\d+)?%?)(?![\w\]])/g;
  for (const m of sentence.matchAll(numberRe)) {
    const prev = sentence.slice(0, m.index).trim().split(/\s+/).pop() ?? "";
    if (STRUCTURAL.test(prev.replace(/\.$/, ""))) continue;
    out.push({ category: COMPARATIVE.test(sentence) ? "comparative" : "numeric", answer: m[1], start: m.index! });
    break;
  }
  const d = DEFINITION.exec(sentence);
  if (d && pySplit(d[1]).length <= 8) out.push({ category: "technical", answer: d[1].trim(), start: d.index + d[0].indexOf(d[1]) });
  const words = [...sentence.matchAll(/[\p{L}\p{N}][\p{L}\p{N}_+\-./]*[\p{L}\p{N}]|[\p{Lu}]/gu)];
  for (const w of words.slice(1)) {
    const t = w[0];
    const name = /^\p{Lu}/u.test(t) && !COMMON_CAPITALISED.has(t.toLowerCase()) && t.length >= 3;
    const code = /\p{Ll}\p{Lu}|\p{L}\d|\d\p{L}|_/u.test(t) && t.length >= 3;
    if (name || code) {
      out.push({ category: "factual", answer: t, start: w.index! });
      break;
    }
  }
  const list = /,\s+([^,]{2,40}?),?\s+and\s+([\p{L}\p{N}][^,.;:]{1,40}?)(?=[.,;:]|$)/u.exec(sentence);
  if (list) out.push({ category: "detailed", answer: list[2].trim(), start: list.index + list[0].lastIndexOf(list[2]) });
  return out;
}

export interface ExtractiveOptions {
  /** Questions per section (default 2). */
  perSection?: number;
  /** Ids start with this prefix (default "ext"). */
  idPrefix?: string;
  document?: string;
  /** Questions already asked (normalised) are not asked again. */
  exclude?: Set<string>;
}

/**
 * Cloze questions from the sections' sentences ("Fill in the blank: ..."), deterministic: per
 * section, sentences in order, one blank per sentence, categories taken in turn where possible.
 */
export function extractiveQa(sections: Section[], options: ExtractiveOptions = {}): QaItem[] {
  const perSection = options.perSection ?? 2;
  const seen = options.exclude ?? new Set<string>();
  const items: QaItem[] = [];
  for (const section of sections) {
    if (!DEFAULT_CHUNK_KINDS.includes(section.kind)) continue;
    const used = new Set<QaCategory>();
    let made = 0;
    const sentences = sectionSentences(section).filter((s) => s.text.split(" ").length >= 6 && s.text.length <= 400);
    // Two passes: first a category not used yet in this section, then any.
    for (const pass of [0, 1]) {
      for (const s of sentences) {
        if (made >= perSection) break;
        const c = clozeCandidates(s.text).find((x) => pass === 1 || !used.has(x.category));
        if (!c) continue;
        const question = `Fill in the blank: ${s.text.slice(0, c.start)}${BLANK}${s.text.slice(c.start + c.answer.length)}`;
        const key = normalizeAnswer(question);
        if (seen.has(key)) continue;
        seen.add(key);
        used.add(c.category);
        made++;
        items.push({
          id: `${options.idPrefix ?? "ext"}-s${section.index}-${made}`,
          question,
          reference_answer: c.answer,
          category: c.category,
          keywords: [c.answer],
          evidence: { section: section.title, page: s.page, text: s.text },
          source: "extractive",
          ...(options.document ? { document: options.document } : {}),
        });
      }
    }
  }
  return items;
}

// ---------------------------------------------------------------------------------------
// LLM-generated questions

export interface LlmQaStats {
  sections: number;
  /** Replies with no parseable JSON object at all. */
  malformedReplies: number;
  /** Pairs in the replies (parsed objects). */
  pairs: number;
  accepted: number;
  /** Objects without a string question and answer. */
  malformed: number;
  /** Answers the section text does not contain. */
  unsupported: number;
  /** Answers already given away by the question. */
  trivial: number;
  duplicate: number;
}

export interface LlmQaOptions {
  perSection?: number;
  /** Section text beyond this many characters is cut at a sentence end (default 3000). */
  maxSectionChars?: number;
  document?: string;
  exclude?: Set<string>;
  onSection?: (section: Section, accepted: number) => void;
}

/** The prompt that asks for `n` pairs about a section, as a JSON array. */
export function qaPrompt(section: Section, text: string, n: number): string {
  return (
    `Read this section of a research paper and write ${n} question-answer pairs about it.\n` +
    "Rules: every answer is a short phrase copied exactly from the section (a name, a number, a term); " +
    "every question can be answered from the section alone and does not contain its answer; " +
    `the category is one of ${QA_CATEGORIES.join(", ")}.\n` +
    "Reply with only a JSON array, like:\n" +
    '[{"question": "...", "answer": "...", "category": "numeric", "keywords": ["..."]}]\n\n' +
    `Section "${section.title}":\n${text}\n`
  );
}

/** The JSON objects in a model's reply: the first array if it parses, else each {...} alone. */
export function parseJsonObjects(reply: string): unknown[] {
  const start = reply.indexOf("[");
  const end = reply.lastIndexOf("]");
  if (start >= 0 && end > start) {
    try {
      const v = JSON.parse(reply.slice(start, end + 1));
      if (Array.isArray(v)) return v;
    } catch {
      // fall through to object-by-object parsing
    }
  }
  const out: unknown[] = [];
  for (const m of reply.matchAll(/\{[^{}]*\}/g)) {
    try {
      out.push(JSON.parse(m[0]));
    } catch {
      // a broken object is skipped; the caller counts what parsed
    }
  }
  return out;
}

/** Contiguous normalised tokens of `needle` inside `hay` (both normalised). */
function containsTokens(hay: string[], needle: string[]): boolean {
  if (needle.length === 0) return false;
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** A prompt in, the model's reply out; or many prompts at once (faster on most devices). */
export type QaGenerator = ((prompt: string) => Promise<string>) | { batch: (prompts: string[]) => Promise<string[]>; size: number };

async function replies(prompts: string[], generate: QaGenerator): Promise<string[]> {
  if (typeof generate === "function") {
    const out: string[] = [];
    for (const p of prompts) out.push(await generate(p));
    return out;
  }
  const out: string[] = [];
  for (let i = 0; i < prompts.length; i += generate.size) out.push(...(await generate.batch(prompts.slice(i, i + generate.size))));
  return out;
}

/** Asks the model for pairs about each section and keeps those the section supports. */
export async function llmQa(sections: Section[], generate: QaGenerator, options: LlmQaOptions = {}): Promise<{ items: QaItem[]; stats: LlmQaStats }> {
  const perSection = options.perSection ?? 2;
  const maxChars = options.maxSectionChars ?? 3000;
  const seen = options.exclude ?? new Set<string>();
  const stats: LlmQaStats = { sections: 0, malformedReplies: 0, pairs: 0, accepted: 0, malformed: 0, unsupported: 0, trivial: 0, duplicate: 0 };
  const items: QaItem[] = [];
  const asked: Array<{ section: Section; sentences: Array<{ text: string; page: number }>; text: string }> = [];
  for (const section of sections) {
    if (!DEFAULT_CHUNK_KINDS.includes(section.kind) || section.text.trim() === "") continue;
    const sentences = sectionSentences(section);
    let text = "";
    for (const s of sentences) {
      if (text.length + s.text.length + 1 > maxChars && text !== "") break;
      text = text ? `${text} ${s.text}` : s.text;
    }
    asked.push({ section, sentences, text });
  }
  const answers = await replies(asked.map((a) => qaPrompt(a.section, a.text, perSection)), generate);
  for (let si = 0; si < asked.length; si++) {
    const { section, sentences, text } = asked[si];
    stats.sections++;
    const objects = parseJsonObjects(answers[si]);
    if (objects.length === 0) stats.malformedReplies++;
    let accepted = 0;
    for (const o of objects) {
      stats.pairs++;
      const r = (typeof o === "object" && o !== null ? o : {}) as Record<string, unknown>;
      const question = typeof r.question === "string" ? r.question.trim() : "";
      const answer = typeof r.answer === "string" ? r.answer.trim() : typeof r.answer === "number" ? String(r.answer) : "";
      if (question.length < 8 || answer === "") {
        stats.malformed++;
        continue;
      }
      const ans = pySplit(normalizeAnswer(answer));
      if (ans.length === 0 || ans.length > 12) {
        stats.unsupported++;
        continue;
      }
      // Supported: the answer's words appear, in order, in one sentence that was shown.
      const shown = sentences.filter((s) => text.includes(s.text));
      const evidence = shown.find((s) => containsTokens(pySplit(normalizeAnswer(s.text)), ans));
      if (!evidence) {
        stats.unsupported++;
        continue;
      }
      if (containsTokens(pySplit(normalizeAnswer(question)), ans)) {
        stats.trivial++;
        continue;
      }
      const key = normalizeAnswer(question);
      if (seen.has(key)) {
        stats.duplicate++;
        continue;
      }
      seen.add(key);
      const category = (QA_CATEGORIES as readonly string[]).includes(String(r.category)) ? (r.category as QaCategory) : /\d/.test(answer) ? "numeric" : "factual";
      const lowerText = section.text.toLowerCase();
      const keywords = Array.isArray(r.keywords)
        ? r.keywords.filter((k): k is string => typeof k === "string" && k.trim() !== "" && lowerText.includes(k.trim().toLowerCase())).map((k) => k.trim())
        : [];
      accepted++;
      stats.accepted++;
      items.push({
        id: `llm-s${section.index}-${accepted}`,
        question,
        reference_answer: answer,
        category,
        keywords: keywords.length ? keywords : [answer],
        evidence: { section: section.title, page: evidence.page, text: evidence.text },
        source: "llm",
        ...(options.document ? { document: options.document } : {}),
      });
    }
    options.onSection?.(section, accepted);
  }
  return { items, stats };
}

// ---------------------------------------------------------------------------------------
// The whole set

export interface MakeQaOptions {
  /** A hand-written QA file (used whole when present). */
  handWritten?: string;
  /** The LLM (one prompt or a batch at a time); without it only the extractive generator runs. */
  generate?: QaGenerator;
  /** Generated questions per section (LLM first, extractive to fill up). Default 2. */
  perSection?: number;
  /** Also generate when a hand-written file is present. */
  alsoGenerate?: boolean;
  document?: string;
  onSection?: (section: Section, accepted: number) => void;
}

export interface MakeQaStats {
  handWritten: number;
  llm: LlmQaStats | null;
  extractive: number;
  total: number;
  byCategory: Record<QaCategory, number>;
}

/** Builds the evaluation set for a PDF's sections (see the file header). */
export async function makeQaSet(sections: Section[], options: MakeQaOptions = {}): Promise<{ items: QaItem[]; stats: MakeQaStats }> {
  const perSection = options.perSection ?? 2;
  const items: QaItem[] = [];
  const seen = new Set<string>();
  if (options.handWritten && fs.existsSync(options.handWritten)) {
    for (const q of readQaSet(options.handWritten)) {
      items.push({ ...q, source: q.source ?? "hand-written", ...(options.document ? { document: options.document } : {}) });
      seen.add(normalizeAnswer(q.question));
    }
  }
  const handWritten = items.length;
  let llm: LlmQaStats | null = null;
  let extractive = 0;
  if (handWritten === 0 || options.alsoGenerate) {
    let generated: QaItem[] = [];
    if (options.generate) {
      const r = await llmQa(sections, options.generate, { perSection, document: options.document, exclude: seen, onSection: options.onSection });
      generated = r.items;
      llm = r.stats;
    }
    // Fill every section up to its quota with cloze questions.
    const have = new Map<string, number>();
    for (const q of generated) have.set(q.evidence.section, (have.get(q.evidence.section) ?? 0) + 1);
    const fill: QaItem[] = [];
    for (const s of sections) {
      const missing = perSection - (have.get(s.title) ?? 0);
      if (missing > 0) fill.push(...extractiveQa([s], { perSection: missing, document: options.document, exclude: seen }));
    }
    extractive = fill.length;
    // Keep section order: each section's LLM questions, then its cloze questions.
    for (const s of sections) items.push(...generated.filter((q) => q.evidence.section === s.title), ...fill.filter((q) => q.evidence.section === s.title));
  }
  const byCategory = Object.fromEntries(QA_CATEGORIES.map((c) => [c, items.filter((q) => q.category === c).length])) as Record<QaCategory, number>;
  return { items, stats: { handWritten, llm, extractive, total: items.length, byCategory } };
}
