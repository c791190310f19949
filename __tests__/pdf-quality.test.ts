// The structure report of `clara-eval extract` (lib/eval/pdf-quality.ts): sections, paragraphs
// and characters, no warnings on the typeset fixtures, and a warning for each way an
// extraction typically goes wrong (one section swallowing the text, numbered sections referred
// to but not found or skipped, lines left unjoined, text shredded into short lines).

import * as path from "node:path";
import { extractPdf, type ExtractedPdf } from "../lib/eval/pdf";
import { extractionQuality, formatQuality } from "../lib/eval/pdf-quality";
import type { Section } from "../lib/eval/pdf-sections";
import { fixtureNames } from "../tools/pdf-fixtures/score";

const DIR = path.join(__dirname, "fixtures", "pdf");

function clone(doc: ExtractedPdf): ExtractedPdf {
  return JSON.parse(JSON.stringify(doc));
}

let twoColumn: ExtractedPdf;
beforeAll(async () => {
  twoColumn = await extractPdf(path.join(DIR, "article-twocolumn.pdf"));
});

test("the typeset fixtures and the sample paper extract without warnings", async () => {
  const files = [...fixtureNames(DIR).map((n) => path.join(DIR, `${n}.pdf`)), path.join(__dirname, "..", "knowledge_data", "sample_paper.pdf")];
  for (const file of files) {
    const q = extractionQuality(await extractPdf(file));
    expect({ file: path.basename(file), warnings: q.warnings }).toEqual({ file: path.basename(file), warnings: [] });
  }
});

test("sections, paragraphs and characters add up, and print as a table", () => {
  const q = extractionQuality(twoColumn);
  expect(q.sections.map((s) => s.title)).toEqual(twoColumn.sections.map((s) => s.title));
  expect(q.characters).toBe(twoColumn.sections.reduce((n, s) => n + s.paragraphs.reduce((m, p) => m + p.text.length, 0), 0));
  expect(q.paragraphs).toBe(q.sections.reduce((n, s) => n + s.paragraphs, 0));
  const table = formatQuality(q).split("\n");
  expect(table[0]).toMatch(/^section\s+pages\s+paragraphs\s+characters$/);
  expect(table.find((l) => l.startsWith("2.3 The Router"))).toMatch(/^2\.3 The Router\s+1\s+\d\s+\d+$/);
  expect(table.at(-1)).toMatch(new RegExp(`^${q.sections.length} sections\\s+${q.paragraphs}\\s+${q.characters}$`));
});

test("one section holding most of the text is a warning", () => {
  const doc = clone(twoColumn);
  const merged: Section = { ...doc.sections[1], paragraphs: doc.sections.slice(1).flatMap((s) => s.paragraphs) };
  doc.sections = [doc.sections[0], merged];
  expect(extractionQuality(doc).warnings).toEqual([expect.stringMatching(/^section "Abstract" holds \d+% of the text: headings after it were probably missed$/)]);
});

test("a paper that refers to its numbered sections but has no numbered heading, or skips one, is a warning", () => {
  const doc = clone(twoColumn);
  doc.sections[2].paragraphs[0].text += " Section 3 explains the training.";
  const unnumbered = clone(doc);
  for (const s of unnumbered.sections) s.number = null;
  expect(extractionQuality(unnumbered).warnings).toEqual(['the text refers to numbered sections ("Section 3") but no numbered heading was found']);
  const skipping = clone(doc);
  skipping.sections = skipping.sections.filter((s) => !(s.number ?? "").startsWith("3"));
  expect(extractionQuality(skipping).warnings).toEqual(["numbered headings skip section 3: it was not recognised as a heading"]);
  // What the extractor found before its layout analysis: no "1", no "2.1" or "2.2", no "3".
  const early = clone(doc);
  early.sections = early.sections.filter((s) => s.number === null || ["2.3", "3.1", "4", "4.1", "4.2", "4.3", "5", "6"].includes(s.number));
  expect(extractionQuality(early).warnings).toEqual(["numbered headings skip sections 1, 2, 2.1, 2.2, 3: they were not recognised as headings"]);
});

test("many tiny paragraphs or short lines are a warning", () => {
  const doc = clone(twoColumn);
  for (const s of doc.sections) s.paragraphs = s.paragraphs.flatMap((p) => p.text.match(/(\S+\s*){1,3}/g)!.map((t) => ({ ...p, text: t.trim() })));
  expect(extractionQuality(doc).warnings).toEqual([expect.stringMatching(/^\d+ of \d+ paragraphs have fewer than 5 words: lines were probably not joined into paragraphs$/)]);
  const shredded = clone(twoColumn);
  shredded.stats.shortLines = Math.ceil(0.5 * shredded.stats.lines);
  expect(extractionQuality(shredded).warnings).toEqual([expect.stringMatching(/lines have fewer than 15 characters/)]);
});
