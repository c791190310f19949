// Line numbers of review copies (lineno, the submission modes of NeurIPS/ICML/ICLR styles): a
// column of bare integers down the side of the text, counting up in a fixed step. Left in,
// each becomes a "cell" beside its line and turns the page into a table. A right-aligned (or
// left-aligned) column of at least MIN_RUN numbers on a page whose values, read top to bottom,
// mostly rise by one constant step is taken for line numbers; a table's column of figures
// does not count that way, and it stands among other text where line numbers stand apart.

import type { PdfPageText, PdfTextItem } from "./pdf-text";

const NUMBER = /^\s*\d{1,5}\s*$/;
const MIN_RUN = 8;
/** Share of consecutive numbers in the column that must differ by the same step. */
const STEADY_SHARE = 0.8;
/** Line numbers inside the text's span must be at most this fraction of the text size. */
const SMALLER = 0.8;

/** The items of a page that are line numbers. */
export function lineNumberItems(page: PdfPageText): Set<PdfTextItem> {
  const numbers = page.items.filter((i) => i.horizontal && NUMBER.test(i.text));
  const out = new Set<PdfTextItem>();
  if (numbers.length < MIN_RUN) return out;
  for (const edge of [(i: PdfTextItem) => i.x + i.width, (i: PdfTextItem) => i.x]) {
    const columns = new Map<number, PdfTextItem[]>();
    for (const i of numbers) {
      const k = Math.round(edge(i));
      const key = [k, k - 1, k + 1].find((c) => columns.has(c)) ?? k;
      if (!columns.has(key)) columns.set(key, []);
      columns.get(key)!.push(i);
    }
    for (const column of columns.values()) {
      if (column.length < MIN_RUN) continue;
      const sorted = [...column].sort((a, b) => a.y - b.y);
      const steps = sorted.slice(1).map((i, k) => Number(i.text) - Number(sorted[k].text));
      const counts = new Map<number, number>();
      for (const s of steps) counts.set(s, (counts.get(s) ?? 0) + 1);
      const [step, n] = [...counts].sort((a, b) => b[1] - a[1])[0];
      if (step <= 0 || step > 10 || n < STEADY_SHARE * steps.length) continue;
      // Apart from the text: in a margin, where nothing else on the page overlaps the column,
      // or set clearly smaller than the text (lineno squeezes them into a narrow gutter). A
      // table's running index has prose and headers over it, in the table's own size.
      const x0 = Math.min(...column.map((i) => i.x));
      const x1 = Math.max(...column.map((i) => i.x + i.width));
      const inColumn = new Set(column);
      const others = page.items.filter((i) => !inColumn.has(i) && i.horizontal);
      const inMargin = !others.some((i) => i.x < x1 - 0.5 && i.x + i.width > x0 + 0.5);
      const sizes = others.map((i) => i.size).sort((a, b) => a - b);
      const textSize = sizes[Math.floor(sizes.length / 2)] ?? 0;
      const smaller = column.every((i) => i.size <= SMALLER * textSize);
      if (inMargin || smaller) for (const i of column) out.add(i);
    }
  }
  return out;
}
