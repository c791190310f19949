// Section headings from the document's own signals. A heading is a short line of its own set
// apart from the body text: bolder, larger, italic or in capitals. Numbered headings ("3 Method",
// "3.1 Data", "A.2 Proofs", IEEE's "IV. RESULTS" with "A. Setup" below it) must count forwards,
// so a numbered list item is not a section; usual names ("Abstract", "References") need no
// number. A document whose headings carry no numbers at all (a web page, a report) gets its
// headings from size and weight alone, levels by size.

import type { LayoutLine } from "./pdf-layout";

export type SectionKind = "front" | "abstract" | "body" | "references" | "appendix";

export interface Heading {
  title: string;
  number: string | null;
  level: number;
  kind: SectionKind;
}

export const NAMED =
  /^(abstract|introduction|related work|background|preliminaries|method|methods|methodology|approach|model|experiments?|experimental (setup|results)|results|evaluation|analysis|discussion|conclusions?|conclusions? and future work|future work|limitations|broader impacts?|ethics statement|acknowledge?ments?|references|bibliography|appendix|appendices|supplementary materials?|keywords|index terms|ccs concepts)$/i;
export const NUMBERED = /^((?:\d{1,2}|[A-Z])(?:\.\d{1,2}){0,3})\.?\s+(\p{Lu}.*)$/u;
const ROMAN_NUMBERED = /^([IVX]{1,5})\.\s+(\p{Lu}.*)$/u;
const APPENDIX = /^appendix\s+([A-Z])\b[:.]?\s*(.*)$/i;

const ROMAN_VALUES: Record<string, number> = { I: 1, V: 5, X: 10 };
function romanValue(s: string): number {
  let total = 0;
  for (let i = 0; i < s.length; i++) {
    const v = ROMAN_VALUES[s[i]];
    total += i + 1 < s.length && ROMAN_VALUES[s[i + 1]] > v ? -v : v;
  }
  return total;
}

function allCaps(text: string): boolean {
  return /\p{Lu}{3}/u.test(text) && !/\p{Ll}/u.test(text);
}

/** Headings carry at most this many words. */
const MAX_HEADING_WORDS = 14;
/** Unnumbered headings in an unnumbered document are shorter still. */
const MAX_PLAIN_HEADING_WORDS = 10;

export class HeadingDetector {
  private lastTop = 0;
  private lastLetter: number | null = null;
  private lastRoman = 0;
  private lastRomanLetter = 64;
  private afterReferences = false;
  /** Sizes of unnumbered headings in an unnumbered document, largest first (their levels). */
  private readonly plainSizes: number[];

  /**
   * `numberedDocument`: whether the document numbers its headings (then an unnumbered line
   * is a heading only under a usual name).
   */
  constructor(private readonly bodySize: number, private readonly numberedDocument: boolean, lines: LayoutLine[]) {
    this.plainSizes = numberedDocument
      ? []
      : [...new Set(lines.filter((l) => this.plainCandidate(l)).map((l) => Math.round(l.size * 2) / 2))].sort((a, b) => b - a);
  }

  /** Whether a document numbers its headings: two or more emphasized numbered lines. */
  static numbers(lines: LayoutLine[], bodySize: number): boolean {
    const emphasized = (l: LayoutLine) => l.bold || l.italic || l.size >= bodySize + 0.9 || allCaps(l.text);
    return lines.filter((l) => l.role !== "float" && emphasized(l) && (NUMBERED.test(l.text) || ROMAN_NUMBERED.test(l.text))).length >= 2;
  }

  private plainCandidate(l: LayoutLine): boolean {
    const text = l.text.trim();
    return (
      l.role !== "float" && l.cells === 1 && (l.size >= this.bodySize + 0.9 || (l.bold && l.size >= this.bodySize - 0.5)) &&
      text.split(/\s+/).length <= MAX_PLAIN_HEADING_WORDS && /^\p{Lu}/u.test(text) && !/[.,;:]$/.test(text)
    );
  }

  /**
   * `centered`: the line stands short and centred in its block, which marks a usual section
   * name as a heading when the fonts say nothing (bitmap Type3 fonts carry no names).
   */
  detect(line: LayoutLine, centered = false): Heading | null {
    const text = line.text.trim();
    if (line.role === "float" || line.cells > 2 || text.length > 100 || text.split(/\s+/).length > MAX_HEADING_WORDS) return null;
    const larger = line.size >= this.bodySize + 0.9;
    const emphasized = line.bold || larger || allCaps(text);
    const name = text.replace(/[.:]$/, "");
    if (NAMED.test(name) && (emphasized || line.italic || (centered && !/[.:]$/.test(text)))) {
      const lower = name.toLowerCase();
      const kind: SectionKind = /^(references|bibliography)$/.test(lower)
        ? "references"
        : lower === "abstract" || /^(keywords|index terms|ccs concepts)$/.test(lower)
          ? "abstract"
          : /^(appendix|appendices|supplementary)/.test(lower) || this.afterReferences
            ? "appendix"
            : "body";
      return this.accept({ title: text.replace(/[.:]$/, ""), number: null, level: 1, kind });
    }
    const roman = ROMAN_NUMBERED.exec(text);
    if (roman && (emphasized || allCaps(roman[2])) && !/[.,;:]$/.test(roman[2])) {
      const value = romanValue(roman[1]);
      if (value === this.lastRoman + 1) {
        this.lastRoman = value;
        this.lastRomanLetter = 64;
        return this.accept({ title: text, number: roman[1], level: 1, kind: this.afterReferences ? "appendix" : "body" });
      }
    }
    if (!emphasized && !line.italic) return this.plain(line);
    const app = APPENDIX.exec(text);
    if (app && emphasized) {
      this.lastLetter = app[1].toUpperCase().charCodeAt(0);
      return this.accept({ title: text, number: app[1].toUpperCase(), level: 1, kind: "appendix" });
    }
    const m = NUMBERED.exec(text);
    if (!m || /[.,;:]$/.test(m[2]) || !/\p{L}{3}/u.test(m[2])) return this.plain(line);
    const number = m[1];
    const parts = number.split(".");
    if (/^[A-Z]$/.test(parts[0])) {
      // IEEE-style subsections: "A. Setup" under "II. METHOD", lettered afresh in each section.
      if (this.lastRoman > 0 && parts.length === 1 && !this.afterReferences) {
        const code = parts[0].charCodeAt(0);
        if (code !== this.lastRomanLetter + 1) return null;
        this.lastRomanLetter = code;
        return this.accept({ title: text, number: `${this.lastRoman}.${parts[0]}`, level: 2, kind: "body" });
      }
      if (!emphasized) return null;
      // Appendix letters run A, B, C, ...: "X Desktop Group" on a title page is no appendix.
      const code = parts[0].charCodeAt(0);
      const inOrder = parts.length === 1 ? code === (this.lastLetter ?? 64) + 1 : code === this.lastLetter;
      if (!inOrder || m[2].split(/\s+/).length > 8) return null;
      this.lastLetter = code;
      return this.accept({ title: text, number, level: parts.length, kind: "appendix" });
    }
    if (!emphasized) return null;
    const top = Number(parts[0]);
    // Numbers go forwards: "3.2" after "3.1", "4" after "3"; a jump of more than 2 is a list.
    if (!this.afterReferences && (top < this.lastTop || top > this.lastTop + 2)) return null;
    if (top === this.lastTop && parts.length === 1) return null;
    this.lastTop = top;
    return this.accept({ title: text, number, level: parts.length, kind: this.afterReferences ? "appendix" : "body" });
  }

  /** An unnumbered heading of an unnumbered document: larger or bold, short, on its own. */
  private plain(line: LayoutLine): Heading | null {
    if (this.numberedDocument || !this.plainCandidate(line)) return null;
    const level = this.plainSizes.indexOf(Math.round(line.size * 2) / 2) + 1;
    return this.accept({ title: line.text.trim(), number: null, level: Math.max(1, level), kind: this.afterReferences ? "appendix" : "body" });
  }

  private accept(h: Heading): Heading {
    if (h.kind === "references") this.afterReferences = true;
    return h;
  }
}
