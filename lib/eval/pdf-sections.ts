// Lines in reading order -> title, sections and paragraphs. Headings are lines set in bold or in
// a larger font that are numbered ("3 Experiments", "2.1 Compression", "A Prompt Templates") or
// carry a usual section name ("Abstract", "References", "Appendix B ..."); numbers must not go
// backwards, so a bold list item is not a section. Paragraphs break at indents, vertical gaps,
// short last lines and size changes; words hyphenated at line ends are joined again. Full-width
// floats (tables) and footnotes become paragraphs of their own after the paragraph they cut.

import { joinLines, wordSet } from "./text";
import type { LayoutLine } from "./pdf-layout";

export type SectionKind = "front" | "abstract" | "body" | "references" | "appendix";

export interface Paragraph {
  text: string;
  /** The page the paragraph starts on. */
  page: number;
  /** [offset in text, page] where the paragraph continues on another page. */
  pageBreaks?: Array<[number, number]>;
  /** A full-width table or figure text moved out of the running text. */
  float?: boolean;
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

const NAMED =
  /^(abstract|introduction|related work|background|preliminaries|method|methods|methodology|approach|model|experiments?|experimental (setup|results)|results|evaluation|analysis|discussion|conclusions?|conclusions? and future work|future work|limitations|broader impacts?|ethics statement|acknowledge?ments?|references|bibliography|appendix|appendices|supplementary materials?)$/i;
const NUMBERED = /^((?:\d{1,2}|[A-Z])(?:\.\d{1,2}){0,3})\.?\s+(\p{Lu}.*)$/u;
const APPENDIX = /^appendix\s+([A-Z])\b[:.]?\s*(.*)$/i;

interface Heading {
  title: string;
  number: string | null;
  level: number;
  kind: SectionKind;
}

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

class HeadingDetector {
  private lastTop = 0;
  private lastLetter: number | null = null;
  private afterReferences = false;

  constructor(private readonly bodySize: number) {}

  detect(line: LayoutLine): Heading | null {
    const text = line.text.trim();
    if (line.role === "float" || line.cells > 1 || text.length > 100 || text.split(/\s+/).length > 14) return null;
    const emphasized = line.bold || line.size >= this.bodySize + 0.9;
    const allCaps = /\p{Lu}{3}/u.test(text) && !/\p{Ll}/u.test(text);
    const name = text.replace(/[.:]$/, "");
    if (NAMED.test(name) && (emphasized || allCaps)) {
      const lower = name.toLowerCase();
      const kind: SectionKind = /^(references|bibliography)$/.test(lower)
        ? "references"
        : lower === "abstract"
          ? "abstract"
          : /^(appendix|appendices|supplementary)/.test(lower) || this.afterReferences
            ? "appendix"
            : "body";
      return this.accept({ title: text.replace(/[.:]$/, ""), number: null, level: 1, kind });
    }
    if (!emphasized) return null;
    const app = APPENDIX.exec(text);
    if (app) {
      this.lastLetter = app[1].toUpperCase().charCodeAt(0);
      return this.accept({ title: text, number: app[1].toUpperCase(), level: 1, kind: "appendix" });
    }
    const m = NUMBERED.exec(text);
    if (!m || /[.,;:]$/.test(m[2]) || !/\p{L}{3}/u.test(m[2])) return null;
    const number = m[1];
    const parts = number.split(".");
    if (/^[A-Z]$/.test(parts[0])) {
      // Appendix letters run A, B, C, ...: "X Desktop Group" on a title page is no appendix.
      const code = parts[0].charCodeAt(0);
      const inOrder = parts.length === 1 ? code === (this.lastLetter ?? 64) + 1 : code === this.lastLetter;
      if (!inOrder || m[2].split(/\s+/).length > 8) return null;
      this.lastLetter = code;
      return this.accept({ title: text, number, level: parts.length, kind: "appendix" });
    }
    const top = Number(parts[0]);
    // Numbers go forwards: "3.2" after "3.1", "4" after "3"; a jump of more than 2 is a list.
    if (!this.afterReferences && (top < this.lastTop || top > this.lastTop + 2)) return null;
    if (top === this.lastTop && parts.length === 1) return null;
    this.lastTop = top;
    return this.accept({ title: text, number, level: parts.length, kind: this.afterReferences ? "appendix" : "body" });
  }

  private accept(h: Heading): Heading {
    if (h.kind === "references") this.afterReferences = true;
    return h;
  }
}

/** Where columns start and end on each page: the most common left and right edges. */
function columnEdges(lines: LayoutLine[]): Map<string, { left: number; right: number }> {
  const groups = new Map<string, LayoutLine[]>();
  for (const l of lines) {
    const k = `${l.page}:${l.region}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(l);
  }
  const mode = (xs: number[]) => {
    const c = new Map<number, number>();
    for (const x of xs) c.set(Math.round(x), (c.get(Math.round(x)) ?? 0) + 1);
    return [...c].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0];
  };
  const out = new Map<string, { left: number; right: number }>();
  for (const [k, ls] of groups) out.set(k, { left: mode(ls.map((l) => l.x0)), right: mode(ls.map((l) => l.x1)) });
  return out;
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

export function buildSections(lines: LayoutLine[]): { title: string; sections: Section[]; stats: SectionStats } {
  const bodySize = bodyFontSize(lines);
  const edges = columnEdges(lines);
  const leading = leadingRatio(lines);
  const vocabulary = wordSet(lines.map((l) => l.text));
  const stats: SectionStats = { bodyFontSize: bodySize, headings: 0, dehyphenated: 0, floats: 0 };
  const detector = new HeadingDetector(bodySize);

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
  const title = [...titleLines].map((l) => l.text).join(" ");

  const sections: Section[] = [];
  let current = newSection(0, { title: FRONT_MATTER, number: null, level: 0, kind: "front" }, [], firstPage);
  const stack: Array<{ level: number; title: string }> = [];
  let para: { text: string; page: number; pageBreaks: Array<[number, number]>; last: LayoutLine; lastPage: number } | null = null;
  let floats: LayoutLine[] = [];
  let previousHeading: { line: LayoutLine; section: Section } | null = null;

  const endParagraph = () => {
    if (para) {
      current.paragraphs.push({ text: para.text, page: para.page, ...(para.pageBreaks.length ? { pageBreaks: para.pageBreaks } : {}) });
      para = null;
    }
    if (floats.length) {
      let text = "";
      floats.forEach((l, i) => {
        if (i === 0) text = l.text;
        else if (l.cells > 1 || floats[i - 1].cells > 1) text += "\n" + l.text;
        else text = joinLines(text, l.text, vocabulary).text;
      });
      current.paragraphs.push({ text, page: floats[0].page, float: true });
      touch(current, floats[floats.length - 1].page);
      stats.floats++;
      floats = [];
    }
  };

  for (const l of lines) {
    if (titleLines.has(l)) continue;
    // Floats, and footnotes (small text low on the page), must not cut the running paragraph.
    if (l.role === "float" || (l.size <= bodySize - 1.5 && l.y > 0.7 * l.pageHeight && current.kind !== "references")) {
      floats.push(l);
      continue;
    }
    // A heading that wraps: its second line follows closely in the same style.
    if (previousHeading && continuesHeading(previousHeading.line, l)) {
      previousHeading.section.title += " " + l.text;
      previousHeading.section.path[previousHeading.section.path.length - 1] = previousHeading.section.title;
      previousHeading.line = l;
      continue;
    }
    previousHeading = null;
    const h = detector.detect(l);
    if (h) {
      endParagraph();
      finish(sections, current);
      while (stack.length && stack[stack.length - 1].level >= h.level) stack.pop();
      stack.push({ level: h.level, title: h.title });
      current = newSection(sections.length, h, stack.map((s) => s.title), l.page);
      stats.headings++;
      previousHeading = { line: l, section: current };
      continue;
    }
    touch(current, l.page);
    if (para && !breaksParagraph(para.last, l, current.kind)) {
      const before = para.text.length;
      const j = joinLines(para.text, l.text, vocabulary);
      if (j.dehyphenated) stats.dehyphenated++;
      para.text = j.text;
      if (l.page !== para.lastPage) {
        para.pageBreaks.push([Math.min(before, para.text.length), l.page]);
        para.lastPage = l.page;
      }
      para.last = l;
      continue;
    }
    endParagraph();
    para = { text: l.text, page: l.page, pageBreaks: [], last: l, lastPage: l.page };
  }
  endParagraph();
  finish(sections, current);
  return { title, sections, stats };

  function breaksParagraph(prev: LayoutLine, cur: LayoutLine, kind: SectionKind): boolean {
    const e = edges.get(`${cur.page}:${cur.region}`)!;
    const pe = edges.get(`${prev.page}:${prev.region}`)!;
    const indented = cur.x0 - e.left > 0.6 * cur.size;
    const sameColumn = prev.page === cur.page && prev.region === cur.region;
    const gap = sameColumn && cur.y - prev.y > (leading + 0.45) * prev.size;
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

  function continuesHeading(h: LayoutLine, l: LayoutLine): boolean {
    return (
      l.page === h.page && l.region === h.region && l.bold === h.bold && Math.abs(l.size - h.size) < 0.5 &&
      l.y - h.y < (leading + 0.3) * h.size && l.y > h.y && (h.bold || h.size > bodySize + 0.9) &&
      !NUMBERED.test(l.text) && l.text.split(/\s+/).length <= 8 && !/[.]$/.test(l.text)
    );
  }
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
