// Scores an extracted PDF against the ground truth of its source (ground-truth.ts):
// section titles (recall and precision, in order), paragraphs found contiguously and in
// order, sentences that mix two source units, running text that leaked into the body,
// captions, footnotes and table rows found and kept apart from the running text.
//
//   node dist/tools/pdf-fixtures/score.js [__tests__/fixtures/pdf]   prints the table

import * as fs from "node:fs";
import * as path from "node:path";
import { extractPdf, type ExtractedPdf } from "../../lib/eval/pdf";
import { splitSentences } from "../../lib/eval/text";
import { GAP, GAP_MAX_CHARS, type GroundTruth } from "./ground-truth";

export interface FixtureScore {
  sectionRecall: number;
  sectionPrecision: number;
  /** Source paragraphs found as one contiguous run of the extracted text. */
  paragraphsFound: number;
  /** ... and after the previous paragraph. */
  paragraphsInOrder: number;
  paragraphs: number;
  /** Extracted sentences whose words come from two different source units. */
  mixedSentences: number;
  sentences: number;
  captionsFound: number;
  captions: number;
  /** Footnotes found in a paragraph of their own (no body text with them). */
  footnotesApart: number;
  footnotes: number;
  /** Table rows found, cells in order, in a paragraph without body text. */
  tableRowsApart: number;
  tableRows: number;
  /** Running heads or footers printed more often in the extracted text than the source has them. */
  runningTextLeaks: string[];
  /** Source paragraphs not found (first 80 characters), for diagnosis. */
  missing: string[];
  /** Mixed sentences (first 120 characters), for diagnosis. */
  mixed: string[];
  /** Section titles expected and not found, and found but not expected. */
  missingSections: string[];
  extraSections: string[];
}

/** Characters that typesetters print differently from the source: quotes, dashes, ligatures. */
export function normalizeForMatch(text: string): string {
  return text
    .normalize("NFKC")
    .replace(/[\u2018\u2019\u201a\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201e\u2033]/g, '"')
    .replace(/[\u2010-\u2015\u2212]/g, "-")
    .replace(/\s*\|\s*/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

/**
 * A heading without its number, reduced to letters and digits: "3.1 Slot Assignment" ->
 * "slotassignment". `printed` titles carry their number; the source's titles do not.
 */
function titleKey(title: string, printed = false): string {
  return normalizeForMatch(title)
    .replace(printed ? /^(appendix\s+)?((\d+|[A-Z]|[IVXL]+)([.-](\d+|[A-Z]))*)\.?\s+(?=\S)/ : /^$/, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]/gu, "");
}

function lcsLength(a: string[], b: string[]): number {
  const dp = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) dp[i][j] = a[i - 1] === b[j - 1] ? dp[i - 1][j - 1] + 1 : Math.max(dp[i - 1][j], dp[i][j - 1]);
  return dp[a.length][b.length];
}

/**
 * Where `truth` (with GAP marks) occurs in `hay` at or after `from`: its pieces in order, each
 * within GAP_MAX_CHARS of the previous one where the source had a gap, adjacent otherwise.
 */
export function findWithGaps(hay: string, truth: string, from = 0): { start: number; end: number } | null {
  const pieces = truth.split(GAP).map(normalizeForMatch).filter((p) => p !== "");
  if (pieces.length === 0) return null;
  for (let start = hay.indexOf(pieces[0], from); start >= 0; start = hay.indexOf(pieces[0], start + 1)) {
    let end = start + pieces[0].length;
    let ok = true;
    for (const piece of pieces.slice(1)) {
      const at = hay.indexOf(piece, end);
      if (at < 0 || at - end > GAP_MAX_CHARS) {
        ok = false;
        break;
      }
      end = at + piece.length;
    }
    if (ok) return { start, end };
  }
  return null;
}

function words(text: string): string[] {
  return normalizeForMatch(text).toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
}

function grams(text: string, n = 4): string[] {
  const out: string[] = [];
  for (const piece of text.split(GAP)) {
    const w = words(piece);
    for (let i = 0; i + n <= w.length; i++) out.push(w.slice(i, i + n).join(" "));
  }
  return out;
}

export function scoreExtraction(doc: ExtractedPdf, truth: GroundTruth): FixtureScore {
  // Sections: in order, compared without numbers, case or punctuation.
  const expected = truth.sections.map((s) => titleKey(s.title));
  const found = doc.sections.filter((s) => s.kind !== "front").map((s) => titleKey(s.title, true));
  const common = lcsLength(expected, found);

  const stream = normalizeForMatch(doc.sections.map((s) => [s.kind === "front" ? "" : s.title, ...s.paragraphs.map((p) => p.text)].join(" ")).join(" "));
  let cursor = 0;
  let inOrder = 0;
  let anywhere = 0;
  const missing: string[] = [];
  for (const p of truth.paragraphs) {
    const next = findWithGaps(stream, p.text, cursor);
    if (next) {
      inOrder++;
      anywhere++;
      cursor = next.end;
    } else if (findWithGaps(stream, p.text, 0)) anywhere++;
    else missing.push(p.text.slice(0, 80));
  }

  // Units a sentence may come from; a sentence whose 4-grams no single unit covers mixes units.
  const units = [
    truth.title,
    ...truth.sections.map((s) => s.title),
    ...truth.paragraphs.map((p) => p.text),
    ...truth.captions,
    ...truth.footnotes,
    ...truth.tableRows.map((r) => r.join(` ${GAP} `)),
    ...truth.references,
  ].map((t) => new Set(grams(t)));
  const mixed: string[] = [];
  let sentences = 0;
  for (const s of doc.sections) {
    for (const p of s.paragraphs) {
      for (const sentence of splitSentences(p.text)) {
        sentences++;
        const matched = grams(sentence.text).map((g) => units.map((u, i) => (u.has(g) ? i : -1)).filter((i) => i >= 0)).filter((us) => us.length > 0);
        if (matched.length < 2) continue;
        const covering = matched.reduce((acc, us) => acc.filter((i) => us.includes(i)));
        if (covering.length === 0) mixed.push(sentence.text.slice(0, 120));
      }
    }
  }

  const bodyGrams = new Set(truth.paragraphs.flatMap((p) => grams(p.text)));
  const paragraphs = doc.sections.flatMap((s) => s.paragraphs.map((p) => normalizeForMatch(p.text)));
  const apart = (t: string) => paragraphs.some((p) => findWithGaps(p, t) !== null && !grams(p).some((g) => bodyGrams.has(g)));
  const sourceText = normalizeForMatch([truth.title, ...truth.sections.map((s) => s.title), ...truth.paragraphs.map((p) => p.text), ...truth.captions, ...truth.footnotes].join(" "));
  const count = (hay: string, needle: string) => hay.split(needle).length - 1;
  // Running heads are looked for in the running text of the body: classes print their
  // conference and authors in the front matter and footnotes too (acmart's reference format).
  const bodyStream = normalizeForMatch(
    doc.sections.filter((s) => s.kind !== "front" && s.kind !== "abstract").flatMap((s) => [s.title, ...s.paragraphs.filter((p) => p.role !== "footnote").map((p) => p.text)]).join(" "),
  );

  return {
    sectionRecall: expected.length ? common / expected.length : 1,
    sectionPrecision: found.length ? common / found.length : 0,
    paragraphsFound: anywhere,
    paragraphsInOrder: inOrder,
    paragraphs: truth.paragraphs.length,
    mixedSentences: mixed.length,
    sentences,
    captionsFound: truth.captions.filter((c) => findWithGaps(stream, c) !== null).length,
    captions: truth.captions.length,
    footnotesApart: truth.footnotes.filter(apart).length,
    footnotes: truth.footnotes.length,
    tableRowsApart: truth.tableRows.filter((r) => apart(r.join(` ${GAP} `))).length,
    tableRows: truth.tableRows.length,
    runningTextLeaks: truth.runningText.filter((r) => count(bodyStream, normalizeForMatch(r)) > count(sourceText, normalizeForMatch(r))),
    missing,
    mixed,
    missingSections: truth.sections.filter((s) => !found.includes(titleKey(s.title))).map((s) => s.title),
    extraSections: doc.sections.filter((s) => s.kind !== "front" && !expected.includes(titleKey(s.title, true))).map((s) => s.title),
  };
}

/** The fixtures: every <name>.pdf in `dir` with its <name>.truth.json. */
export function fixtureNames(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith(".truth.json")).map((f) => f.replace(/\.truth\.json$/, "")).sort();
}

export function readTruth(dir: string, name: string): GroundTruth {
  return JSON.parse(fs.readFileSync(path.join(dir, `${name}.truth.json`), "utf8")) as GroundTruth;
}

const pct = (a: number, b: number) => (b === 0 ? "-" : `${a}/${b}`);

export function scoreRow(name: string, s: FixtureScore): string {
  return [
    name,
    s.sectionRecall.toFixed(2),
    s.sectionPrecision.toFixed(2),
    pct(s.paragraphsInOrder, s.paragraphs),
    pct(s.mixedSentences, s.sentences),
    pct(s.captionsFound, s.captions),
    pct(s.footnotesApart, s.footnotes),
    pct(s.tableRowsApart, s.tableRows),
    s.runningTextLeaks.length ? s.runningTextLeaks.join("; ") : "none",
  ].join(" | ");
}

export const SCORE_HEADER = "fixture | section recall | section precision | paragraphs in order | mixed sentences | captions | footnotes apart | table rows apart | running text leaked";

if (require.main === module) {
  void (async () => {
    const repo = path.resolve(__dirname, "..", "..", fs.existsSync(path.resolve(__dirname, "..", "..", "package.json")) ? "" : "..");
    const dir = path.resolve(process.argv.slice(2).find((a) => !a.startsWith("--")) ?? path.join(repo, "__tests__", "fixtures", "pdf"));
    const verbose = process.argv.includes("--verbose");
    console.log(SCORE_HEADER);
    for (const name of fixtureNames(dir)) {
      const s = scoreExtraction(await extractPdf(path.join(dir, `${name}.pdf`)), readTruth(dir, name));
      console.log(scoreRow(name, s));
      if (verbose) console.log(JSON.stringify({ missing: s.missing, mixed: s.mixed, missingSections: s.missingSections, extraSections: s.extraSections }, null, 1));
    }
  })();
}
