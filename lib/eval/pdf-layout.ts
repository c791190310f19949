// Text items -> lines in reading order, from the geometry of the page alone (no assumption
// about which program wrote the PDF). Items on one baseline form a row; a row's items merge
// into pieces where they nearly touch, and never across the gutter. Running heads, feet and
// page numbers go (pdf-running-text.ts). Two-column pages are read band by band, left column
// before right (pdf-columns.ts). Full-width rows above the first column line of the first
// page are front matter (title, authors, a spanning abstract); other full-width rows are
// floats (figure* and table* text), which the section builder keeps out of paragraphs.

import { cleanText } from "./text";
import type { PdfPageText, PdfTextItem } from "./pdf-text";
import { columnEdges, columnOrder, crosses, findGutter, sideOf, pageUsesGutter, type Gutter, type OrderedRow, type Piece, type Row } from "./pdf-columns";
import { lineNumberItems } from "./pdf-line-numbers";
import { runningTextRows } from "./pdf-running-text";

export type Region = "single" | "left" | "right" | "full";
export type LineRole = "body" | "front" | "float";

export interface LayoutLine {
  page: number;
  text: string;
  x0: number;
  x1: number;
  /** Baseline from the top of the page. */
  y: number;
  pageHeight: number;
  size: number;
  bold: boolean;
  italic: boolean;
  /** The line's leading bold text, for run-in headings ("2.1 Data The corpus ..."); "" if none. */
  boldLead: string;
  region: Region;
  role: LineRole;
  /** Pieces separated by wide gaps (table cells); joined with " | " in `text`. */
  cells: number;
  /** Where each cell starts (x), for following a table whose cell text wraps. */
  cellStarts: number[];
}

export interface LayoutStats {
  items: number;
  lines: number;
  /** Rows dropped as running headers, footers or page numbers. */
  headerFooterLines: number;
  /** Rotated or vertical items skipped (e.g. arXiv's margin stamp). */
  rotatedItems: number;
  /** Line numbers of a review copy, dropped (pdf-line-numbers.ts). */
  lineNumbers: number;
  twoColumnPages: number;
  /** Running-text lines shorter than SHORT_LINE_CHARS: many of them mean a broken layout. */
  shortLines: number;
  /** The gutter found, in points from the left edge; null for single-column documents. */
  gutter: [number, number] | null;
}

/** Lines with fewer characters than this are "short" in the layout statistics. */
export const SHORT_LINE_CHARS = 15;
/** Items closer than this many ems are one piece; wider gaps separate pieces. */
const PIECE_GAP_EM = 0.8;
/** Pieces further apart than this many ems are table cells. */
const CELL_GAP_EM = 1.5;
/** Within a piece, a gap wider than this many ems is a space the PDF did not write. */
const WORD_GAP_EM = 0.12;

export function layoutPages(pages: PdfPageText[]): { lines: LayoutLine[]; stats: LayoutStats } {
  const stats: LayoutStats = { items: 0, lines: 0, headerFooterLines: 0, rotatedItems: 0, lineNumbers: 0, twoColumnPages: 0, shortLines: 0, gutter: null };
  const flatByPage = pages.map((p) => {
    stats.items += p.items.length;
    const numbers = lineNumberItems(p);
    stats.lineNumbers += numbers.size;
    const flat = p.items.filter((i) => i.horizontal && !numbers.has(i));
    stats.rotatedItems += p.items.filter((i) => !i.horizontal).length;
    return flat;
  });
  const em = bodySizeOf(flatByPage.flat());
  const width = pageWidthOf(pages);

  // First pass without a gutter, to find it; second pass never merges across it.
  let rowsByPage = pages.map((p, i) => rows(p.page, flatByPage[i], null));
  const sameWidth = (p: PdfPageText) => Math.abs(p.width - width) < 1;
  const gutter = findGutter(rowsByPage.filter((_, i) => sameWidth(pages[i])).flat(), width);
  if (gutter) rowsByPage = pages.map((p, i) => rows(p.page, flatByPage[i], sameWidth(p) ? gutter : null));
  stats.gutter = gutter;

  const running = runningTextRows(pages, rowsByPage.map((rs) => rs.map((r) => ({ ...r, size: rowSize(r), text: rowText(r), row: r }))), em);
  const dropped = new Set([...running].map((r) => r.row));
  stats.headerFooterLines = dropped.size;
  rowsByPage = rowsByPage.map((rs) => rs.filter((r) => !dropped.has(r)));

  const firstPage = pages.find((p, i) => rowsByPage[i].length > 0)?.page ?? 1;
  const lines: LayoutLine[] = [];
  pages.forEach((p, i) => {
    const rs = rowsByPage[i];
    let ordered: OrderedRow[];
    if (gutter && sameWidth(p)) {
      const edges = columnEdges(rs, gutter);
      if (pageUsesGutter(rs, gutter, edges, em)) {
        stats.twoColumnPages++;
        ordered = columnOrder(rs, gutter, edges, em);
      } else ordered = rs.map((r) => ({ row: r, pieces: r.pieces, region: "single", beforeColumns: false }));
    } else ordered = rs.map((r) => ({ row: r, pieces: r.pieces, region: "single", beforeColumns: false }));
    for (const o of ordered) {
      const role: LineRole = o.region !== "full" ? "body" : p.page === firstPage && o.beforeColumns ? "front" : "float";
      lines.push(line(p.page, p.height, o.pieces, o.region, role));
    }
  });
  stats.lines = lines.length;
  stats.shortLines = lines.filter((l) => l.role === "body" && l.text.length < SHORT_LINE_CHARS).length;
  return { lines, stats };
}

/** The character-weighted most common item size: the body text's em. */
function bodySizeOf(items: PdfTextItem[]): number {
  const counts = new Map<number, number>();
  for (const it of items) counts.set(Math.round(it.size * 2) / 2, (counts.get(Math.round(it.size * 2) / 2) ?? 0) + it.text.length);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 10;
}

/** The most common page width (documents rarely mix sizes; odd pages are read single-column). */
function pageWidthOf(pages: PdfPageText[]): number {
  const counts = new Map<number, number>();
  for (const p of pages) counts.set(Math.round(p.width), (counts.get(Math.round(p.width)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 612;
}

function rowText(r: Row): string {
  return r.pieces.map((p) => p.text).join(" ");
}

function rowSize(r: Row): number {
  const chars = r.pieces.reduce((n, p) => n + p.text.length, 0);
  return r.pieces.reduce((s, p) => s + p.size * p.text.length, 0) / Math.max(1, chars);
}

// ---------------------------------------------------------------------------------------
// Rows and pieces

function rows(page: number, items: PdfTextItem[], gutter: Gutter | null): Row[] {
  if (gutter === null) return baselineGroups(items).map((g) => ({ page, y: g.y, pieces: pieces(g.items, null) }));
  // Each side of the gutter is grouped on its own, so that a formula's tall symbols in one
  // column cannot chain two lines of the other column into one row; rows of the two sides
  // (and full-width text) that share a baseline are then put side by side.
  const box = (i: PdfTextItem) => ({ x0: i.x, x1: i.x + i.width });
  const sides = [
    items.filter((i) => !crosses(box(i), gutter) && sideOf(box(i), gutter) === "left"),
    items.filter((i) => !crosses(box(i), gutter) && sideOf(box(i), gutter) === "right"),
    items.filter((i) => crosses(box(i), gutter)),
  ];
  const groups = sides.flatMap((side, s) => baselineGroups(side).map((g) => ({ ...g, sides: new Set([s]) }))).sort((a, b) => a.y - b.y);
  const merged: typeof groups = [];
  for (const g of groups) {
    const m = merged.slice(-3).find((o) => Math.abs(o.y - g.y) <= 0.35 * Math.min(o.size, g.size) && ![...g.sides].some((s) => o.sides.has(s)));
    if (m) {
      m.items.push(...g.items);
      for (const s of g.sides) m.sides.add(s);
    } else merged.push(g);
  }
  return merged.map((g) => ({ page, y: g.y, pieces: pieces(g.items, gutter) }));
}

/** Items on one baseline; superscripts and subscripts sit within half an em of theirs. */
function baselineGroups(items: PdfTextItem[]): Array<{ y: number; size: number; items: PdfTextItem[] }> {
  const sorted = [...items].sort((a, b) => a.y - b.y || a.x - b.x);
  const groups: Array<{ y: number; size: number; items: PdfTextItem[] }> = [];
  for (const it of sorted) {
    const g = groups.slice(-4).find((g) => Math.abs(g.y - it.y) <= 0.5 * Math.max(g.size, it.size));
    if (g) {
      g.items.push(it);
      if (it.size > g.size) [g.y, g.size] = [it.y, it.size];
    } else groups.push({ y: it.y, size: it.size, items: [it] });
  }
  return groups.sort((a, b) => a.y - b.y);
}

const ITALIC_FONT = /italic|oblique|-it\b|ital|cmti|cmsl|\bti\d/i;

function pieces(items: PdfTextItem[], gutter: Gutter | null): Piece[] {
  const out: Array<Piece & { weight: number; boldChars: number; italicChars: number; sizeChars: number; lastItem: { x0: number; x1: number }; leadOpen: boolean }> = [];
  for (const it of [...items].sort((a, b) => a.x - b.x)) {
    const text = cleanText(it.text);
    const n = text.trim().length;
    const italic = ITALIC_FONT.test(it.font);
    const last = out[out.length - 1];
    const gap = last ? it.x - last.x1 : Infinity;
    // Neither item crosses the gutter and they lie on its two sides (an overfull table cell
    // can reach into it, right up to the other column's text).
    const itemBox = { x0: it.x, x1: it.x + it.width };
    const acrossGutter =
      gutter !== null && last !== undefined && !crosses(last.lastItem, gutter) && !crosses(itemBox, gutter) && sideOf(last.lastItem, gutter) === "left" && sideOf(itemBox, gutter) === "right";
    if (last && !acrossGutter && gap < PIECE_GAP_EM * Math.max(last.size, it.size)) {
      const space = gap > WORD_GAP_EM * Math.min(last.size, it.size) && !/\s$/.test(last.text) && !/^\s/.test(text) ? " " : "";
      last.text += space + text;
      last.x1 = Math.max(last.x1, it.x + it.width);
      last.weight += n;
      last.boldChars += it.bold ? n : 0;
      last.italicChars += italic ? n : 0;
      last.sizeChars += it.size * n;
      last.size = Math.max(last.size, it.size);
      last.lastItem = itemBox;
      if (last.leadOpen) {
        if (it.bold) last.boldLead += space + text;
        else last.leadOpen = false;
      }
    } else {
      out.push({ text, x0: it.x, x1: it.x + it.width, y: it.y, size: it.size, bold: it.bold, italic, weight: n, boldChars: it.bold ? n : 0, italicChars: italic ? n : 0, sizeChars: it.size * n, lastItem: itemBox, boldLead: it.bold ? text : "", leadOpen: it.bold });
    }
  }
  return out
    .map((p) => ({
      text: p.text.replace(/\s+/g, " ").trim(),
      x0: p.x0,
      x1: p.x1,
      y: p.y,
      // The size most of the characters have (a superscript does not make a line larger).
      size: p.weight > 0 ? Math.round((p.sizeChars / p.weight) * 10) / 10 : p.size,
      bold: p.weight > 0 && p.boldChars >= 0.8 * p.weight,
      italic: p.weight > 0 && p.italicChars >= 0.8 * p.weight,
      boldLead: p.boldLead.replace(/\s+/g, " ").trim(),
    }))
    .filter((p) => p.text !== "");
}

/** The bold text a line starts with, across pieces ("2.1" then "Data" then regular text). */
function boldLead(ps: Piece[]): string {
  const parts: string[] = [];
  for (const p of ps) {
    if (p.boldLead !== "") parts.push(p.boldLead);
    if (p.boldLead !== p.text) break;
  }
  return parts.join(" ");
}

function line(page: number, pageHeight: number, ps: Piece[], region: Region, role: LineRole): LayoutLine {
  let text = "";
  const cellStarts: number[] = [];
  const wide = (i: number) => ps[i].x0 - ps[i - 1].x1 > CELL_GAP_EM * Math.max(ps[i].size, ps[i - 1].size);
  // In a row that has one wide gap (a table row), every gap between pieces separates cells:
  // a header's columns may stand closer than that ("Backbone  By depot").
  const tableRow = ps.some((_, i) => i > 0 && wide(i));
  ps.forEach((p, i) => {
    const cell = i === 0 || tableRow;
    if (i > 0) text += cell ? " | " : " ";
    if (cell) cellStarts.push(p.x0);
    text += p.text;
  });
  const chars = ps.reduce((n, p) => n + p.text.length, 0);
  return {
    page,
    text,
    x0: Math.min(...ps.map((p) => p.x0)),
    x1: Math.max(...ps.map((p) => p.x1)),
    y: Math.max(...ps.map((p) => p.y)),
    pageHeight,
    size: Math.round((ps.reduce((s, p) => s + p.size * p.text.length, 0) / Math.max(1, chars)) * 10) / 10,
    bold: ps.every((p) => p.bold),
    italic: ps.every((p) => p.italic),
    boldLead: boldLead(ps),
    region,
    role,
    cells: cellStarts.length,
    cellStarts,
  };
}
