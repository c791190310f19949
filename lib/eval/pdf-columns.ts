// Column structure from geometry alone. The gutter of a two-column document is a vertical band
// in the middle of the page that column lines end before and start after, and that only
// full-width text (title block, a spanning abstract, figure*/table* floats) crosses. A page is
// then cut across at its full-width rows into bands (an XY-cut whose vertical cut is the
// gutter): full-width bands read as they stand, column bands read the left column top to
// bottom, then the right one. Lines of the two columns are never joined, even on one baseline.

/** A run of text on one baseline, as the layout sees it. */
export interface Piece {
  text: string;
  x0: number;
  x1: number;
  y: number;
  size: number;
  bold: boolean;
  italic: boolean;
  /** The piece's leading text set in bold ("3.2 Setup" of a run-in heading); "" if it starts in regular type. */
  boldLead: string;
}

export interface Row {
  page: number;
  y: number;
  pieces: Piece[];
}

export type Gutter = [number, number];

/** Narrowest gutter taken for one: about half an em of 10 pt type. */
const MIN_GUTTER_PT = 5;
/** At most this share of the pieces may cross the gutter (full-width text). */
const MAX_CROSSING_SHARE = 0.3;
/** A column line is at least this share of the page width. */
const MIN_COLUMN_LINE = 0.25;
/** Each column holds at least this share of the pieces, in column-wide lines. */
const MIN_COLUMN_SHARE = 0.1;

/**
 * The gutter: in the middle 40% of the page, the widest band crossed by the fewest pieces,
 * if few cross it and both sides hold a fair share of the text. Null for one-column documents.
 */
export function findGutter(rows: Row[], width: number): Gutter | null {
  const all = rows.flatMap((r) => r.pieces);
  if (all.length < 10) return null;
  const cover = new Float64Array(Math.ceil(width) + 1);
  for (const p of all) for (let x = Math.max(0, Math.floor(p.x0)); x < Math.min(cover.length, Math.ceil(p.x1)); x++) cover[x]++;
  const lo = Math.floor(0.3 * width);
  const hi = Math.ceil(0.7 * width);
  let min = Infinity;
  for (let x = lo; x < hi; x++) min = Math.min(min, cover[x]);
  if (min > MAX_CROSSING_SHARE * all.length) return null;
  // Full-width lines end and start at different places, so the band's floor is uneven:
  // take the widest run within a few pieces of the minimum.
  const floor = min + Math.max(2, 0.03 * all.length);
  let best: Gutter | null = null;
  for (let x = lo; x < hi; ) {
    if (cover[x] > floor) {
      x++;
      continue;
    }
    let end = x;
    while (end < hi && cover[end] <= floor) end++;
    if (!best || end - x > best[1] - best[0]) best = [x, end];
    x = end;
  }
  if (!best || best[1] - best[0] < MIN_GUTTER_PT) return null;
  // Columns are filled with long lines; the cells of a table in one-column text are short.
  const long = (p: Piece) => p.x1 - p.x0 >= MIN_COLUMN_LINE * width;
  const left = all.filter((p) => p.x1 <= best![0] + 1 && long(p)).length;
  const right = all.filter((p) => p.x0 >= best![1] - 1 && long(p)).length;
  return left >= MIN_COLUMN_SHARE * all.length && right >= MIN_COLUMN_SHARE * all.length ? best : null;
}

export function crosses(p: { x0: number; x1: number }, g: Gutter): boolean {
  return p.x0 < g[0] - 1 && p.x1 > g[1] + 1;
}

/** The column a piece that does not cross the gutter belongs to; one that reaches into it (an overfull table) goes by its middle. */
export function sideOf(p: { x0: number; x1: number }, g: Gutter): "left" | "right" {
  return (p.x0 + p.x1) / 2 < (g[0] + g[1]) / 2 ? "left" : "right";
}

/** Where the columns' lines start and end on a page: the most common edges either side of the gutter. */
export interface ColumnEdges {
  leftStart: number;
  leftEnd: number;
  rightStart: number;
  rightEnd: number;
}

function mode(xs: number[]): number {
  const c = new Map<number, number>();
  for (const x of xs) c.set(Math.round(x), (c.get(Math.round(x)) ?? 0) + 1);
  return [...c].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] ?? NaN;
}

export function columnEdges(rows: Row[], g: Gutter): ColumnEdges {
  const ps = rows.flatMap((r) => r.pieces);
  const left = ps.filter((p) => p.x1 <= g[0] + 1);
  const right = ps.filter((p) => p.x0 >= g[1] - 1);
  return { leftStart: mode(left.map((p) => p.x0)), leftEnd: mode(left.map((p) => p.x1)), rightStart: mode(right.map((p) => p.x0)), rightEnd: mode(right.map((p) => p.x1)) };
}

/**
 * A row is full width when text runs across the gutter, or when it is a row of a full-width
 * table: cells on both sides, none of which sits on a column edge the way column text does
 * (a left line ending at the column's right edge beside a right-column heading is two columns).
 */
export function spansGutter(r: Row, g: Gutter, edges: ColumnEdges, em: number): boolean {
  return r.pieces.some((p) => crosses(p, g)) || tableAcrossGutter(r, g, edges, em);
}

/**
 * A row of a full-width table: cells on both sides of the gutter that do not sit the way
 * column text does. Column text starts at its column's left edge (a paragraph indent or a
 * heading number a little after it) or ends at its right edge; a left line ending at the
 * column's edge beside a right-column heading is two columns, and so is a left-column heading
 * beside an indented right-column line.
 */
function tableAcrossGutter(r: Row, g: Gutter, edges: ColumnEdges, em: number): boolean {
  if (r.pieces.some((p) => crosses(p, g))) return false;
  const left = r.pieces.filter((p) => sideOf(p, g) === "left");
  const right = r.pieces.filter((p) => sideOf(p, g) === "right");
  if (left.length === 0 || right.length === 0) return false;
  // Cells on both sides: a table across the page whose column gap happens to fall on the gutter.
  if (left.length >= 2 && right.length >= 2) return true;
  const near = (a: number, b: number) => Math.abs(a - b) < 0.6 * em;
  const leftLike = near(left[0].x0, edges.leftStart) || near(left[left.length - 1].x1, edges.leftEnd);
  const rightLike = (right[0].x0 > edges.rightStart - 0.6 * em && right[0].x0 < edges.rightStart + 2.5 * em) || near(right[right.length - 1].x1, edges.rightEnd);
  // Two pieces, one a side, neither on a column edge: centred blocks side by side (an author grid).
  if (r.pieces.length === 2) return !leftLike && !rightLike;
  return !(leftLike && rightLike);
}

export interface OrderedRow {
  row: Row;
  pieces: Piece[];
  region: "single" | "left" | "right" | "full";
  /** Full-width rows above the page's first column row. */
  beforeColumns: boolean;
}

/** Column bands this short between full-width rows are part of the full-width block (a centred affiliation line). */
const MAX_STRAY_ROWS = 2;

/** A page's rows in reading order: bands cut at full-width rows, each column band left then right. */
export function columnOrder(rows: Row[], g: Gutter, edges: ColumnEdges, em: number): OrderedRow[] {
  const full = rows.map((r) => spansGutter(r, g, edges, em));
  // A lone table-like row between column rows is column text that happens to line up (a
  // heading beside a line of the other column); a real table has several rows.
  rows.forEach((r, i) => {
    if (full[i] && tableAcrossGutter(r, g, edges, em) && (i === 0 || !full[i - 1]) && (i + 1 === rows.length || !full[i + 1])) full[i] = false;
  });
  for (let i = 0; i < rows.length; ) {
    if (full[i]) {
      i++;
      continue;
    }
    let end = i;
    while (end < rows.length && !full[end]) end++;
    const fullAbove = i === 0 || full[i - 1];
    const fullBelow = end < rows.length && full[end];
    if (end - i <= MAX_STRAY_ROWS && fullAbove && fullBelow) full.fill(true, i, end);
    i = end;
  }
  const out: OrderedRow[] = [];
  let left: OrderedRow[] = [];
  let right: OrderedRow[] = [];
  let seenColumn = false;
  const flush = () => {
    out.push(...left, ...right);
    left = [];
    right = [];
  };
  rows.forEach((r, i) => {
    if (full[i]) {
      flush();
      out.push({ row: r, pieces: r.pieces, region: "full", beforeColumns: !seenColumn });
      return;
    }
    seenColumn = true;
    const l = r.pieces.filter((p) => sideOf(p, g) === "left");
    const rr = r.pieces.filter((p) => sideOf(p, g) === "right");
    if (l.length) left.push({ row: r, pieces: l, region: "left", beforeColumns: false });
    if (rr.length) right.push({ row: r, pieces: rr, region: "right", beforeColumns: false });
  });
  flush();
  return out;
}

/** A page reads in two columns unless most of its rows span the gutter. */
export function pageUsesGutter(rows: Row[], g: Gutter, edges: ColumnEdges, em: number): boolean {
  if (rows.length === 0) return false;
  return rows.filter((r) => spansGutter(r, g, edges, em)).length < 0.6 * rows.length;
}
