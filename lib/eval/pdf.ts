// PDF -> sections -> chunks, for evaluating on a paper (never for training). pdf.js (5.x legacy
// build, the last line supporting Node 20) gives positioned text items; pdf-layout.ts puts them
// into reading order from the page geometry alone (pdf-columns.ts: gutter and full-width bands;
// pdf-running-text.ts: running heads, feet, page numbers; pdf-line-numbers.ts: review-copy line
// numbers); pdf-sections.ts finds headings (pdf-headings.ts) and paragraphs, keeping tables,
// captions, formulas, figures and footnotes apart and resolving line-end hyphens
// (pdf-hyphenation.ts); pdf-quality.ts says when the result looks wrong; chunks.ts packs
// sentences into chunks that fit the compressor. tools/pdf-fixtures/ holds the typeset test
// documents and their ground truth.
//
// Not-a-PDF, password-protected and text-less (scanned) files are refused with a ClaraError
// "E_PDF" that names the file and says what to do.

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";
import { importEsm } from "../esm";
import { chunkSections, type Chunk, type ChunkOptions } from "./chunks";
import type { PdfPageText, PdfTextItem } from "./pdf-text";
import { layoutPages, type LayoutStats } from "./pdf-layout";
import { buildSections, type Section, type SectionStats } from "./pdf-sections";

/** A run of text as pdf.js reports it; coordinates in points, y from the top of the page. */
export type { PdfPageText, PdfTextItem } from "./pdf-text";

export interface ExtractedPdf {
  file: string;
  /** The file name without extension: "sample_paper" for knowledge_data/sample_paper.pdf. */
  name: string;
  sha256: string;
  pages: number;
  title: string;
  sections: Section[];
  stats: LayoutStats & SectionStats;
}

const BOLD_FONT = /bold|black|heavy|semibold|demi|medi(um)?\b|-bd|cm\w*bx|cmb\d|\bbx|ecbx|ecsx|ecrb/i;

// pdflatex with T1-encoded fonts but without the cm-super outlines embeds bitmap (Type3) fonts
// with no Unicode map, and pdf.js then reports the ligature glyphs by their T1 code points,
// which are control characters: 0x1B-0x1F are ff, fi, fl, ffi, ffl there.
const T1_LIGATURES: Record<string, string> = { "\u001b": "ff", "\u001c": "fi", "\u001d": "fl", "\u001e": "ffi", "\u001f": "ffl" };
// A lone glyph that bitmap fonts leave without a Unicode value (a C1 control or private-use
// code) is a symbol, in running text a list bullet; it must not vanish or glue to the item.
const UNMAPPED_SYMBOL = /^[\u0080-\u009f\ue000-\uf8ff]$/;

/** pdf.js's module, loaded once (ESM; see lib/esm.ts). */
let pdfjsModule: Promise<any> | undefined;
function pdfjs(): Promise<any> {
  return (pdfjsModule ??= importEsm("pdfjs-dist/legacy/build/pdf.mjs"));
}

function pdfjsAssets(): { standardFontDataUrl: string; cMapUrl: string } {
  const dir = path.dirname(require.resolve("pdfjs-dist/package.json")) + path.sep;
  return { standardFontDataUrl: dir + "standard_fonts" + path.sep, cMapUrl: dir + "cmaps" + path.sep };
}

function pdfError(file: string, what: string, fix: string, field: string, cause?: unknown): ClaraError {
  return new ClaraError("E_PDF", `${file}: ${what}. ${fix}`, { file, field, cause });
}

/** Reads the text items of every page. */
export async function readPdfPages(file: string): Promise<PdfPageText[]> {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ClaraError("E_IO", `Could not read ${file}: ${code === "ENOENT" ? "the file does not exist" : (e as Error).message}`, { file, cause: e });
  }
  if (!bytes.subarray(0, 1024).toString("latin1").includes("%PDF-")) {
    throw pdfError(file, "this is not a PDF file (no %PDF- header)", "Pass a PDF document, e.g. a paper downloaded from arXiv as .pdf", "format");
  }
  const lib = await pdfjs();
  let doc: any;
  try {
    doc = await lib.getDocument({
      data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      ...pdfjsAssets(),
      cMapPacked: true,
      useSystemFonts: false,
      disableFontFace: true,
      isEvalSupported: false,
      verbosity: 0,
    }).promise;
  } catch (e) {
    const name = (e as Error)?.name;
    if (name === "PasswordException") {
      throw pdfError(file, "the PDF is encrypted with a password", "Save an unprotected copy (e.g. `qpdf --decrypt in.pdf out.pdf`, or print to PDF) and use that", "encryption", e);
    }
    throw pdfError(file, `the PDF could not be parsed (${(e as Error)?.message ?? e})`, "Check that the download is complete, or re-save the file with a PDF viewer", "format", e);
  }
  try {
    const pages: PdfPageText[] = [];
    for (let p = 1; p <= doc.numPages; p++) pages.push(await readPage(doc, p));
    return pages;
  } finally {
    await doc.destroy();
  }
}

async function readPage(doc: any, pageNumber: number): Promise<PdfPageText> {
  const page = await doc.getPage(pageNumber);
  const viewport = page.getViewport({ scale: 1 });
  const content = await page.getTextContent();
  // Font names (for bold headings) are only known once the page's fonts are loaded.
  const fonts = new Map<string, string>();
  try {
    await page.getOperatorList();
    for (const id of Object.keys(content.styles ?? {})) {
      try {
        fonts.set(id, String(page.commonObjs.get(id)?.name ?? ""));
      } catch {
        fonts.set(id, "");
      }
    }
  } catch {
    // Without font names headings are found from sizes and numbering alone.
  }
  const items: PdfTextItem[] = [];
  for (const it of content.items) {
    if (typeof it.str !== "string" || it.str.trim() === "") continue;
    const [a, b, c, d, e, f] = it.transform as number[];
    const font = fonts.get(it.fontName) ?? "";
    const size = Math.hypot(c, d) || it.height || 0;
    items.push({
      text: UNMAPPED_SYMBOL.test(it.str.trim()) ? "\u2022" : it.str.replace(/[\u001b-\u001f]/g, (c: string) => T1_LIGATURES[c]),
      x: e,
      y: viewport.height - f,
      width: it.width,
      size,
      font,
      bold: BOLD_FONT.test(font),
      horizontal: a > 0 && Math.abs(b) < 1e-3 * a && Math.abs(c) < 1e-3 * Math.abs(d),
    });
  }
  page.cleanup();
  return { page: pageNumber, width: viewport.width, height: viewport.height, items };
}

/** Reads a PDF and returns its title and sections in reading order. */
export async function extractPdf(file: string): Promise<ExtractedPdf> {
  const pages = await readPdfPages(file);
  const chars = pages.reduce((n, p) => n + p.items.reduce((m, i) => m + i.text.trim().length, 0), 0);
  if (chars < 20 * Math.max(1, Math.min(pages.length, 3))) {
    throw pdfError(
      file,
      `the PDF has no text layer (${pages.length} page(s), ${chars} characters of text): it is probably scanned images`,
      "Run OCR first (e.g. `ocrmypdf in.pdf out.pdf`) and use the result",
      "text",
    );
  }
  const layout = layoutPages(pages);
  const { title, sections, stats } = buildSections(layout.lines);
  if (sections.every((s) => s.text.trim() === "")) {
    throw pdfError(file, "no text could be placed in reading order", "The layout may be unusual; report the file", "text");
  }
  return {
    file,
    name: path.basename(file).replace(/\.pdf$/i, ""),
    sha256: createHash("sha256").update(fs.readFileSync(file)).digest("hex"),
    pages: pages.length,
    title,
    sections,
    stats: { ...layout.stats, ...stats },
  };
}

/** The sections file written by `clara-eval extract` (data/<name>.sections.json). */
export interface SectionsFile {
  format: "clara-mlx-sections";
  version: 1;
  source: { file: string; sha256: string; pages: number };
  title: string;
  stats: ExtractedPdf["stats"];
  sections: Section[];
  chunking: { maxTokens: number; tokenizer: string };
  chunks: Chunk[];
}

export function sectionsFile(doc: ExtractedPdf, chunking: ChunkOptions & { tokenizer: string }): SectionsFile {
  return {
    format: "clara-mlx-sections",
    version: 1,
    source: { file: doc.file, sha256: doc.sha256, pages: doc.pages },
    title: doc.title,
    stats: doc.stats,
    sections: doc.sections,
    chunking: { maxTokens: chunking.maxTokens, tokenizer: chunking.tokenizer },
    chunks: chunkSections(doc.sections, chunking),
  };
}

/** A PDF as chunks for indexing (tools/clara.ts): id "<name>:<n>", first page, section heading. */
export async function pdfChunks(file: string, options: ChunkOptions): Promise<Array<{ id: string; text: string; page: number; pages: number[]; section: string }>> {
  const doc = await extractPdf(file);
  return chunkSections(doc.sections, options).map((c) => ({ id: `${doc.name}:${c.index}`, text: c.text, page: c.pages[0], pages: c.pages, section: c.section }));
}
