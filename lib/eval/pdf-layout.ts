// Text items -> lines in reading order. Items on one baseline form a row; a row's items merge
// into pieces where they nearly touch. Rows near the top or bottom edge that repeat on several
// pages (running headers, page numbers) are dropped. A two-column layout shows as a vertical
// band in the middle of the pages that no ordinary line crosses (the gutter); on such pages
// the left column is read before the right one, between any rows that span the page. Spanning
// rows above the first column line of a page are front matter (title, authors); others are
// floats (full-width tables and figures), which the section builder moves out of paragraphs.

import { cleanText } from "./text";
import type { PdfPageText, PdfTextItem } from "./pdf";

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
  region: Region;
  role: LineRole;
  /** Pieces separated by wide gaps (table cells); joined with " | " in `text`. */
  cells: number;
}

export interface LayoutStats {
  items: number;
  lines: number;
  /** Rows dropped as running headers, footers or page numbers. */
  headerFooterLines: number;
  /** Rotated or vertical items skipped (e.g. arXiv's margin stamp). */
  rotatedItems: number;
  twoColumnPages: number;
  /** The gutter found, in points from the left edge; null for single-column documents. */
  gutter: [number, number] | null;
}

interface Piece {
  text: string;
  x0: number;
  x1: number;
  y: number;
  size: number;
  bold: boolean;
}

interface Row {
  page: number;
  y: number;
  pieces: Piece[];
}

/** Items closer than this many ems are one piece; wider gaps separate pieces. */
const PIECE_GAP_EM = 0.8;
/** Pieces further apart than this many ems are table cells. */
const CELL_GAP_EM = 1.5;
/** Header and footer bands: this fraction of the page height at the top and at the bottom. */
const EDGE_BAND = 0.08;

export function layoutPages(pages: PdfPageText[]): { lines: LayoutLine[]; stats: LayoutStats } {
  const stats: LayoutStats = { items: 0, lines: 0, headerFooterLines: 0, rotatedItems: 0, twoColumnPages: 0, gutter: null };
  const rowsByPage = pages.map((p) => {
    stats.items += p.items.length;
    const flat = p.items.filter((i) => i.horizontal);
    stats.rotatedItems += p.items.length - flat.length;
    return rows(p.page, flat);
  });
  stats.headerFooterLines = dropHeadersAndFooters(pages, rowsByPage);
  const gutter = findGutter(pages, rowsByPage);
  stats.gutter = gutter;
  const lines: LayoutLine[] = [];
  pages.forEach((p, i) => {
    const twoColumn = gutter !== null && Math.abs(p.width - pageWidthOf(pages)) < 1 && pageUsesGutter(rowsByPage[i], gutter);
    if (twoColumn) stats.twoColumnPages++;
    const ordered = twoColumn ? twoColumnOrder(rowsByPage[i], gutter!, p.page === firstTextPage(pages)) : singleColumnOrder(rowsByPage[i]);
    for (const l of ordered) l.pageHeight = p.height;
    lines.push(...ordered);
  });
  stats.lines = lines.length;
  return { lines, stats };
}

function firstTextPage(pages: PdfPageText[]): number {
  return pages.find((p) => p.items.length > 0)?.page ?? 1;
}

/** The most common page width (documents rarely mix sizes; odd pages are read single-column). */
function pageWidthOf(pages: PdfPageText[]): number {
  const counts = new Map<number, number>();
  for (const p of pages) counts.set(Math.round(p.width), (counts.get(Math.round(p.width)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 612;
}

// ---------------------------------------------------------------------------------------
// Rows and pieces

function rows(page: number, items: PdfTextItem[]): Row[] {
  const sorted = [...items].sort((a, b) => a.y - b.y || a.x - b.x);
  const groups: Array<{ y: number; size: number; items: PdfTextItem[] }> = [];
  for (const it of sorted) {
    // Superscripts and subscripts sit within half an em of the baseline they belong to.
    const g = groups.slice(-4).find((g) => Math.abs(g.y - it.y) <= 0.5 * Math.max(g.size, it.size));
    if (g) {
      g.items.push(it);
      if (it.size > g.size) [g.y, g.size] = [it.y, it.size];
    } else groups.push({ y: it.y, size: it.size, items: [it] });
  }
  return groups.sort((a, b) => a.y - b.y).map((g) => ({ page, y: g.y, pieces: pieces(g.items) }));
}

function pieces(items: PdfTextItem[]): Piece[] {
  const out: Array<Piece & { weight: number; boldChars: number; sizeChars: number }> = [];
  for (const it of [...items].sort((a, b) => a.x - b.x)) {
    const text = cleanText(it.text);
    const n = text.trim().length;
    const last = out[out.length - 1];
    const gap = last ? it.x - last.x1 : Infinity;
    if (last && gap < PIECE_GAP_EM * Math.max(last.size, it.size)) {
      const space = gap > 0.15 * it.size && !/\s$/.test(last.text) && !/^\s/.test(text) ? " " : "";
      last.text += space + text;
      last.x1 = Math.max(last.x1, it.x + it.width);
      last.weight += n;
      last.boldChars += it.bold ? n : 0;
      last.sizeChars += it.size * n;
      last.size = Math.max(last.size, it.size);
    } else {
      out.push({ text, x0: it.x, x1: it.x + it.width, y: it.y, size: it.size, bold: it.bold, weight: n, boldChars: it.bold ? n : 0, sizeChars: it.size * n });
    }
  }
  return out.map((p) => ({
    text: p.text.replace(/\s+/g, " ").trim(),
    x0: p.x0,
    x1: p.x1,
    y: p.y,
    // The size most of the characters have (a superscript does not make a line larger).
    size: p.weight > 0 ? Math.round((p.sizeChars / p.weight) * 10) / 10 : p.size,
    bold: p.weight > 0 && p.boldChars >= 0.8 * p.weight,
  })).filter((p) => p.text !== "");
}

// ---------------------------------------------------------------------------------------
// Running headers, footers, page numbers

const PAGE_NUMBER = /^(page\s*)?(\d{1,4}|[ivxlcdm]{1,6})(\s*(of|\/)\s*\d{1,4})?$/i;

function rowText(r: Row): string {
  return r.pieces.map((p) => p.text).join(" ");
}

/** Removes edge rows that repeat (digits ignored) on several pages, and bare page numbers. */
function dropHeadersAndFooters(pages: PdfPageText[], rowsByPage: Row[][]): number {
  const key = (r: Row) => rowText(r).toLowerCase().replace(/\d+/g, "#").replace(/\s+/g, " ").trim();
  const atEdge = (r: Row, p: PdfPageText) => r.y < EDGE_BAND * p.height || r.y > (1 - EDGE_BAND) * p.height;
  const pagesWith = new Map<string, Set<number>>();
  pages.forEach((p, i) => {
    for (const r of rowsByPage[i]) if (atEdge(r, p)) {
      const k = key(r);
      if (!pagesWith.has(k)) pagesWith.set(k, new Set());
      pagesWith.get(k)!.add(p.page);
    }
  });
  const repeated = (k: string) => {
    const n = pagesWith.get(k)?.size ?? 0;
    return n >= 2 && n >= 0.3 * pages.length;
  };
  let dropped = 0;
  pages.forEach((p, i) => {
    rowsByPage[i] = rowsByPage[i].filter((r) => {
      const drop = atEdge(r, p) && (repeated(key(r)) || PAGE_NUMBER.test(rowText(r).trim()));
      if (drop) dropped++;
      return !drop;
    });
  });
  return dropped;
}

// ---------------------------------------------------------------------------------------
// Columns

/**
 * The gutter: the widest vertical band in the middle 40% of the page that the fewest ordinary
 * rows (one or two pieces; table rows excluded) cross, if nearly none cross it and enough text
 * lies on both sides.
 */
function findGutter(pages: PdfPageText[], rowsByPage: Row[][]): [number, number] | null {
  const width = pageWidthOf(pages);
  const cover = new Float64Array(Math.ceil(width) + 1);
  let left = 0;
  let right = 0;
  let total = 0;
  const simple: Piece[] = [];
  pages.forEach((p, i) => {
    if (Math.abs(p.width - width) >= 1) return;
    for (const r of rowsByPage[i]) if (r.pieces.length <= 2) simple.push(...r.pieces);
  });
  for (const pc of simple) {
    total++;
    for (let x = Math.max(0, Math.floor(pc.x0)); x < Math.min(cover.length, Math.ceil(pc.x1)); x++) cover[x]++;
  }
  if (total < 10) return null;
  const lo = Math.floor(0.3 * width);
  const hi = Math.ceil(0.7 * width);
  let min = Infinity;
  for (let x = lo; x < hi; x++) min = Math.min(min, cover[x]);
  if (min > 0.05 * total) return null;
  let best: [number, number] | null = null;
  for (let x = lo; x < hi; ) {
    if (cover[x] !== min) {
      x++;
      continue;
    }
    let end = x;
    while (end < hi && cover[end] === min) end++;
    if (!best || end - x > best[1] - best[0]) best = [x, end];
    x = end;
  }
  if (!best || best[1] - best[0] < 3) return null;
  for (const pc of simple) {
    if (pc.x1 <= best[0] + 1) left++;
    else if (pc.x0 >= best[1] - 1) right++;
  }
  return left >= 0.1 * total && right >= 0.1 * total ? best : null;
}

function crosses(p: Piece, g: [number, number]): boolean {
  return p.x0 < g[1] - 1 && p.x1 > g[0] + 1;
}

function spans(r: Row, g: [number, number]): boolean {
  if (r.pieces.some((p) => crosses(p, g))) return true;
  // Three or more cells with some on each side: a row of a full-width table.
  return r.pieces.length >= 3 && r.pieces.some((p) => p.x1 <= g[0] + 1) && r.pieces.some((p) => p.x0 >= g[1] - 1);
}

/** A page reads in two columns unless most of its rows span the gutter. */
function pageUsesGutter(rs: Row[], g: [number, number]): boolean {
  if (rs.length === 0) return false;
  return rs.filter((r) => spans(r, g)).length < 0.5 * rs.length;
}

function line(page: number, ps: Piece[], region: Region, role: LineRole): LayoutLine {
  let text = "";
  ps.forEach((p, i) => {
    if (i > 0) text += p.x0 - ps[i - 1].x1 > CELL_GAP_EM * Math.max(p.size, ps[i - 1].size) ? " | " : " ";
    text += p.text;
  });
  const chars = ps.reduce((n, p) => n + p.text.length, 0);
  return {
    page,
    text,
    x0: Math.min(...ps.map((p) => p.x0)),
    x1: Math.max(...ps.map((p) => p.x1)),
    y: Math.max(...ps.map((p) => p.y)),
    pageHeight: 0,
    size: Math.round((ps.reduce((s, p) => s + p.size * p.text.length, 0) / Math.max(1, chars)) * 10) / 10,
    bold: ps.every((p) => p.bold),
    region,
    role,
    cells: text.split(" | ").length,
  };
}

function singleColumnOrder(rs: Row[]): LayoutLine[] {
  return rs.map((r) => line(r.page, r.pieces, "single", "body"));
}

/**
 * Two-column reading order: the page is cut at rows that span the gutter; within each band,
 * the left column, then the right column.
 */
function twoColumnOrder(rs: Row[], g: [number, number], firstPage: boolean): LayoutLine[] {
  const out: LayoutLine[] = [];
  let left: LayoutLine[] = [];
  let right: LayoutLine[] = [];
  let seenColumn = false;
  const flush = () => {
    out.push(...left, ...right);
    left = [];
    right = [];
  };
  for (const r of rs) {
    if (spans(r, g)) {
      flush();
      out.push(line(r.page, r.pieces, "full", firstPage && !seenColumn ? "front" : "float"));
      continue;
    }
    seenColumn = true;
    const l = r.pieces.filter((p) => p.x1 <= g[0] + 1);
    const rr = r.pieces.filter((p) => p.x0 >= g[1] - 1);
    if (l.length) left.push(line(r.page, l, "left", "body"));
    if (rr.length) right.push(line(r.page, rr, "right", "body"));
  }
  flush();
  return out;
}
