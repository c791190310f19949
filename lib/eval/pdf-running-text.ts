// Running heads, running feet and page numbers: rows at the top or bottom edge of a page that
// belong to the page, not to the text. A row goes when it repeats (digits ignored) at the edge
// of several pages, when it is a bare page number, or, for a head printed on one page only (a
// class that leaves the first page plain), when it is the page's first row, set no larger than
// the body text and apart from the text below by much more than a line's leading.

import type { PdfPageText } from "./pdf-text";

/** The part of a row these rules look at. */
export interface EdgeRow {
  y: number;
  size: number;
  text: string;
}

/** A head on one page only must lie in this fraction of the page height at the top (acmart sets its head at 8.5%). */
const EDGE_BAND = 0.1;
/** Text repeated on several pages is running text within this wider band (12 pt type with 1.5 in margins: 11%). */
const REPEAT_BAND = 0.15;
/** A one-page running head stands this many of its own ems above the first line of text. */
const HEAD_SEPARATION_EM = 2.2;

const PAGE_NUMBER = /^(page\s*)?(\d{1,4}|[ivxlcdm]{1,6})(\s*(of|\/)\s*\d{1,4})?$/i;

function key(text: string): string {
  return text.toLowerCase().replace(/\d+/g, "#").replace(/\s+/g, " ").trim();
}

/**
 * Which rows of each page are running text. `rowsByPage[i]` are page i's rows from top to
 * bottom; `bodySize` is the document's body font size.
 */
export function runningTextRows<R extends EdgeRow>(pages: PdfPageText[], rowsByPage: R[][], bodySize: number): Set<R> {
  const atTop = (r: R, p: PdfPageText, band = EDGE_BAND) => r.y < band * p.height;
  const atBottom = (r: R, p: PdfPageText, band = EDGE_BAND) => r.y > (1 - band) * p.height;
  const pagesWith = new Map<string, Set<number>>();
  pages.forEach((p, i) => {
    for (const r of rowsByPage[i]) {
      if (!atTop(r, p, REPEAT_BAND) && !atBottom(r, p, REPEAT_BAND)) continue;
      const k = key(r.text);
      if (!pagesWith.has(k)) pagesWith.set(k, new Set());
      pagesWith.get(k)!.add(p.page);
    }
  });
  const repeated = (k: string) => {
    const n = pagesWith.get(k)?.size ?? 0;
    return n >= 2 && n >= 0.3 * pages.length;
  };
  const out = new Set<R>();
  pages.forEach((p, i) => {
    const rows = rowsByPage[i];
    rows.forEach((r, j) => {
      if (!atTop(r, p, REPEAT_BAND) && !atBottom(r, p, REPEAT_BAND)) return;
      if (repeated(key(r.text)) || (PAGE_NUMBER.test(r.text.trim()) && (atTop(r, p) || atBottom(r, p)))) {
        out.add(r);
        return;
      }
      // A head on this page only: the first row, small, well above the text.
      if (j === 0 && atTop(r, p) && rows.length > 1 && r.size <= bodySize + 0.5) {
        const next = rows[1];
        if (next.y - r.y > HEAD_SEPARATION_EM * Math.max(r.size, next.size)) out.add(r);
      }
    });
  });
  return out;
}
