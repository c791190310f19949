// Lines in reading order -> title, sections and paragraphs. Headings come from pdf-headings.ts.
// Paragraphs break at first-line indents, vertical gaps, short last lines and size changes,
// each measured against the lines around it (a quoted abstract is indented as a block, not
// line by line); line-end hyphens are resolved by pdf-hyphenation.ts. Text that is not running
// prose never enters a paragraph: full-width floats, table rows (cells apart, or text under a
// cell of the row above), captions ("Table 2: ..."), displayed formulas and footnotes (small
// text ending a column) become paragraphs of their own, after the paragraph they interrupt.

import { DocumentVocabulary, joinParagraphLines } from "./pdf-hyphenation";
import { HeadingDetector, NAMED, NUMBERED, type Heading, type SectionKind } from "./pdf-headings";
import type { LayoutLine } from "./pdf-layout";

export type { SectionKind } from "./pdf-headings";

/** What a paragraph that is not running text is. */
export type ParagraphRole = "float" | "table" | "caption" | "footnote" | "equation" | "figure";

export interface Paragraph {
  text: string;
  /** The page the paragraph starts on. */
  page: number;
  /** [offset in text, page] where the paragraph continues on another page. */
  pageBreaks?: Array<[number, number]>;
  /** Not running text: a table, caption, footnote or full-width float moved out of the prose. */
  float?: boolean;
  role?: ParagraphRole;
}

export interface Section {
  index: number;
  /** The heading as printed: "2.1 Compression", "Abstract", "(front matter)". */
  title: string;
  /** "2.1", "A", or null for unnumbered headings. */
  number: string | null;
  level: number;
  /** Titles from the top-level section down to this one. */
  path: string[];
  kind: SectionKind;
  /** First and last page. */
  pages: [number, number];
  /** The paragraphs joined by blank lines. */
  text: string;
  paragraphs: Paragraph[];
}

export interface SectionStats {
  bodyFontSize: number;
  headings: number;
  dehyphenated: number;
  floats: number;
}

export const FRONT_MATTER = "(front matter)";

const CAPTION = /^(table|figure|fig\.)\s+[A-Z]?\d+[.:]/i;
/** A displayed formula's line ends in its number, set apart: "h = ... | (1)". */
const EQUATION_NUMBER = /\|\s*\(\d{1,3}[a-z]?\)$/;
const FOOTNOTE_MARK = /^([\d*\u2020\u2021\u00a7\u00b6]{1,2})\s?\S/u;
/** A list item's label: a bullet or dash, "3." or "3)", "(b)", "(iv)". */
const LIST_LABEL = /^([\u2022\u25e6\u25aa\u2023\u2219\u00b7\u2013\u2014*-]|\d{1,2}[.)]|\(?[a-z]\)|\([ivx]{1,4}\))\s/u;
const RUN_IN_ABSTRACT = /^abstract\s*[\u2014\u2013:.-]\s*/i;

/** Small text in the lowest part of a page is a footnote. */
const FOOTNOTE_TOP = 0.6;
const FOOTNOTE_SMALLER_BY = 1.5;

/** The char-weighted most common font size, to half a point. */
function bodyFontSize(lines: LayoutLine[]): number {
  const counts = new Map<number, number>();
  for (const l of lines) {
    if (l.role !== "body") continue;
    const s = Math.round(l.size * 2) / 2;
    counts.set(s, (counts.get(s) ?? 0) + l.text.length);
  }
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 10;
}

/** The usual distance between baselines, in ems (median over consecutive lines of a column). */
function leadingRatio(lines: LayoutLine[]): number {
  const r: number[] = [];
  for (let i = 1; i < lines.length; i++) {
    const a = lines[i - 1];
    const b = lines[i];
    if (a.page === b.page && a.region === b.region && a.role === "body" && b.role === "body" && Math.abs(a.size - b.size) < 0.5 && b.y > a.y) r.push((b.y - a.y) / a.size);
  }
  r.sort((x, y) => x - y);
  return r.length ? r[Math.floor(r.length / 2)] : 1.2;
}

/**
 * The left and right edges of the block each line sits in: the outermost edges of the nearby
 * lines of the same page, region and size. A paragraph's first line is indented against these.
 */
function blockEdges(lines: LayoutLine[]): Array<{ left: number; right: number }> {
  const WINDOW = 4;
  return lines.map((l, i) => {
    let left = l.x0;
    let right = l.x1;
    for (let j = Math.max(0, i - WINDOW); j <= Math.min(lines.length - 1, i + WINDOW); j++) {
      const o = lines[j];
      if (o.page !== l.page || o.region !== l.region || o.role !== l.role || Math.abs(o.size - l.size) > 0.6 || o.cells > 1) continue;
      left = Math.min(left, o.x0);
      right = Math.max(right, o.x1);
    }
    return { left, right };
  });
}

/**
 * Footnotes: the run of small lines that ends a column (or page), low on the page, whose
 * first line starts with a footnote mark ("1Three member ..."). A bibliography set small at
 * the end of a column starts with its heading or "[1]" and is not one.
 */
function footnoteLines(lines: LayoutLine[], bodySize: number, leading: number): Set<LayoutLine> {
  const out = new Set<LayoutLine>();
  const small = (l: LayoutLine) => l.role === "body" && l.size <= bodySize - FOOTNOTE_SMALLER_BY;
  for (let end = 0; end < lines.length; ) {
    let start = end;
    while (end < lines.length && lines[end].page === lines[start].page && lines[end].region === lines[start].region) end++;
    let first = end;
    while (first > start && small(lines[first - 1])) first--;
    const head = lines[first];
    // Page furniture without a mark (acmart's permission block) stands well below the text.
    const apart =
      first > start && head?.y - lines[first - 1].y > 1.5 * leading * bodySize && !NAMED.test(head.text) && !/^\[\d+\]/.test(head.text) && !CAPTION.test(head.text) && head.cells === 1;
    if (first < end && head.y > FOOTNOTE_TOP * head.pageHeight && (FOOTNOTE_MARK.test(head.text) || apart)) {
      for (let i = first; i < end; i++) out.add(lines[i]);
    }
  }
  return out;
}

const FIGURE_CAPTION = /^(figure|fig\.)\s+[A-Z]?\d+[.:]/i;

/**
 * Text drawn inside a figure (labels, boxes): the lines just above a figure's caption in the
 * same column that do not start at the column's left edge the way prose does, set in any
 * size; the walk stops at a prose line, a heading or the top of the column.
 */
function figureLines(lines: LayoutLine[], edges: Array<{ left: number; right: number }>, bodySize: number): Set<LayoutLine> {
  const out = new Set<LayoutLine>();
  lines.forEach((caption, i) => {
    if (!FIGURE_CAPTION.test(caption.text)) return;
    for (let j = i - 1; j >= 0; j--) {
      const l = lines[j];
      if (l.page !== caption.page || l.region !== caption.region || l.role !== caption.role) break;
      const prose = l.x0 - edges[j].left < 0.6 * l.size && Math.abs(l.size - bodySize) < 0.6;
      if (prose || l.bold || l.size > bodySize + 0.9) break;
      out.add(l);
    }
  });
  return out;
}

/** A piece of a formula: short, and no two lower-case letters in a row (prose has words). */
const FORMULA_FRAGMENT = /^(?!.*\p{Ll}{2})[^]{1,14}$/u;

/**
 * Displayed formulas: a line ending in an equation number, and the fragments a formula's
 * stacked symbols leave on lines just above or below it ("XK", "k=1").
 */
function equationLines(lines: LayoutLine[], leading: number): Set<LayoutLine> {
  const out = new Set<LayoutLine>();
  lines.forEach((l, i) => {
    if (l.role !== "body" || !EQUATION_NUMBER.test(l.text)) return;
    out.add(l);
    for (const step of [-1, 1]) {
      let near = l;
      for (let j = i + step; j >= 0 && j < lines.length; j += step) {
        const o = lines[j];
        const close = o.page === near.page && o.region === near.region && Math.abs(o.y - near.y) < (leading + 0.5) * Math.max(o.size, near.size);
        if (!close || !FORMULA_FRAGMENT.test(o.text.trim())) break;
        out.add(o);
        near = o;
      }
    }
  });
  return out;
}

/** Where each column's text starts, per page and region: the most common line start. */
function columnLeftEdges(lines: LayoutLine[]): Map<string, number> {
  const counts = new Map<string, Map<number, number>>();
  for (const l of lines) {
    const k = `${l.page}:${l.region}`;
    if (!counts.has(k)) counts.set(k, new Map());
    const c = counts.get(k)!;
    c.set(Math.round(l.x0), (c.get(Math.round(l.x0)) ?? 0) + 1);
  }
  return new Map([...counts].map(([k, c]) => [k, [...c].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0]]));
}

export function buildSections(lines: LayoutLine[]): { title: string; sections: Section[]; stats: SectionStats } {
  const bodySize = bodyFontSize(lines);
  const edges = blockEdges(lines);
  const edgeOf = new Map(lines.map((l, i) => [l, edges[i]]));
  const columnLeft = columnLeftEdges(lines);
  const leading = leadingRatio(lines);
  const vocabulary = new DocumentVocabulary(lines.map((l) => l.text));
  const stats: SectionStats = { bodyFontSize: bodySize, headings: 0, dehyphenated: 0, floats: 0 };
  const footnotes = footnoteLines(lines, bodySize, leadingRatio(lines));
  const equations = equationLines(lines, leadingRatio(lines));
  const figures = figureLines(lines, edges, bodySize);

  // The title: the largest text on the first page's front matter (or its top), if clearly larger.
  const firstPage = lines[0]?.page ?? 1;
  const front = lines.filter((l) => l.page === firstPage && l.role === "front");
  const titleCandidates = front.length ? front : lines.filter((l) => l.page === firstPage).slice(0, 8);
  const maxSize = Math.max(0, ...titleCandidates.map((l) => l.size));
  const titleLines = new Set<LayoutLine>();
  if (maxSize >= bodySize + 1.5) {
    const start = titleCandidates.findIndex((l) => l.size === maxSize);
    for (let i = start; i < titleCandidates.length && Math.abs(titleCandidates[i].size - maxSize) < 0.5; i++) titleLines.add(titleCandidates[i]);
  }
  const title = [...titleLines].reduce((t, l) => joinParagraphLines(t, l.text, vocabulary).text, "");
  const untitled = lines.filter((l) => !titleLines.has(l));
  const detector = new HeadingDetector(bodySize, HeadingDetector.numbers(untitled, bodySize), untitled);

  const sections: Section[] = [];
  let current = newSection(0, { title: FRONT_MATTER, number: null, level: 0, kind: "front" }, [], firstPage);
  const stack: Array<{ level: number; title: string }> = [];
  let para: { text: string; page: number; pageBreaks: Array<[number, number]>; first: LayoutLine; last: LayoutLine; lastPage: number } | null = null;
  // Text kept out of the running paragraph, emitted after it: one entry per paragraph-to-be.
  let asides: Array<{ role: ParagraphRole; lines: LayoutLine[] }> = [];
  let previousHeading: { line: LayoutLine; section: Section } | null = null;

  const aside = (role: ParagraphRole, l: LayoutLine, startsNew: boolean) => {
    const last = asides[asides.length - 1];
    if (!startsNew && last && last.role === role) last.lines.push(l);
    else asides.push({ role, lines: [l] });
  };

  const endParagraph = () => {
    if (para) {
      current.paragraphs.push({ text: para.text, page: para.page, ...(para.pageBreaks.length ? { pageBreaks: para.pageBreaks } : {}) });
      para = null;
    }
    for (const a of asides) {
      if (a.role === "table") {
        current.paragraphs.push({ text: tableText(a.lines), page: a.lines[0].page, float: true, role: a.role });
        touch(current, a.lines[a.lines.length - 1].page);
        stats.floats++;
        continue;
      }
      let text = "";
      a.lines.forEach((l, i) => {
        if (i === 0) text = l.text;
        else if (l.cells > 1 || a.lines[i - 1].cells > 1) text += "\n" + l.text;
        else text = joinParagraphLines(text, l.text, vocabulary).text;
      });
      current.paragraphs.push({ text, page: a.lines[0].page, float: true, role: a.role });
      touch(current, a.lines[a.lines.length - 1].page);
      stats.floats++;
    }
    asides = [];
  };

  let previous: LayoutLine | null = null;
  for (const l of lines) {
    if (titleLines.has(l)) continue;
    const before = previous;
    previous = l;
    const lastAside = asides[asides.length - 1];
    const lastAsideLine = lastAside?.lines[lastAside.lines.length - 1];
    // Floats and footnotes must not cut the running paragraph.
    if (l.role === "float") {
      const caption = CAPTION.test(l.text);
      const role: ParagraphRole = caption ? "caption" : l.cells > 1 ? "table" : lastAside?.role === "caption" && lastAsideLine === before ? "caption" : "float";
      aside(role, l, caption || lastAsideLine !== before);
      continue;
    }
    if (footnotes.has(l) && current.kind !== "references") {
      const continues = lastAside?.role === "footnote" && lastAsideLine?.page === l.page && !(FOOTNOTE_MARK.test(l.text) && /[.!?]$/.test(lastAsideLine.text));
      aside("footnote", l, !continues);
      continue;
    }
    if (figures.has(l)) {
      aside("figure", l, !(lastAside?.role === "figure" && lastAsideLine === before));
      continue;
    }
    if (equations.has(l)) {
      aside("equation", l, !(lastAside?.role === "equation" && lastAsideLine === before));
      continue;
    }
    // Table rows: cells apart, or a line under a cell of the table row just above.
    if ((l.cells > 1 && l.role === "body") || (lastAside?.role === "table" && lastAsideLine === before && continuesTable(lastAsideLine!, l))) {
      aside("table", l, !(lastAside?.role === "table" && lastAsideLine === before));
      continue;
    }
    // Captions: from "Table 2:" to the end of their paragraph.
    // (Mid-paragraph, "Table 2:" would need the line before to end a paragraph; after a
    // figure, a table or a column break it starts a caption anyway.)
    const afterAside = lastAsideLine !== undefined && lastAsideLine === before;
    if (CAPTION.test(l.text) && (!para || afterAside || para.last.region !== l.region || para.last.page !== l.page || breaksParagraph(para.last, l, current.kind))) {
      aside("caption", l, true);
      continue;
    }
    if (lastAside?.role === "caption" && lastAsideLine === before && lastAsideLine.role === l.role && lastAsideLine.region === l.region && !breaksParagraph(lastAsideLine, l, current.kind)) {
      aside("caption", l, false);
      continue;
    }
    // A heading that wraps: its second line follows closely in the same style.
    if (previousHeading && continuesHeading(previousHeading.line, l)) {
      previousHeading.section.title = joinParagraphLines(previousHeading.section.title, l.text, vocabulary).text;
      previousHeading.section.path[previousHeading.section.path.length - 1] = previousHeading.section.title;
      // Subsections' paths name the whole title too.
      if (stack.length) stack[stack.length - 1].title = previousHeading.section.title;
      previousHeading.line = l;
      continue;
    }
    previousHeading = null;
    const h = detector.detect(l, isCentered(l));
    if (h) {
      endParagraph();
      startSection(h, l.page);
      previousHeading = { line: l, section: current };
      continue;
    }
    // A numbered heading run into its paragraph ("2.1 Temperature Log The boiler ..."): the
    // bold lead is the heading, the rest the paragraph's first line. Unnumbered run-in titles
    // (LaTeX's \paragraph) stay part of their paragraph's text.
    const lead = l.boldLead;
    if (lead !== "" && lead.length < l.text.length && NUMBERED.test(lead) && (!para || breaksParagraph(para.last, l, current.kind, para.first))) {
      const runIn = detector.detect({ ...l, text: lead.replace(/[.:]$/, ""), bold: true, cells: 1 });
      if (runIn) {
        endParagraph();
        startSection(runIn, l.page);
        const rest: LayoutLine = { ...l, text: l.text.slice(lead.length).trim(), boldLead: "" };
        edgeOf.set(rest, edgeOf.get(l)!);
        touch(current, l.page);
        para = { text: rest.text, page: l.page, pageBreaks: [], first: rest, last: rest, lastPage: l.page };
        continue;
      }
    }
    let line = l;
    // IEEE and others set the abstract's name in front of its first line: "Abstract—Small ...".
    if (current.kind === "front" && RUN_IN_ABSTRACT.test(l.text)) {
      endParagraph();
      startSection({ title: "Abstract", number: null, level: 1, kind: "abstract" }, l.page);
      line = { ...l, text: l.text.replace(RUN_IN_ABSTRACT, "") };
      edgeOf.set(line, edgeOf.get(l)!);
      para = { text: line.text, page: l.page, pageBreaks: [], first: line, last: line, lastPage: l.page };
      continue;
    }
    touch(current, l.page);
    // Right after a formula, figure or table the space above the line is the float's, not a paragraph break.
    const belowAside = lastAsideLine !== undefined && lastAsideLine === before && lastAside.role !== "footnote";
    if (para && !breaksParagraph(para.last, line, current.kind, para.first, belowAside)) {
      const before = para.text.length;
      const j = joinParagraphLines(para.text, line.text, vocabulary);
      if (j.dehyphenated) stats.dehyphenated++;
      para.text = j.text;
      if (line.page !== para.lastPage) {
        para.pageBreaks.push([Math.min(before, para.text.length), line.page]);
        para.lastPage = line.page;
      }
      para.last = line;
      continue;
    }
    endParagraph();
    para = { text: line.text, page: line.page, pageBreaks: [], first: line, last: line, lastPage: line.page };
  }
  endParagraph();
  finish(sections, current);
  return { title, sections, stats };

  function startSection(h: Heading, page: number): void {
    finish(sections, current);
    while (stack.length && stack[stack.length - 1].level >= h.level) stack.pop();
    stack.push({ level: h.level, title: h.title });
    current = newSection(sections.length, h, stack.map((s) => s.title), page);
    stats.headings++;
  }

  function breaksParagraph(prev: LayoutLine, cur: LayoutLine, kind: SectionKind, first?: LayoutLine, belowAside = false): boolean {
    const e = edgeOf.get(cur)!;
    const pe = edgeOf.get(prev)!;
    // A list item starts a paragraph; its later lines hang a little right of its label.
    if (LIST_LABEL.test(cur.text) && kind !== "references") return true;
    const inItem = first !== undefined && LIST_LABEL.test(first.text) && cur.x0 > first.x0 + 0.3 * cur.size && cur.x0 < first.x0 + 3 * cur.size;
    const indented = cur.x0 - e.left > 0.6 * cur.size && !inItem;
    const sameColumn = prev.page === cur.page && prev.region === cur.region;
    const gap = sameColumn && !belowAside && cur.y - prev.y > (leading + 0.45) * prev.size;
    const sizeChange = Math.abs(cur.size - prev.size) > 1;
    if (kind === "references") {
      // One entry per paragraph: "[3] ..." or "12. ..." starts one; with a hanging indent, so
      // does a line back at the column's edge after an indented one.
      const prevIndented = prev.x0 - pe.left > 0.6 * prev.size;
      return /^(\[\d+\]|\d+\.\s)/.test(cur.text) || gap || sizeChange || (prevIndented && !indented);
    }
    const prevShort = prev.x1 < pe.right - 2 * prev.size && /[.!?:]["'\u201d\u2019)\]]?$/.test(prev.text);
    return indented || prevShort || gap || sizeChange;
  }

  function isCentered(l: LayoutLine): boolean {
    const e = edgeOf.get(l)!;
    const width = e.right - e.left;
    return l.x1 - l.x0 < 0.5 * width && Math.abs((l.x0 + l.x1) / 2 - (e.left + e.right) / 2) < l.size;
  }

  /**
   * A line just below a table row that is no prose line: under one of the row's cells (a
   * wrapped cell), or not starting at the column's edge at all (cells set in the middle of
   * their rows in a narrow column). Prose starts at the edge or a paragraph indent from it.
   */
  function continuesTable(row: LayoutLine, l: LayoutLine): boolean {
    const sameColumn = row.page === l.page && row.region === l.region;
    if (!sameColumn || l.y - row.y > (leading + 0.6) * Math.max(row.size, l.size) || l.y < row.y) return false;
    if (row.cellStarts.slice(1).some((x) => Math.abs(x - l.x0) < 1.5)) return true;
    const left = columnLeft.get(`${l.page}:${l.region}`) ?? l.x0;
    const atEdge = l.x0 - left < 1.5 * l.size;
    const prose = atEdge && l.x1 - l.x0 > 0.6 * (edgeOf.get(l)!.right - left);
    // A bold line at the column's edge is a heading, not a cell.
    return !prose && !(atEdge && l.bold) && !CAPTION.test(l.text);
  }

  function continuesHeading(h: LayoutLine, l: LayoutLine): boolean {
    return (
      l.page === h.page && l.region === h.region && l.bold === h.bold && Math.abs(l.size - h.size) < 0.5 &&
      l.y - h.y < (leading + 0.3) * h.size && l.y > h.y && (h.bold || h.size > bodySize + 0.9) &&
      !NUMBERED.test(l.text) && l.text.split(/\s+/).length <= 8 && !/[.]$/.test(l.text)
    );
  }
}

/**
 * A table's rows, cells joined by " | ", one row a line. A line with one cell that sits under
 * a cell of the row above is that cell's text wrapping ("Top" / "temperature").
 */
function tableText(rows: LayoutLine[]): string {
  const out: Array<{ cells: string[]; starts: number[] }> = [];
  for (const l of rows) {
    const last = out[out.length - 1];
    const under = l.cells === 1 && last ? last.starts.findIndex((x, k) => k > 0 && Math.abs(x - l.x0) < 1.5) : -1;
    if (under > 0 && last.cells.length === last.starts.length) last.cells[under] += " " + l.text;
    else out.push({ cells: l.text.split(" | "), starts: l.cellStarts });
  }
  return out.map((r) => r.cells.join(" | ")).join("\n");
}

function newSection(index: number, h: Heading, path: string[], page: number): Section {
  return { index, title: h.title, number: h.number, level: h.level, path: path.length ? path : [h.title], kind: h.kind, pages: [page, page], text: "", paragraphs: [] };
}

function touch(s: Section, page: number): void {
  s.pages = [Math.min(s.pages[0], page), Math.max(s.pages[1], page)];
}

function finish(sections: Section[], s: Section): void {
  s.text = s.paragraphs.map((p) => p.text).join("\n\n");
  if (s.kind === "front" && s.text === "") return;
  s.index = sections.length;
  sections.push(s);
}
