// Joining lines whose last word ends in a hyphen. A typesetter hyphenates a word to fill a
// line ("compres-" / "sion"), but a compound that breaks at its own hyphen ("decoder-" /
// "only", "Open-" / "RLHF") keeps it. The document itself says which is which: a joined form
// or a hyphenated form written elsewhere in it decides; failing that, two halves that are both
// words of the document (and not a short prefix such as "re" or "be") are a compound, and
// anything else is a broken word. Lines from different columns or blocks are never joined
// here; the caller only joins lines of one paragraph.

/** Word counts of a document: whole words, and hyphenated compounds as written inside lines. */
export class DocumentVocabulary {
  private readonly words = new Map<string, number>();

  /** `lines` in reading order. */
  constructor(lines: Iterable<string>) {
    let afterHyphen = false;
    for (const line of lines) {
      // Around a line-end hyphen both halves are fragments, not words.
      let body = line.replace(/[\p{L}\p{N}]+-\s*$/u, "");
      if (afterHyphen) body = body.replace(/^\s*[\p{L}\p{N}]+/u, "");
      afterHyphen = /[\p{L}\p{N}]-\s*$/u.test(line);
      for (const w of body.toLowerCase().match(/[\p{L}\p{N}]+(?:-[\p{L}\p{N}]+)*/gu) ?? []) {
        this.add(w);
        if (w.includes("-")) for (const part of w.split("-")) this.add(part);
      }
    }
  }

  private add(w: string): void {
    this.words.set(w, (this.words.get(w) ?? 0) + 1);
  }

  count(word: string): number {
    return this.words.get(word.toLowerCase()) ?? 0;
  }
}

const INFLECTIONS = ["s", "es", "ed", "ing"];
const FUNCTION_WORDS = new Set(
  "the and but for nor yet with without out into onto upon over under from than then that this these those there here where when what which who whom whose how why all any some none each every our your their its his her them they not can may must will shall".split(" "),
);
const PARTICIPLE_LIKE = /(ed|en|ing|based|free|only|like|wise|aware|specific|level|scale)$/;

/** Halves shorter than this are prefixes or syllables ("re-", "be-", "in-"), not words. */
const MIN_COMPOUND_PART = 3;

/**
 * Joins two consecutive lines of one paragraph. Returns the text and whether a line-break
 * hyphen was removed.
 */
export function joinParagraphLines(previous: string, next: string, vocabulary: DocumentVocabulary): { text: string; dehyphenated: boolean } {
  const a = previous.replace(/\s+$/, "");
  const b = next.replace(/^\s+/, "");
  if (a === "") return { text: b, dehyphenated: false };
  if (b === "") return { text: a, dehyphenated: false };
  const head = /([\p{L}\p{N}]+(?:-[\p{L}\p{N}]+)*)-$/u.exec(a);
  // "a -" (a dash set off by spaces) and "a" + "b" are ordinary line breaks.
  if (!head || /\s-$/.test(a)) return { text: `${a} ${b}`, dehyphenated: false };
  const tail = /^([\p{L}\p{N}]+)/u.exec(b)?.[1];
  const keep = { text: a + b, dehyphenated: false };
  // A capital or digit after the hyphen, or nothing word-like: a compound ("Llama-2", "Open-RLHF").
  if (!tail || !/^\p{Ll}/u.test(tail) || !/\p{L}$/u.test(head[1])) return keep;
  const parts = head[1].split("-");
  const last = parts[parts.length - 1];
  const joined = `${last}${tail}`;
  const hyphenated = `${last}-${tail}`;
  const join = { text: a.slice(0, -1) + b, dehyphenated: true };
  if (vocabulary.count(joined) > 0 && vocabulary.count(joined) >= vocabulary.count(hyphenated)) return join;
  if (vocabulary.count(hyphenated) > 0) return keep;
  // Typesetters leave at least two letters on each side of a break (TeX: two before, three
  // after): "e-" / "mail" is a real hyphen, and so is "built-" / "in" when the short tail is a
  // word of its own ("similari-" / "ty" is not).
  if (last.length < 2 || (tail.length < 3 && vocabulary.count(tail) > 0)) return keep;
  // "end-of-" + "sequence": a chain of hyphens is a compound.
  if (parts.length > 1) return keep;
  const isWord = (w: string) => w.length >= MIN_COMPOUND_PART && vocabulary.count(w) > 0;
  // A function word is no half of a compound: "with-" / "out", "there-" / "fore".
  if (FUNCTION_WORDS.has(last.toLowerCase()) || FUNCTION_WORDS.has(tail)) return join;
  if (isWord(last) && isWord(tail)) return keep;
  // A compound modifier whose first half the document writes only inflected: "technician-" /
  // "written" beside "technicians". Only before a participle-like second half, since a plain
  // noun there ("break-" / "water" beside "breaking") is more often one word broken.
  const inflected = last.length >= MIN_COMPOUND_PART + 2 && INFLECTIONS.some((e) => vocabulary.count(last + e) > 0);
  return inflected && isWord(tail) && PARTICIPLE_LIKE.test(tail) ? keep : join;
}
