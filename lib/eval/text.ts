// Plain-text clean-up for text taken out of PDFs: ligatures and invisible characters, words
// hyphenated at line ends, and sentence boundaries. Pure string functions, tested on strings.

// Typographic ligatures (Unicode's Alphabetic Presentation Forms) as their letters. pdf.js
// already folds them (NFKC) when it extracts text; other extractors and copied text do not.
const LIGATURES: Record<string, string> = {
  "\ufb00": "ff",
  "\ufb01": "fi",
  "\ufb02": "fl",
  "\ufb03": "ffi",
  "\ufb04": "ffl",
  "\ufb05": "st",
  "\ufb06": "st",
};

/**
 * Normalises characters: ligatures become letters; soft hyphens, zero-width characters and
 * the byte-order mark are removed; non-breaking and other Unicode spaces become " "; control
 * characters are dropped; runs of spaces and tabs collapse to one space. Newlines are kept.
 */
export function cleanText(text: string): string {
  return text
    .replace(/[\ufb00-\ufb06]/g, (c) => LIGATURES[c])
    .replace(/[\u00ad\u200b-\u200d\u2060\ufeff]/g, "")
    .replace(/[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/g, " ")
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "")
    .replace(/[ \t]+/g, " ");
}

/** Lower-case word forms of a text (letters and digits), for the dehyphenation vocabulary. */
export function wordSet(texts: Iterable<string>): Set<string> {
  const words = new Set<string>();
  for (const t of texts) for (const w of t.toLowerCase().match(/[\p{L}\p{N}]+(?:-[\p{L}\p{N}]+)*/gu) ?? []) words.add(w);
  return words;
}

/**
 * Joins two consecutive lines. A line ending in "letter-" followed by a line starting with a
 * lower-case letter is a word broken by hyphenation: the halves are joined without the hyphen
 * ("com-" + "pression" -> "compression"), except when the document elsewhere writes the word
 * with the hyphen and never without it ("decoder-" + "only" stays "decoder-only"). A hyphen
 * before a digit or capital stays ("Llama-" + "2"). Other line breaks become one space.
 * `vocabulary` is wordSet() of the document's text.
 */
export function joinLines(previous: string, next: string, vocabulary?: ReadonlySet<string>): { text: string; dehyphenated: boolean } {
  const a = previous.replace(/\s+$/, "");
  const b = next.replace(/^\s+/, "");
  if (a === "") return { text: b, dehyphenated: false };
  if (b === "") return { text: a, dehyphenated: false };
  const m = /([\p{L}\p{N}]+)-$/u.exec(a);
  if (m) {
    const n = /^(\p{Ll}[\p{L}\p{N}]*)/u.exec(b);
    if (n && /\p{L}$/u.test(m[1])) {
      const joined = (m[1] + n[1]).toLowerCase();
      const hyphenated = `${m[1]}-${n[1]}`.toLowerCase();
      const keepHyphen = vocabulary !== undefined && vocabulary.has(hyphenated) && !vocabulary.has(joined);
      if (!keepHyphen) return { text: a.slice(0, -1) + b, dehyphenated: true };
    }
    // A compound broken at its hyphen ("Llama-" + "2", "pre-" + "LN"): keep the hyphen, no space.
    return { text: a + b, dehyphenated: false };
  }
  // Anything else, including a dash set off by spaces (" -", "–"), becomes one space.
  return { text: `${a} ${b}`, dehyphenated: false };
}

// Abbreviations after which a period does not end a sentence (lower-cased, without the dot).
const ABBREVIATIONS = new Set([
  "e.g", "i.e", "cf", "vs", "etc", "al", "fig", "figs", "eq", "eqs", "sec", "secs", "tab", "vol", "pp", "dr", "mr", "mrs",
  "ms", "prof", "approx", "resp", "ref", "refs", "appx", "ch", "jr", "sr", "inc", "ltd", "corp", "u.s", "viz", "thm",
  "lem", "prop", "alg",
]);

/**
 * Splits text into sentences: at ".", "!" or "?" (optionally followed by closing quotes or
 * brackets) before whitespace and an upper-case letter, digit, quote or bracket, except after
 * an abbreviation ("e.g.", "et al.", "Fig.") or an initial ("J."); and at blank lines.
 * Returns the sentences with their start offsets in `text`; whitespace between them is dropped.
 */
export function splitSentences(text: string): Array<{ text: string; start: number }> {
  const out: Array<{ text: string; start: number }> = [];
  let start = 0;
  const push = (end: number) => {
    const raw = text.slice(start, end);
    const lead = raw.length - raw.trimStart().length;
    const s = raw.trim();
    if (s !== "") out.push({ text: s.replace(/\s+/g, " "), start: start + lead });
  };
  const boundary = /([.!?]["'\u201d\u2019)\]]*)(\s+)(?=["'\u201c\u2018(\[]?[\p{Lu}\p{N}])|\n\s*\n/gu;
  for (let m = boundary.exec(text); m !== null; m = boundary.exec(text)) {
    if (m[1] === undefined) {
      push(m.index);
      start = m.index + m[0].length;
      continue;
    }
    const end = m.index + m[1].length;
    const before = text.slice(start, m.index + 1);
    const word = /([\p{L}.]+)\.$/u.exec(before)?.[1] ?? "";
    // "et al." / "e.g." / "Fig." and initials ("J. He") do not end a sentence.
    if (m[1].startsWith(".") && (ABBREVIATIONS.has(word.toLowerCase()) || /^\p{Lu}$/u.test(word))) continue;
    push(end);
    start = end + m[2].length;
  }
  push(text.length);
  return out;
}

/** Collapses whitespace, for comparing texts that were wrapped differently. */
export function squashSpace(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
