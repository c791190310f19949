// Ground truth for the PDF fixtures, read from the sources the fixtures are typeset from
// (LaTeX, flat ODT, HTML): section titles in order and the text of every paragraph, caption,
// footnote and table row, plus the running heads that must not reach the extracted text.
// It is derived from the source, never from what an extractor printed, so the tests in
// __tests__/pdf-fixtures.test.ts measure the extractor against what the author wrote.
//
// Each reader understands the markup these sources use and refuses anything else, so a
// fixture that grows a new construct fails here instead of producing a wrong truth.
//
//   node <built>/ground-truth.js <source> <out.truth.json>     (from the repository root)

import * as fs from "node:fs";
import * as path from "node:path";

/**
 * Stands where the source has something that does not come out of a PDF as the same text:
 * inline or display math, a citation or reference number, a footnote mark. Matchers let it
 * cover up to GAP_MAX_CHARS characters of whatever the typesetter printed there (or none).
 */
export const GAP = "\u2042";
export const GAP_MAX_CHARS = 90;

export interface TruthSection {
  /** The heading text without its number: "Adapter Placement". */
  title: string;
  /** The number as the class prints it ("3.1", "A", "IV"), null for unnumbered headings. */
  number: string | null;
  level: number;
}

export interface TruthParagraph {
  /** The title of the section the paragraph belongs to. */
  section: string;
  text: string;
}

export interface GroundTruth {
  /** The source file, relative to the repository root. */
  source: string;
  producer: "pdflatex" | "libreoffice" | "chromium";
  title: string;
  sections: TruthSection[];
  paragraphs: TruthParagraph[];
  captions: string[];
  footnotes: string[];
  /** Table rows, cell texts in order. */
  tableRows: string[][];
  references: string[];
  /** Running heads and footers: printed on pages, but not part of the document's text. */
  runningText: string[];
}

export function groundTruth(sourceFile: string, repoRoot: string): GroundTruth {
  const text = fs.readFileSync(sourceFile, "utf8");
  const source = path.relative(repoRoot, sourceFile).split(path.sep).join("/");
  const ext = path.extname(sourceFile).toLowerCase();
  if (ext === ".tex") return { source, ...fromLatex(text, sourceFile) };
  if (ext === ".fodt") return { source, ...fromFlatOdt(text, sourceFile) };
  if (ext === ".html") return { source, ...fromHtml(text, sourceFile) };
  throw new Error(`${sourceFile}: no ground-truth reader for ${ext} sources (known: .tex, .fodt, .html)`);
}

type Truth = Omit<GroundTruth, "source">;

function emptyTruth(producer: GroundTruth["producer"]): Truth {
  return { producer, title: "", sections: [], paragraphs: [], captions: [], footnotes: [], tableRows: [], references: [], runningText: [] };
}

// ---------------------------------------------------------------------------------------
// LaTeX

/** The argument in braces starting at `open` (which must be "{"); returns it and the index after. */
function braced(s: string, open: number, file: string): { arg: string; end: number } {
  if (s[open] !== "{") throw new Error(`${file}: expected "{" at offset ${open}: ${JSON.stringify(s.slice(open, open + 40))}`);
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    if (s[i] === "\\") {
      i++;
      continue;
    }
    if (s[i] === "{") depth++;
    else if (s[i] === "}" && --depth === 0) return { arg: s.slice(open + 1, i), end: i + 1 };
  }
  throw new Error(`${file}: unbalanced braces from offset ${open}`);
}

/** Replaces every `\name{arg}` with f(arg). */
function replaceCommand(s: string, name: string, f: (arg: string) => string, file: string): string {
  const re = new RegExp(`\\\\${name.replace(/\*/g, "\\*")}\\s*(?=\\{)`, "g");
  let out = "";
  let from = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const { arg, end } = braced(s, m.index + m[0].length, file);
    out += s.slice(from, m.index) + f(arg);
    from = end;
    re.lastIndex = end;
  }
  return out + s.slice(from);
}

/** LaTeX paragraph source -> the text a reader sees, with GAP where math or marks stand. */
function latexInline(s: string, file: string, footnotes?: string[]): string {
  let t = s;
  t = replaceCommand(t, "footnote", (arg) => {
    footnotes?.push(latexInline(arg, file));
    return GAP;
  }, file);
  t = t.replace(/\$\$[\s\S]*?\$\$|\\\[[\s\S]*?\\\]|\$[^$]*\$/g, GAP);
  for (const c of ["label"]) t = replaceCommand(t, c, () => "", file);
  for (const c of ["ref", "cite", "eqref"]) t = replaceCommand(t, c, () => GAP, file);
  for (const c of ["emph", "textbf", "textit", "texttt", "textsc", "textrm", "mbox"]) t = replaceCommand(t, c, (a) => a, file);
  t = t
    .replace(/(?<!\\)%.*$/gm, "")
    .replace(/\\\\(\[[^\]]*\])?/g, " ")
    .replace(/---/g, "\u2014")
    .replace(/--/g, "\u2013")
    .replace(/``/g, "\u201c")
    .replace(/''/g, "\u201d")
    .replace(/\\([%&#_$])/g, "$1")
    .replace(/\\ /g, " ")
    .replace(/~/g, " ");
  const unknown = /\\[A-Za-z]+/.exec(t);
  if (unknown) throw new Error(`${file}: the ground-truth reader does not know ${unknown[0]} (in ${JSON.stringify(s.slice(0, 80))}); teach latexInline what it prints`);
  return squash(t.replace(/[{}]/g, ""));
}

function squash(t: string): string {
  return t.replace(/\s+/g, " ").replace(new RegExp(`(${GAP}\\s*)+`, "g"), (m) => (m.includes(" ") ? GAP + " " : GAP)).trim();
}

const ROMAN = ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"];

function fromLatex(src: string, file: string): Truth {
  const truth = emptyTruth("pdflatex");
  const withoutComments = src.replace(/(?<!\\)%.*$/gm, "");
  const begin = withoutComments.indexOf("\\begin{document}");
  const end = withoutComments.indexOf("\\end{document}");
  if (begin < 0 || end < 0) throw new Error(`${file}: no \\begin{document} ... \\end{document}`);
  const preamble = withoutComments.slice(0, begin);
  const ieee = /\\documentclass(\[[^\]]*\])?\{IEEEtran\}/.test(preamble);
  const titleAt = withoutComments.indexOf("\\title{");
  if (titleAt < 0) throw new Error(`${file}: no \\title{...}`);
  truth.title = latexInline(braced(withoutComments, titleAt + 6, file).arg, file);
  for (const m of preamble.matchAll(/\\fancy(head|foot)\[[^\]]*\]\{/g)) {
    const arg = braced(preamble, m.index! + m[0].length - 1, file).arg;
    const text = latexInline(arg.replace(/\\thepage/g, "").replace(/\\(small|footnotesize|scriptsize|itshape|bfseries)\b/g, ""), file);
    if (text !== "") truth.runningText.push(text);
  }

  // acmart heads its pages with the conference (short name, date, venue) and the authors.
  const acm = /\\acmConference\[([^\]]*)\]\{[^}]*\}\{([^}]*)\}\{([^}]*)\}/.exec(preamble);
  if (acm) {
    truth.runningText.push(`${acm[1]}, ${acm[2]}, ${acm[3]}`);
    const authors = [...withoutComments.matchAll(/\\author\{([^}]*)\}/g)].map((m) => m[1]);
    truth.runningText.push(authors.length > 2 ? `${authors[0]} et al.` : authors.join(" and "));
  }

  let body = withoutComments.slice(begin + "\\begin{document}".length, end);
  // Title and authors may be declared after \\begin{document} (IEEEtran's template does).
  for (const c of ["title", "author", "affiliation"]) body = replaceCommand(body, c, () => "", file);
  // acmart's conference formats (sigconf, ...) head the abstract and the keywords; its journal
  // formats (acmsmall, ...) print the abstract without a heading and the keywords run in.
  const acmJournal = /\\documentclass\[(?![^\]]*\bsig)[^\]]*\]\{acmart\}/.test(preamble);
  body = replaceCommand(body, "keywords", (a) => (acmJournal ? `\n\nAdditional Key Words and Phrases: ${a}\n\n` : `\n\n\\section*{Keywords}\n\n${a}\n\n`), file);
  // Layout-only commands print nothing themselves.
  body = body
    .replace(/\\(maketitle|makeatletter|makeatother|noindent|centering|par)\b/g, "")
    .replace(/\\(thispagestyle|pagestyle|vspace\*?|label)\{[^}]*\}/g, "")
    .replace(/\\begin\{@twocolumnfalse\}|\\end\{@twocolumnfalse\}/g, "")
    .replace(/\\twocolumn\[/g, "")
    .replace(/^\s*\]\s*$/gm, "");

  const counters = [0, 0, 0];
  let appendix = false;
  let section = "";
  const startSection = (title: string, number: string | null, level: number) => {
    truth.sections.push({ title, number, level });
    section = title;
  };
  const addParagraphs = (chunk: string) => {
    for (const para of chunk.split(/\n\s*\n/)) {
      let p = para.trim();
      if (p === "") continue;
      // A run-in heading (\paragraph) is part of the paragraph's text.
      p = replaceCommand(p, "paragraph", (a) => a + " ", file);
      const text = latexInline(p, file, truth.footnotes);
      if (text.replace(new RegExp(GAP, "g"), "").trim() !== "") truth.paragraphs.push({ section, text });
    }
  };

  // Walk the body: headings, environments, and the running text between them.
  const token = /\\(section|subsection|subsubsection)(\*?)\s*\{|\\begin\{([A-Za-z*]+)\}|\\appendix\b/g;
  let pending = "";
  let from = 0;
  for (let m = token.exec(body); m !== null; m = token.exec(body)) {
    pending += body.slice(from, m.index);
    if (m[0] === "\\appendix") {
      appendix = true;
      counters.fill(0);
      from = m.index + m[0].length;
      continue;
    }
    if (m[1]) {
      addParagraphs(pending);
      pending = "";
      const { arg, end: after } = braced(body, m.index + m[0].length - 1, file);
      const level = ["section", "subsection", "subsubsection"].indexOf(m[1]) + 1;
      let number: string | null = null;
      if (!m[2]) {
        counters[level - 1]++;
        counters.fill(0, level);
        const top = appendix ? String.fromCharCode(64 + counters[0]) : ieee ? ROMAN[counters[0]] : String(counters[0]);
        if (ieee) number = level === 1 ? top : String.fromCharCode(64 + counters[level - 1]);
        else number = [top, ...counters.slice(1, level).map(String)].join(".");
      }
      startSection(latexInline(arg, file), number, level);
      from = after;
      token.lastIndex = after;
      continue;
    }
    const env = m[3];
    const close = `\\end{${env}}`;
    const stop = body.indexOf(close, m.index);
    if (stop < 0) throw new Error(`${file}: \\begin{${env}} is never closed`);
    const inner = body.slice(m.index + m[0].length, stop);
    from = stop + close.length;
    token.lastIndex = from;
    if (env === "equation" || env === "equation*" || env === "align" || env === "align*") {
      // Display math inside a paragraph: the sentence runs on around it.
      pending += ` ${GAP} `;
      continue;
    }
    addParagraphs(pending);
    pending = "";
    if (env === "abstract") {
      if (!acmJournal) startSection("Abstract", null, 1);
      addParagraphs(inner);
    } else if (env === "IEEEkeywords") {
      truth.paragraphs.push({ section, text: "Index Terms\u2014" + latexInline(inner, file) });
    } else if (env === "itemize" || env === "enumerate") {
      // Each item is a paragraph of its own; its label (bullet, number) is not source text.
      for (const item of inner.split(/\\item\b/).slice(1)) addParagraphs(item.replace(/\n\s*\n/g, " "));
    } else if (/^(table|figure)\*?$/.test(env)) {
      readFloat(inner);
    } else if (env === "longtable") {
      readTableRows(inner.replace(/^\{[^}]*\}/, ""));
    } else if (env === "thebibliography") {
      startSection("References", null, 1);
      for (const item of inner.replace(/^\{[^}]*\}/, "").split(/\\bibitem\{[^}]*\}/).slice(1)) truth.references.push(latexInline(item, file));
    } else {
      throw new Error(`${file}: the ground-truth reader does not know the environment ${env}; teach fromLatex what it prints`);
    }
  }
  addParagraphs(pending + body.slice(from));
  return truth;

  function readFloat(inner: string): void {
    const tabular = /\\begin\{tabular\}\{[^}]*\}([\s\S]*?)\\end\{tabular\}/.exec(inner);
    if (tabular) readTableRows(tabular[1]);
    const c = inner.indexOf("\\caption{");
    if (c >= 0) truth.captions.push(latexInline(braced(inner, c + 8, file).arg, file));
  }

  function readTableRows(rowsSource: string): void {
    let s = rowsSource;
    const c = s.indexOf("\\caption{");
    if (c >= 0) {
      const { arg, end: after } = braced(s, c + 8, file);
      truth.captions.push(latexInline(arg, file));
      s = s.slice(0, c) + s.slice(after);
    }
    // longtable repeats its header on every page: keep the rows after \endfoot, and the header once.
    const foot = s.lastIndexOf("\\endfoot");
    const firstHead = s.indexOf("\\endfirsthead");
    const rows = (firstHead >= 0 ? s.slice(0, firstHead) + "\\\\" + s.slice(foot + "\\endfoot".length) : s)
      .replace(/\\(toprule|midrule|bottomrule|hline|endhead|endfoot|endfirsthead|endlastfoot)\b/g, "")
      .split(/\\\\/);
    for (const row of rows) {
      if (row.trim() === "") continue;
      truth.tableRows.push(row.split(/(?<!\\)&/).map((cell) => latexInline(cell, file)));
    }
  }
}

// ---------------------------------------------------------------------------------------
// XML-ish sources (flat ODT and HTML): the markup these fixtures use, read with patterns.

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " ", ndash: "\u2013", mdash: "\u2014" };

function xmlText(s: string): string {
  return squash(
    s
      .replace(/<text:s\/>|<text:tab\/>|<br\s*\/?>/g, " ")
      .replace(/<[^>]+>/g, "")
      .replace(/&(#\d+|[a-z]+);/g, (m, e: string) => (e.startsWith("#") ? String.fromCodePoint(Number(e.slice(1))) : ENTITIES[e] ?? m)),
  );
}

function numberedHeading(text: string): { title: string; number: string | null } {
  const m = /^((?:\d+|[A-Z])(?:\.\d+)*)\.?\s+(.*)$/.exec(text);
  return m ? { title: m[2], number: m[1] } : { title: text, number: null };
}

function fromFlatOdt(src: string, file: string): Truth {
  const truth = emptyTruth("libreoffice");
  const master = /<office:master-styles>([\s\S]*?)<\/office:master-styles>/.exec(src)?.[1] ?? "";
  for (const m of master.matchAll(/<style:(header|footer)>([\s\S]*?)<\/style:\1>/g)) {
    // Page-number fields print a number that changes per page; the words around them stay.
    const text = xmlText(m[2].replace(/<text:page-number[^>]*>[^<]*<\/text:page-number>/g, ""));
    if (text.length > 8) truth.runningText.push(text);
  }
  const body = /<office:text>([\s\S]*?)<\/office:text>/.exec(src)?.[1];
  if (body === undefined) throw new Error(`${file}: no <office:text> body`);
  let section = "";
  const element = /<text:h\b([^>]*)>([\s\S]*?)<\/text:h>|<text:p\b([^>]*)>([\s\S]*?)<\/text:p>|<table:table-row\b[^>]*>([\s\S]*?)<\/table:table-row>/g;
  for (const m of body.matchAll(element)) {
    if (m[1] !== undefined) {
      const level = Number(/text:outline-level="(\d+)"/.exec(m[1])?.[1] ?? "1");
      const h = numberedHeading(xmlText(m[2]));
      truth.sections.push({ ...h, level });
      section = h.title;
    } else if (m[3] !== undefined) {
      if (body.slice(0, m.index).lastIndexOf("<table:table ") > body.slice(0, m.index).lastIndexOf("</table:table>")) continue;
      const style = /text:style-name="([^"]+)"/.exec(m[3])?.[1] ?? "";
      const text = xmlText(m[4]);
      if (style === "Title") truth.title = text;
      else if (style === "Caption") truth.captions.push(text.replace(/^Table \d+:\s*/, ""));
      else if (style === "Text_20_body") truth.paragraphs.push({ section, text });
      else if (style !== "Subtitle") throw new Error(`${file}: paragraph style ${style} is not known to the ground-truth reader`);
    } else {
      truth.tableRows.push([...m[5].matchAll(/<table:table-cell\b[^>]*>([\s\S]*?)<\/table:table-cell>/g)].map((c) => xmlText(c[1])));
    }
  }
  return truth;
}

function fromHtml(src: string, file: string): Truth {
  const truth = emptyTruth("chromium");
  const body = /<body>([\s\S]*?)<\/body>/.exec(src)?.[1];
  if (body === undefined) throw new Error(`${file}: no <body>`);
  // Chromium prints the file's URL in the page footer.
  truth.runningText.push("file://");
  let section = "";
  const element = /<(h[1-3]|p|caption|tr)\b([^>]*)>([\s\S]*?)<\/\1>/g;
  for (const m of body.matchAll(element)) {
    const [, tag, attrs, inner] = m;
    if (tag === "h1") truth.title = xmlText(inner);
    else if (tag === "h2" || tag === "h3") {
      const h = numberedHeading(xmlText(inner));
      truth.sections.push({ ...h, level: tag === "h2" ? 1 : 2 });
      section = h.title;
    } else if (tag === "p") {
      if (/class="byline"/.test(attrs)) continue;
      truth.paragraphs.push({ section, text: xmlText(inner) });
    } else if (tag === "caption") truth.captions.push(xmlText(inner).replace(/^Table \d+\.\s*/, ""));
    else truth.tableRows.push([...inner.matchAll(/<t[hd]\b[^>]*>([\s\S]*?)<\/t[hd]>/g)].map((c) => xmlText(c[1])));
  }
  return truth;
}

if (require.main === module) {
  const [sourceFile, out] = process.argv.slice(2);
  if (!sourceFile || !out) {
    console.error("usage (from the repository root): node ground-truth.js <source.tex|.fodt|.html> <out.truth.json>");
    process.exit(2);
  }
  // Run from the repository root: `source` in the truth file is relative to it.
  fs.writeFileSync(out, JSON.stringify(groundTruth(path.resolve(sourceFile), process.cwd()), null, 1) + "\n");
}
