// How an extraction looks, and warnings when its structure is probably wrong, so that a bad
// extraction is reported at `clara-eval extract` instead of silently spoiling an evaluation:
// one section holding most of the text, a paper that refers to its numbered sections but has
// no numbered headings (or skips numbers), text before the first heading, and many tiny lines
// or paragraphs (columns or tables read as prose).

import type { ExtractedPdf } from "./pdf";
import { SHORT_LINE_CHARS } from "./pdf-layout";

export interface SectionSummary {
  title: string;
  kind: string;
  pages: [number, number];
  paragraphs: number;
  characters: number;
}

export interface ExtractionQuality {
  sections: SectionSummary[];
  paragraphs: number;
  characters: number;
  warnings: string[];
}

/** A section with more than this share of a long document's text is suspicious. */
const DOMINANT_SHARE = 0.6;
/** Documents shorter than this are too short to judge by shares. */
const JUDGE_FROM_CHARS = 4000;
const SHORT_LINE_SHARE = 0.3;
const SHORT_PARAGRAPH_WORDS = 5;
const SHORT_PARAGRAPH_SHARE = 0.25;

/** Cross-references to numbered sections: "Section 3", "Sec. 2.1", "Sections 2 and 3", "§4", "Appendix B". */
const SECTION_REFERENCE = /\b(sections?|sec\.)\s+\d+(\.\d+)*\b|§\s?\d|\bappendix\s+[A-H]\b/i;

export function extractionQuality(doc: ExtractedPdf): ExtractionQuality {
  const sections = doc.sections.map((s) => ({
    title: s.title,
    kind: s.kind,
    pages: s.pages,
    paragraphs: s.paragraphs.length,
    characters: s.paragraphs.reduce((n, p) => n + p.text.length, 0),
  }));
  const characters = sections.reduce((n, s) => n + s.characters, 0);
  const paragraphs = sections.reduce((n, s) => n + s.paragraphs, 0);
  const warnings: string[] = [];
  const pct = (x: number) => `${Math.round(100 * x)}%`;

  if (characters >= JUDGE_FROM_CHARS) {
    const biggest = [...sections].sort((a, b) => b.characters - a.characters)[0];
    if (biggest && biggest.characters > DOMINANT_SHARE * characters) {
      warnings.push(
        biggest.kind === "front"
          ? `${pct(biggest.characters / characters)} of the text comes before the first heading found: the headings were probably not recognised`
          : `section "${biggest.title}" holds ${pct(biggest.characters / characters)} of the text: headings after it were probably missed`,
      );
    }
  }

  const body = doc.sections.filter((s) => s.kind !== "front" && s.kind !== "references");
  const allText = doc.sections.flatMap((s) => s.paragraphs.map((p) => p.text)).join("\n");
  const numbered = body.filter((s) => s.number !== null);
  if (numbered.length === 0 && SECTION_REFERENCE.test(allText)) {
    const ref = SECTION_REFERENCE.exec(allText)![0];
    warnings.push(`the text refers to numbered sections ("${ref}") but no numbered heading was found`);
  }
  const skipped = missingNumbers(numbered.map((s) => s.number!));
  if (skipped.length) {
    const shown = skipped.length > 6 ? [...skipped.slice(0, 6), "..."] : skipped;
    warnings.push(`numbered headings skip section${skipped.length > 1 ? "s" : ""} ${shown.join(", ")}: ${skipped.length > 1 ? "they were not recognised as headings" : "it was not recognised as a heading"}`);
  }

  const { lines, shortLines } = doc.stats;
  if (lines >= 20 && shortLines > SHORT_LINE_SHARE * lines) {
    warnings.push(`${shortLines} of ${lines} lines have fewer than ${SHORT_LINE_CHARS} characters: columns, tables or formulas may have been read as broken text`);
  }
  const prose = doc.sections.flatMap((s) => s.paragraphs.filter((p) => !p.float));
  const tiny = prose.filter((p) => p.text.split(/\s+/).length < SHORT_PARAGRAPH_WORDS).length;
  if (prose.length >= 8 && tiny > SHORT_PARAGRAPH_SHARE * prose.length) {
    warnings.push(`${tiny} of ${prose.length} paragraphs have fewer than ${SHORT_PARAGRAPH_WORDS} words: lines were probably not joined into paragraphs`);
  }
  return { sections, paragraphs, characters, warnings };
}

/**
 * Section numbers that the numbers found imply but that are not among them: sections count
 * from 1, "3.2" implies "3" and "3.1". Appendix letters and roman numerals are not checked.
 */
function missingNumbers(numbers: string[]): string[] {
  const arabic = numbers.filter((n) => /^\d+(\.\d+)*$/.test(n));
  const present = new Set(arabic);
  const expected = new Set<string>();
  for (const n of arabic) {
    const parts = n.split(".").map(Number);
    for (let depth = 1; depth <= parts.length; depth++) {
      const prefix = parts.slice(0, depth - 1);
      for (let k = 1; k <= parts[depth - 1]; k++) expected.add([...prefix, k].join("."));
    }
  }
  const order = (a: string, b: string) => {
    const x = a.split(".").map(Number);
    const y = b.split(".").map(Number);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (x[i] ?? -1) - (y[i] ?? -1);
    return 0;
  };
  return [...expected].filter((n) => !present.has(n)).sort(order);
}

/** The extraction as a text table: one row per section, then the totals and the warnings. */
export function formatQuality(q: ExtractionQuality): string {
  const width = Math.min(60, Math.max(7, ...q.sections.map((s) => s.title.length)));
  const row = (title: string, pages: string, paras: string, chars: string) => `${title.padEnd(width)}  ${pages.padStart(5)}  ${paras.padStart(10)}  ${chars.padStart(10)}`;
  const cut = (t: string) => (t.length > width ? t.slice(0, width - 1) + "\u2026" : t);
  const lines = [row("section", "pages", "paragraphs", "characters")];
  for (const s of q.sections) lines.push(row(cut(s.title), s.pages[0] === s.pages[1] ? `${s.pages[0]}` : `${s.pages[0]}-${s.pages[1]}`, String(s.paragraphs), String(s.characters)));
  lines.push(row(`${q.sections.length} sections`, "", String(q.paragraphs), String(q.characters)));
  for (const w of q.warnings) lines.push(`warning: ${w}`);
  return lines.join("\n");
}
