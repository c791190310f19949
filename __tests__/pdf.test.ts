// PDF extraction (lib/eval/pdf.ts, pdf-layout.ts, pdf-sections.ts, chunks.ts, text.ts) on the
// committed sample paper: the file is what tools/make-sample-pdf.ts writes, every heading comes
// back in order, every paragraph and every QA evidence sentence verbatim (two columns, a table
// float, hyphenated line ends, running headers and page numbers removed), chunks respect their
// limit; plus the refusals (not a PDF, password, no text layer) and the text clean-up rules.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraError } from "../lib/errors";
import { approximateTokenCount, chunkSections, evidenceChunks, sectionSentences } from "../lib/eval/chunks";
import { extractPdf, readPdfPages, sectionsFile, type ExtractedPdf } from "../lib/eval/pdf";
import type { LayoutLine } from "../lib/eval/pdf-layout";
import { buildSections } from "../lib/eval/pdf-sections";
import { readQaSet } from "../lib/eval/qa-set";
import { cleanText, joinLines, splitSentences, squashSpace, wordSet } from "../lib/eval/text";
import { SAMPLE_PDF, samplePaperPdf } from "../tools/make-sample-pdf";
import { writePdf } from "../tools/pdf-writer";
import { SAMPLE_PAPER } from "../tools/sample-paper";

const REPO = path.resolve(__dirname, "..");
const PDF = path.join(REPO, SAMPLE_PDF);
const QA = path.join(REPO, "knowledge_data", "sample_paper_qa.jsonl");

let doc: ExtractedPdf;
let work: string;
beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-pdf-test-"));
  doc = await extractPdf(PDF);
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

async function pdfError(file: string): Promise<ClaraError> {
  try {
    await extractPdf(file);
  } catch (e) {
    expect(e).toBeInstanceOf(ClaraError);
    return e as ClaraError;
  }
  throw new Error(`expected ${file} to be refused`);
}

describe("the sample paper", () => {
  test("the committed PDF is exactly what tools/make-sample-pdf.ts writes", () => {
    const fresh = samplePaperPdf();
    expect(Buffer.compare(Buffer.from(fresh), fs.readFileSync(PDF))).toBe(0);
    expect(Buffer.from(fresh.subarray(0, 8)).toString("latin1")).toBe("%PDF-1.4");
  });

  test("every section heading comes back, in order, with its kind and path", () => {
    const expected = SAMPLE_PAPER.blocks.filter((b) => b.kind === "heading").map((b) => b.text);
    expect(doc.sections.filter((s) => s.kind !== "front").map((s) => s.title)).toEqual(expected);
    expect(doc.title).toBe(SAMPLE_PAPER.title.join(" "));
    expect(doc.pages).toBe(3);
    const by = (t: string) => doc.sections.find((s) => s.title === t)!;
    expect(by("Abstract").kind).toBe("abstract");
    expect(by("References").kind).toBe("references");
    expect(by("A Prompt Templates").kind).toBe("appendix");
    expect(by("B Example Records").kind).toBe("appendix");
    expect(by("3 Experiments").kind).toBe("body");
    expect(by("2.1 Compression")).toMatchObject({ number: "2.1", level: 2, path: ["2 Method", "2.1 Compression"], pages: [1, 1] });
    expect(by("3.2 Settings").pages).toEqual([2, 2]);
  });

  test("every paragraph is recovered verbatim: reading order, hyphenation, running headers", () => {
    const all = squashSpace(doc.sections.map((s) => s.text).join(" "));
    for (const b of SAMPLE_PAPER.blocks) if (b.kind !== "heading") expect(all).toContain(b.text);
    // Running header and page numbers are gone (3 pages x 2 rows).
    expect(doc.stats.headerFooterLines).toBe(6);
    expect(all).not.toContain(SAMPLE_PAPER.runningHeader);
    expect(doc.stats.twoColumnPages).toBe(3);
    expect(doc.stats.gutter).not.toBeNull();
    // Words were broken across lines in the PDF, and joined again.
    expect(doc.stats.dehyphenated).toBeGreaterThan(3);
    expect(all).not.toMatch(/\b(com|docu|compres)- ?\w/);
  });

  test("lines in the PDF end in hyphens that the text does not have", async () => {
    const pages = await readPdfPages(PDF);
    const broken = pages.flatMap((p) => p.items.map((i) => i.text)).filter((t) => /\p{Ll}-$/u.test(t));
    expect(broken.length).toBeGreaterThan(3);
    const words = wordSet(doc.sections.map((s) => s.text));
    for (const line of broken) {
      const head = /(\p{L}+)-$/u.exec(line)![1].toLowerCase();
      expect([...words].some((w) => w.startsWith(head) && w.length > head.length)).toBe(true);
    }
  });

  test("the full-width table and its caption become paragraphs of their own after the paragraph they interrupt", () => {
    const retrieval = doc.sections.find((s) => s.title === "2.2 Retrieval")!;
    const floats = retrieval.paragraphs.filter((p) => p.float);
    expect(floats.map((p) => p.role)).toEqual(["table", "caption"]);
    const [table, caption] = floats;
    expect(table.page).toBe(2);
    expect(table.text.split("\n")[0]).toBe(SAMPLE_PAPER.table.header.join(" | "));
    for (const row of SAMPLE_PAPER.table.rows) expect(table.text).toContain(row.join(" | "));
    expect(caption.text).toBe(SAMPLE_PAPER.table.caption);
    // The paragraph the table interrupted continues on page 2 without it.
    const cut = retrieval.paragraphs.find((p) => p.text.includes("Table 1 lists"))!;
    expect(cut.float).toBeUndefined();
    expect(cut.pageBreaks?.[0]?.[1]).toBe(2);
  });

  test("every QA evidence sentence is in its section verbatim, on its page", () => {
    const items = readQaSet(QA);
    expect(items.length).toBe(20);
    for (const q of items) {
      const section = doc.sections.find((s) => s.title === q.evidence.section);
      expect(section).toBeDefined();
      const sentence = sectionSentences(section!).find((s) => s.text.includes(q.evidence.text!));
      expect({ id: q.id, found: sentence !== undefined }).toEqual({ id: q.id, found: true });
      expect({ id: q.id, page: sentence!.page }).toEqual({ id: q.id, page: q.evidence.page });
    }
  });
});

describe("chunks", () => {
  const words = (t: string) => t.split(/\s+/).filter(Boolean).length;

  test("chunks hold whole sentences of one section, within the token limit, without references", () => {
    for (const max of [24, 64, 256]) {
      const chunks = chunkSections(doc.sections, { maxTokens: max, countTokens: words });
      expect(chunks.every((c) => c.tokens <= max && c.tokens === words(c.text))).toBe(true);
      expect(chunks.some((c) => c.kind === "references" || c.kind === "front")).toBe(false);
      expect(chunks.map((c) => c.index)).toEqual(chunks.map((_, i) => i));
      // Together the chunks of a section are its sentences, in order.
      for (const s of doc.sections.filter((x) => x.kind === "body")) {
        const text = chunks.filter((c) => c.sectionIndex === s.index).map((c) => c.text).join(" ");
        expect(text).toBe(sectionSentences(s).map((x) => x.text).join(" "));
      }
    }
  });

  test("a sentence longer than the limit is cut at words; a long word by characters", () => {
    const chunks = chunkSections(doc.sections, { maxTokens: 8, countTokens: words });
    expect(chunks.every((c) => c.tokens <= 8)).toBe(true);
    const long = { ...doc.sections[1], kind: "body" as const, paragraphs: [{ text: "x".repeat(100) + " end.", page: 1 }] };
    const cut = chunkSections([long], { maxTokens: 8, countTokens: approximateTokenCount });
    expect(cut.every((c) => c.tokens <= 8)).toBe(true);
    expect(cut.map((c) => c.text).join("").replace(/ /g, "")).toBe("x".repeat(100) + "end.");
  });

  test("each QA item's evidence is found in exactly the chunks that contain it", () => {
    const chunks = chunkSections(doc.sections, { maxTokens: 64, countTokens: words });
    for (const q of readQaSet(QA)) {
      const m = evidenceChunks(chunks, q.evidence);
      expect(m.match).toBe("text");
      expect(m.indices.length).toBeGreaterThan(0);
      for (const i of m.indices) expect(chunks[i].section).toBe(q.evidence.section);
    }
    // No sentence: the section's chunks on that page; nothing known: none.
    const m = evidenceChunks(chunks, { section: "3.1 Data", page: 2 });
    expect(m.match).toBe("section");
    expect(m.indices.every((i) => chunks[i].section === "3.1 Data")).toBe(true);
    expect(evidenceChunks(chunks, { section: "9 Nowhere" })).toEqual({ indices: [], match: "none" });
  });

  test("the sections file has sections, chunks and the tokenizer used", () => {
    const f = sectionsFile(doc, { maxTokens: 256, countTokens: approximateTokenCount, tokenizer: "approximate" });
    expect(f.format).toBe("clara-mlx-sections");
    expect(f.source.pages).toBe(3);
    expect(f.sections.length).toBe(doc.sections.length);
    expect(f.chunks.length).toBeGreaterThan(5);
    expect(JSON.parse(JSON.stringify(f))).toEqual(f);
  });
});

describe("paragraphs", () => {
  const at = (text: string, y: number, o: Partial<LayoutLine> = {}): LayoutLine => ({
    page: 1, text, x0: 54, x1: 297, y, pageHeight: 792, size: 10, bold: false, italic: false, boldLead: "", region: "left", role: "body", cells: 1, cellStarts: [54], ...o,
  });

  test("a footnote at the bottom of a column does not cut the paragraph running into the next column", () => {
    const lines = [
      at("1 Introduction", 90, { bold: true, size: 11, x1: 140 }),
      at("The first sentence of a paragraph that goes on", 110),
      at("and on to the bottom of the left column, then", 122.5),
      at("1 A footnote in small print.", 700, { size: 8, x1: 200 }),
      at("continues at the top of the right column.", 90, { region: "right", x0: 315, x1: 480 }),
      at("A new paragraph starts indented here and runs", 102.5, { region: "right", x0: 325, x1: 558 }),
      at("to its end.", 115, { region: "right", x0: 315, x1: 360 }),
    ];
    const { sections } = buildSections(lines);
    expect(sections.map((s) => s.title)).toEqual(["1 Introduction"]);
    expect(sections[0].paragraphs.map((p) => p.text)).toEqual([
      "The first sentence of a paragraph that goes on and on to the bottom of the left column, then continues at the top of the right column.",
      "1 A footnote in small print.",
      "A new paragraph starts indented here and runs to its end.",
    ]);
    expect(sections[0].paragraphs[1].float).toBe(true);
  });

  test("headings: numbers go forwards, appendix letters in order, bold or larger only", () => {
    const h = (text: string, y: number, o: Partial<LayoutLine> = {}) => at(text, y, { bold: true, x1: 200, ...o });
    const body = (y: number) => at("Some body text that fills the column from edge to edge.", y);
    const lines = [
      h("X Desktop Group", 60), body(72),
      h("1 Introduction", 90), body(102),
      h("2 Results", 120), body(132),
      at("3 The plain-text list item is not a heading", 150, { x1: 250 }),
      h("1 A bold list item after section 2", 160), body(172),
      h("9 Too far ahead", 180), body(192),
      h("2.1 Details", 200), body(212),
      h("References", 220), body(232),
      h("B Not first", 240), body(252),
      h("A Proofs", 260), body(272),
      h("A.1 Lemma", 280), body(292),
      h("B More", 300), body(312),
    ];
    const { sections } = buildSections(lines);
    expect(sections.filter((s) => s.kind !== "front").map((s) => `${s.kind}:${s.title}`)).toEqual([
      "body:1 Introduction",
      "body:2 Results",
      "body:2.1 Details",
      "references:References",
      "appendix:A Proofs",
      "appendix:A.1 Lemma",
      "appendix:B More",
    ]);
    expect(sections.find((s) => s.title === "A.1 Lemma")!.path).toEqual(["A Proofs", "A.1 Lemma"]);
  });
});

describe("refusals", () => {
  test("a file that is not a PDF", async () => {
    const file = path.join(work, "notes.pdf");
    fs.writeFileSync(file, "just some text, renamed to .pdf\n");
    const e = await pdfError(file);
    expect(e.code).toBe("E_PDF");
    expect(e.field).toBe("format");
    expect(e.file).toBe(file);
    expect(e.message).toMatch(/not a PDF/);
  });

  test("a truncated PDF", async () => {
    const file = path.join(work, "truncated.pdf");
    fs.writeFileSync(file, "%PDF-1.4\n1 0 obj\n<< /Type /Catalog");
    const e = await pdfError(file);
    expect(e.code).toBe("E_PDF");
    expect(e.field).toBe("format");
  });

  test("a password-protected PDF", async () => {
    const file = path.join(work, "locked.pdf");
    fs.writeFileSync(file, writePdf([{ width: 612, height: 792, content: "BT /F1 12 Tf 72 700 Td (secret) Tj ET" }], { fonts: ["Helvetica"], passwordProtected: true }));
    const e = await pdfError(file);
    expect(e.code).toBe("E_PDF");
    expect(e.field).toBe("encryption");
    expect(e.message).toMatch(/password/);
    expect(e.message).toMatch(/qpdf --decrypt/);
  });

  test("a scanned PDF without a text layer", async () => {
    const file = path.join(work, "scan.pdf");
    const gray = new Uint8Array(64 * 64).map((_, i) => (i * 7) % 256);
    const page = { width: 612, height: 792, content: "q 400 0 0 400 100 200 cm /Im0 Do Q", images: [{ width: 64, height: 64, gray }] };
    fs.writeFileSync(file, writePdf([page, page], { fonts: ["Helvetica"] }));
    const e = await pdfError(file);
    expect(e.code).toBe("E_PDF");
    expect(e.field).toBe("text");
    expect(e.message).toMatch(/OCR/);
  });

  test("a missing file", async () => {
    const e = await pdfError(path.join(work, "nope.pdf"));
    expect(e.code).toBe("E_IO");
  });
});

describe("text clean-up", () => {
  test("ligatures, soft hyphens, zero-width and non-breaking spaces", () => {
    expect(cleanText("the \ufb01rst \ufb02ow, e\ufb00ect, o\ufb03ce, ba\ufb04e")).toBe("the first flow, effect, office, baffle");
    expect(cleanText("hy\u00adphen\u200bated\u00a0text\u2009here\ufeff")).toBe("hyphenated text here");
    expect(cleanText("tabs\tand   spaces\nkept line")).toBe("tabs and spaces\nkept line");
  });

  test("line joins: hyphenation, compounds, dashes", () => {
    expect(joinLines("the com-", "pression rate")).toEqual({ text: "the compression rate", dehyphenated: true });
    const vocab = wordSet(["a decoder-only model"]);
    expect(joinLines("one decoder-", "only model", vocab)).toEqual({ text: "one decoder-only model", dehyphenated: false });
    expect(joinLines("Llama-", "2 models").text).toBe("Llama-2 models");
    expect(joinLines("see above -", "then").text).toBe("see above - then");
    expect(joinLines("end of line", "next line").text).toBe("end of line next line");
    expect(joinLines("", "only").text).toBe("only");
  });

  test("sentences: abbreviations, initials, decimals, blank lines", () => {
    const s = (t: string) => splitSentences(t).map((x) => x.text);
    expect(s("We use BM25, e.g. for retrieval. It works. J. He et al. proposed it.")).toEqual([
      "We use BM25, e.g. for retrieval.",
      "It works.",
      "J. He et al. proposed it.",
    ]);
    expect(s("The weight is 0.1. The rate is 32! Is it? Yes.")).toEqual(["The weight is 0.1.", "The rate is 32!", "Is it?", "Yes."]);
    expect(s("A heading\n\nThe body text. See Fig. 2 for more.")).toEqual(["A heading", "The body text.", "See Fig. 2 for more."]);
    const t = "One. Two.";
    expect(splitSentences(t).map((x) => t.slice(x.start, x.start + x.text.length))).toEqual(["One.", "Two."]);
  });
});
