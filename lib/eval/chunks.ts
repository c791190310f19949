// Sections -> chunks the compressor can read: whole sentences packed greedily, within one
// section, up to maxTokens tokens by the model's own tokenizer (the compressor truncates at
// docMaxLength, so a chunk must fit it). A sentence longer than the limit is cut at words.
// Each chunk keeps its section path and pages, so a question's evidence can be found in them.

import { normalizeAnswer, pySplit } from "./metrics";
import type { Section, SectionKind } from "./pdf-sections";
import { splitSentences, squashSpace } from "./text";

export interface Chunk {
  index: number;
  /** The section's heading, e.g. "2.1 Compression". */
  section: string;
  sectionIndex: number;
  path: string[];
  kind: SectionKind;
  /** Pages the chunk's sentences start on, ascending. */
  pages: number[];
  text: string;
  tokens: number;
}

export interface ChunkOptions {
  maxTokens: number;
  /** Number of tokens of a text (the model tokenizer's encode(text).length). */
  countTokens: (text: string) => number;
  /** Section kinds to chunk; default abstract, body and appendix (not front matter or references). */
  kinds?: SectionKind[];
}

export const DEFAULT_CHUNK_KINDS: readonly SectionKind[] = ["abstract", "body", "appendix"];

/** A tokenizer-free estimate (4 characters per token), for `extract` without a model. */
export function approximateTokenCount(text: string): number {
  return Math.ceil(text.length / 4);
}

/** The sentences of a section with the page each starts on. */
export function sectionSentences(section: Section): Array<{ text: string; page: number }> {
  const out: Array<{ text: string; page: number }> = [];
  for (const p of section.paragraphs) {
    for (const s of splitSentences(p.text)) {
      let page = p.page;
      for (const [offset, pg] of p.pageBreaks ?? []) if (s.start >= offset) page = pg;
      out.push({ text: s.text, page });
    }
  }
  return out;
}

export function chunkSections(sections: Section[], options: ChunkOptions): Chunk[] {
  const { maxTokens, countTokens } = options;
  if (!Number.isInteger(maxTokens) || maxTokens < 8) throw new RangeError(`maxTokens must be an integer >= 8, got ${maxTokens}`);
  let kinds = new Set(options.kinds ?? DEFAULT_CHUNK_KINDS);
  // A PDF without recognisable headings is all front matter: chunk that rather than nothing.
  if (!sections.some((s) => kinds.has(s.kind) && s.text.trim() !== "")) kinds = new Set([...kinds, "front"]);
  const chunks: Chunk[] = [];
  for (const section of sections) {
    if (!kinds.has(section.kind)) continue;
    let text = "";
    let pages = new Set<number>();
    const emit = () => {
      if (text === "") return;
      chunks.push({
        index: chunks.length,
        section: section.title,
        sectionIndex: section.index,
        path: section.path,
        kind: section.kind,
        pages: [...pages].sort((a, b) => a - b),
        text,
        tokens: countTokens(text),
      });
      text = "";
      pages = new Set();
    };
    for (const sentence of sectionSentences(section)) {
      for (const piece of fitPieces(sentence.text, maxTokens, countTokens)) {
        const candidate = text === "" ? piece : `${text} ${piece}`;
        if (text !== "" && countTokens(candidate) > maxTokens) {
          emit();
          text = piece;
        } else text = candidate;
        pages.add(sentence.page);
      }
    }
    emit();
  }
  return chunks;
}

/** The sentence itself, or word runs of it that each fit maxTokens. */
function fitPieces(sentence: string, maxTokens: number, count: (t: string) => number): string[] {
  if (count(sentence) <= maxTokens) return [sentence];
  const out: string[] = [];
  let cur = "";
  for (const word of sentence.split(" ")) {
    const candidate = cur === "" ? word : `${cur} ${word}`;
    if (count(candidate) <= maxTokens) cur = candidate;
    else if (cur === "") {
      // One "word" over the limit (a URL, a formula): cut it by characters.
      let w = word;
      while (w !== "") {
        let n = w.length;
        while (n > 1 && count(w.slice(0, n)) > maxTokens) n = Math.floor(n * 0.8);
        out.push(w.slice(0, n));
        w = w.slice(n);
      }
    } else {
      out.push(cur);
      cur = word;
    }
  }
  if (cur !== "") out.push(cur);
  return out;
}

export interface Evidence {
  /** The sentence that supports the answer, as printed. */
  text?: string;
  /** The section heading ("3.1 Data") or its number ("3.1"). */
  section?: string;
  page?: number;
}

export type EvidenceMatch = "text" | "overlap" | "section" | "none";

/**
 * The chunks that hold a question's evidence: those containing the evidence sentence
 * (whitespace- and case-insensitive); else those sharing most of its words (a sentence cut
 * across chunks); else the chunks of its section on its page; else none (the question is then
 * left out of retrieval recall, and counted as such in the report).
 */
export function evidenceChunks(chunks: readonly Chunk[], evidence: Evidence): { indices: number[]; match: EvidenceMatch } {
  const norm = (t: string) => squashSpace(t).toLowerCase();
  if (evidence.text && evidence.text.trim() !== "") {
    const needle = norm(evidence.text);
    const exact = chunks.filter((c) => norm(c.text).includes(needle)).map((c) => c.index);
    if (exact.length) return { indices: exact, match: "text" };
    const words = new Set(pySplit(normalizeAnswer(evidence.text)));
    if (words.size > 0) {
      const cover = chunks.map((c) => {
        const have = new Set(pySplit(normalizeAnswer(c.text)));
        let n = 0;
        for (const w of words) if (have.has(w)) n++;
        return n / words.size;
      });
      const best = Math.max(...cover);
      if (best >= 0.6) return { indices: chunks.filter((_, i) => cover[i] >= best - 1e-9 || cover[i] >= 0.8).map((c) => c.index), match: "overlap" };
    }
  }
  if (evidence.section) {
    const s = evidence.section.trim().toLowerCase();
    const inSection = chunks.filter((c) => {
      const t = c.section.toLowerCase();
      return t === s || t.startsWith(s + " ") || c.path.some((p) => p.toLowerCase() === s);
    });
    const onPage = evidence.page === undefined ? inSection : inSection.filter((c) => c.pages.includes(evidence.page!));
    const chosen = onPage.length ? onPage : inSection;
    if (chosen.length) return { indices: chosen.map((c) => c.index), match: "section" };
  }
  return { indices: [], match: "none" };
}
