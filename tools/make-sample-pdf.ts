#!/usr/bin/env node
// make-sample-pdf: writes knowledge_data/sample_paper.pdf, a three-page two-column paper about
// this project (text in tools/sample-paper.ts), with no PDF library: PDF 1.4 syntax written by
// tools/pdf-writer.ts, base-14 fonts, justified lines placed with Tm, hyphenated line ends, a
// full-width table drawn with text and rules, a running header and page numbers.
//
//   node dist/tools/make-sample-pdf.js [--out knowledge_data/sample_paper.pdf]
//
// Same code, same bytes (no dates): a test rebuilds the file and compares.

import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { writeFileAtomic } from "../lib/io/atomic";
import { num, pdfString, textWidth, writePdf, type Base14Font, type PdfPage } from "./pdf-writer";
import { HYPHENATION, SAMPLE_PAPER, type PaperBlock, type PaperTable, type SamplePaper } from "./sample-paper";

export const SAMPLE_PDF = "knowledge_data/sample_paper.pdf";

// US Letter, 54 pt side margins, two 243 pt columns with an 18 pt gutter.
const PAGE = { width: 612, height: 792 };
const MARGIN = { left: 54, right: 54, top: 72, bottom: 72 };
const GUTTER = 18;
const TEXT_WIDTH = PAGE.width - MARGIN.left - MARGIN.right;
const COLUMN_WIDTH = (TEXT_WIDTH - GUTTER) / 2;
const FONTS: Base14Font[] = ["Times-Roman", "Helvetica-Bold", "Helvetica"];
const F = { body: "/F1", bold: "/F2", sans: "/F3" } as const;
const FONT_OF: Record<string, Base14Font> = { "/F1": "Times-Roman", "/F2": "Helvetica-Bold", "/F3": "Helvetica" };

interface Style {
  font: keyof typeof FONT_OF;
  size: number;
  leading: number;
}

const STYLES = {
  body: { font: F.body, size: 10, leading: 12.5 },
  h1: { font: F.bold, size: 11, leading: 14 },
  h2: { font: F.bold, size: 10, leading: 13 },
  reference: { font: F.body, size: 9, leading: 11 },
  title: { font: F.bold, size: 16, leading: 20 },
  authors: { font: F.body, size: 10, leading: 12 },
  table: { font: F.sans, size: 9, leading: 13 },
  tableHead: { font: F.bold, size: 9, leading: 13 },
  caption: { font: F.body, size: 9, leading: 11 },
  header: { font: F.sans, size: 8, leading: 10 },
} satisfies Record<string, Style>;

const PARAGRAPH_INDENT = 10;
const HANGING_INDENT = 10;

/** One typeset line: words to draw at (x, baseline), stretched to `justifyTo` when set. */
interface Line {
  text: string;
  x: number;
  width: number;
  style: Style;
  justifyTo?: number;
}

function width(text: string, style: Style): number {
  return textWidth(text, FONT_OF[style.font], style.size);
}

/**
 * Greedy line breaking of `text` into lines of `first` / `rest` widths. A word that does not
 * fit is broken at its last hyphenation point that fits (from HYPHENATION), else moved down.
 */
export function breakLines(text: string, style: Style, first: number, rest: number): string[] {
  const lines: string[] = [];
  let words: string[] = [];
  const queue = text.split(" ").filter((w) => w !== "");
  const avail = () => (lines.length === 0 ? first : rest);
  while (queue.length > 0) {
    const word = queue.shift()!;
    if (width([...words, word].join(" "), style) <= avail()) {
      words.push(word);
      continue;
    }
    const split = hyphenate(word);
    let rest: string | undefined = word;
    for (let i = (split?.parts.length ?? 0) - 1; split && i >= 1; i--) {
      const head = split.lead + split.parts.slice(0, i).join("") + "-";
      if (width([...words, head].join(" "), style) <= avail()) {
        words.push(head);
        rest = split.parts.slice(i).join("") + split.tail;
        break;
      }
    }
    if (words.length === 0) {
      // A word wider than the line and without a break point that fits: it overflows.
      words.push(word);
      rest = undefined;
    }
    lines.push(words.join(" "));
    words = [];
    if (rest !== undefined) queue.unshift(rest);
  }
  if (words.length > 0) lines.push(words.join(" "));
  return lines;
}

function hyphenate(word: string): { lead: string; parts: string[]; tail: string } | undefined {
  const m = /^([^A-Za-z]*)([A-Za-z]+)([^A-Za-z]*)$/.exec(word);
  const pattern = m ? HYPHENATION[m[2]] : undefined;
  return pattern ? { lead: m![1], parts: pattern.split("-"), tail: m![3] } : undefined;
}

/** Draws one line of text; justified lines get word spacing (Tw) so they end at justifyTo. */
function drawLine(line: Line, baseline: number): string {
  const spaces = (line.text.match(/ /g) ?? []).length;
  const natural = width(line.text, line.style);
  const tw = line.justifyTo !== undefined && spaces > 0 ? Math.max(0, (line.justifyTo - natural) / spaces) : 0;
  return `BT ${line.style.font} ${num(line.style.size)} Tf ${num(tw)} Tw 1 0 0 1 ${num(line.x)} ${num(baseline)} Tm ${pdfString(line.text)} Tj ET\n`;
}

/** The page furniture: running header, rule under it, page number. */
function furniture(paper: SamplePaper, pageNumber: number): string {
  const head = STYLES.header;
  const hx = (PAGE.width - width(paper.runningHeader, head)) / 2;
  const nStr = String(pageNumber);
  const nx = (PAGE.width - width(nStr, STYLES.header)) / 2;
  return (
    drawLine({ text: paper.runningHeader, x: hx, width: 0, style: head }, PAGE.height - 42) +
    `0.4 w ${MARGIN.left} ${PAGE.height - 47} m ${PAGE.width - MARGIN.right} ${PAGE.height - 47} l S\n` +
    drawLine({ text: nStr, x: nx, width: 0, style: { ...STYLES.header, size: 9 } }, 40)
  );
}

/** The table across the text width with its rules and caption; returns the content and its height. */
function drawTable(table: PaperTable, top: number): { content: string; bottom: number } {
  let out = "";
  // Columns as wide as their widest cell, the spare width spread evenly between them.
  const widths = table.header.map((_, i) =>
    Math.max(width(table.header[i], STYLES.tableHead), ...table.rows.map((r) => width(r[i], STYLES.table))),
  );
  const spare = (TEXT_WIDTH - widths.reduce((a, b) => a + b, 0)) / (widths.length - 1);
  if (spare < 2 * STYLES.table.size) throw new Error("make-sample-pdf: the table is too wide for the page");
  const xs = widths.map((_, i) => MARGIN.left + widths.slice(0, i).reduce((a, b) => a + b + spare, 0));
  const rule = (y: number, w: number) => `${w} w ${MARGIN.left} ${num(y)} m ${PAGE.width - MARGIN.right} ${num(y)} l S\n`;
  let y = top;
  out += rule(y, 0.8);
  const row = (cells: string[], style: Style) => {
    y -= style.leading;
    cells.forEach((c, i) => (out += drawLine({ text: c, x: xs[i], width: 0, style }, y + 3.5)));
  };
  row(table.header, STYLES.tableHead);
  y -= 2;
  out += rule(y, 0.4);
  for (const r of table.rows) row(r, STYLES.table);
  y -= 3;
  out += rule(y, 0.8);
  y -= 4;
  for (const text of breakLines(table.caption, STYLES.caption, TEXT_WIDTH, TEXT_WIDTH)) {
    y -= STYLES.caption.leading;
    out += drawLine({ text, x: MARGIN.left, width: 0, style: STYLES.caption }, y);
  }
  return { content: out, bottom: y - 14 };
}

/** Lays the paper out; returns the pages' content streams. */
export function layoutSamplePaper(paper: SamplePaper = SAMPLE_PAPER): PdfPage[] {
  const contents: string[] = [];
  // Page 1: title and authors across both columns.
  let y = PAGE.height - MARGIN.top;
  let first = "";
  for (const t of paper.title) {
    y -= STYLES.title.leading;
    first += drawLine({ text: t, x: (PAGE.width - width(t, STYLES.title)) / 2, width: 0, style: STYLES.title }, y);
  }
  y -= 6 + STYLES.authors.leading;
  first += drawLine({ text: paper.authors, x: (PAGE.width - width(paper.authors, STYLES.authors)) / 2, width: 0, style: STYLES.authors }, y);
  contents.push(first);
  let columnsTop = y - 22;

  // Frames: (page, column) pairs, filled top to bottom.
  let page = 0;
  let column = 0;
  let cursor = columnsTop; // the baseline of the last line placed (top of the frame initially)
  let atFrameTop = true;
  const colX = () => MARGIN.left + column * (COLUMN_WIDTH + GUTTER);
  const nextFrame = () => {
    if (column === 0) column = 1;
    else {
      column = 0;
      page++;
      contents.push("");
      columnsTop = PAGE.height - MARGIN.top;
      if (page + 1 === paper.table.page) {
        const t = drawTable(paper.table, columnsTop);
        contents[page] += t.content;
        columnsTop = t.bottom;
      }
    }
    cursor = columnsTop;
    atFrameTop = true;
  };
  const room = () => cursor - MARGIN.bottom;
  const place = (line: Line, spaceBefore = 0) => {
    const advance = (atFrameTop ? line.style.size : line.style.leading) + (atFrameTop ? 0 : spaceBefore);
    if (room() < advance) {
      nextFrame();
      return place(line, 0);
    }
    cursor -= advance;
    contents[page] += drawLine({ ...line, x: colX() + line.x }, cursor);
    atFrameTop = false;
  };

  let afterHeading = false;
  for (const block of paper.blocks) {
    if (block.kind === "heading") {
      const style = block.level === 1 ? STYLES.h1 : STYLES.h2;
      // Keep the heading with the first two lines of what follows.
      if (room() < style.leading + 8 + 2 * STYLES.body.leading) nextFrame();
      place({ text: block.text, x: 0, width: 0, style }, 8);
      cursor -= 2;
      afterHeading = true;
      continue;
    }
    const { style, indentFirst, indentRest } = blockStyle(block, afterHeading);
    const lines = breakLines(block.text, style, COLUMN_WIDTH - indentFirst, COLUMN_WIDTH - indentRest);
    lines.forEach((text, i) => {
      const indent = i === 0 ? indentFirst : indentRest;
      const last = i === lines.length - 1;
      place({ text, x: indent, width: 0, style, justifyTo: last ? undefined : COLUMN_WIDTH - indent }, i === 0 && block.kind === "reference" ? 2 : 0);
    });
    afterHeading = false;
  }
  return contents.map((content, i) => ({ width: PAGE.width, height: PAGE.height, content: furniture(paper, i + 1) + content }));
}

function blockStyle(block: PaperBlock, afterHeading: boolean): { style: Style; indentFirst: number; indentRest: number } {
  if (block.kind === "reference") return { style: STYLES.reference, indentFirst: 0, indentRest: HANGING_INDENT };
  return { style: STYLES.body, indentFirst: afterHeading ? 0 : PARAGRAPH_INDENT, indentRest: 0 };
}

/** The sample paper as PDF bytes. */
export function samplePaperPdf(paper: SamplePaper = SAMPLE_PAPER): Uint8Array {
  return writePdf(layoutSamplePaper(paper), {
    fonts: FONTS,
    title: paper.title.join(" "),
    producer: "@clara/mlx tools/make-sample-pdf.ts",
  });
}

export function writeSamplePaper(out = SAMPLE_PDF): string {
  fs.mkdirSync(path.dirname(out), { recursive: true });
  writeFileAtomic(out, samplePaperPdf());
  return out;
}

if (require.main === module) {
  const { values } = parseArgs({ options: { out: { type: "string", default: SAMPLE_PDF } } });
  const file = writeSamplePaper(values.out!);
  console.log(`wrote ${file} (${fs.statSync(file).size} bytes)`);
}
