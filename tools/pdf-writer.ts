// A minimal PDF 1.4 writer: numbered objects, uncompressed content streams, the base-14 fonts
// (not embedded) with their AFM widths, and a cross-reference table. It writes the sample paper
// (tools/make-sample-pdf.ts) and the malformed fixtures of the PDF tests; the output is the same
// bytes for the same calls (no dates, no ids unless asked).

export type Base14Font = "Helvetica" | "Helvetica-Bold" | "Times-Roman";

// Advance widths (1/1000 em) of the printable ASCII characters 32..126, from Adobe's AFM files
// for the standard fonts (the same numbers pdf.js and every PDF viewer use for them).
// prettier-ignore
const WIDTHS: Record<Base14Font, readonly number[]> = {
  Helvetica: [278,278,355,556,556,889,667,191,333,333,389,584,278,333,278,278,556,556,556,556,556,556,556,556,556,556,278,278,584,584,584,556,1015,667,667,722,722,667,611,778,722,278,500,667,556,833,722,778,667,778,722,667,611,722,667,944,667,667,611,278,278,278,469,556,333,556,556,500,556,556,278,556,556,222,222,500,222,833,556,556,556,556,333,500,278,556,500,722,500,500,500,334,260,334,584],
  "Helvetica-Bold": [278,333,474,556,556,889,722,238,333,333,389,584,278,333,278,278,556,556,556,556,556,556,556,556,556,556,333,333,584,584,584,611,975,722,722,722,722,667,611,778,722,278,556,722,611,833,722,778,667,778,722,667,611,722,667,944,667,667,611,333,278,333,584,556,333,556,611,556,611,556,333,611,611,278,278,556,278,889,611,611,611,611,389,556,333,611,556,778,556,556,500,389,280,389,584],
  "Times-Roman": [250,333,408,500,500,833,778,180,333,333,500,564,250,333,250,278,500,500,500,500,500,500,500,500,500,500,278,278,564,564,564,444,921,722,667,667,722,611,556,722,722,333,389,722,611,889,722,722,556,722,667,556,611,722,722,944,722,722,611,333,278,333,469,500,333,444,500,444,500,444,333,500,500,278,278,500,278,778,500,500,500,500,333,389,278,500,500,722,500,500,444,480,200,480,541],
};

/** The advance width of `text` in points at `size` (printable ASCII only). */
export function textWidth(text: string, font: Base14Font, size: number): number {
  let w = 0;
  for (let i = 0; i < text.length; i++) w += WIDTHS[font][checkedCode(text, i) - 32];
  return (w * size) / 1000;
}

function checkedCode(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 32 || c > 126) throw new Error(`pdf-writer: only printable ASCII is supported, got U+${c.toString(16)} in ${JSON.stringify(text)}`);
  return c;
}

/** A PDF literal string: ( ) and \ escaped. */
export function pdfString(text: string): string {
  for (let i = 0; i < text.length; i++) checkedCode(text, i);
  return "(" + text.replace(/[\\()]/g, (c) => "\\" + c) + ")";
}

/** A number as PDF writes it: at most 3 decimals, no exponent, no trailing zeros. */
export function num(x: number): string {
  const s = (Math.round(x * 1000) / 1000).toFixed(3).replace(/\.?0+$/, "");
  return s === "-0" ? "0" : s;
}

export interface PdfPage {
  width: number;
  height: number;
  /** The page's content stream (PDF operators). */
  content: string;
  /** Image XObjects drawn by the content as /Im0, /Im1, ...: 8-bit grey samples. */
  images?: Array<{ width: number; height: number; gray: Uint8Array }>;
}

export interface PdfDocumentOptions {
  /** Fonts the pages use, as /F1, /F2, ... in this order. */
  fonts: Base14Font[];
  /** The document information dictionary's /Title and /Producer. */
  title?: string;
  producer?: string;
  /** Adds a standard security handler whose user password is not empty (for tests). */
  passwordProtected?: boolean;
}

/** Serialises pages into a complete PDF file. */
export function writePdf(pages: PdfPage[], options: PdfDocumentOptions): Uint8Array {
  const objects: Array<string | Uint8Array[]> = [];
  const add = (body: string | Uint8Array[]) => objects.push(body) as number; // object number = index + 1
  const catalog = add("");
  const pagesObj = add("");
  const fontIds = options.fonts.map((f) => add(`<< /Type /Font /Subtype /Type1 /BaseFont /${f} /Encoding /WinAnsiEncoding >>`));
  const fontDict = `<< ${fontIds.map((id, i) => `/F${i + 1} ${id} 0 R`).join(" ")} >>`;
  const kids: number[] = [];
  for (const page of pages) {
    const imageIds = (page.images ?? []).map((im) => {
      if (im.gray.length !== im.width * im.height) throw new Error("pdf-writer: image samples do not match its size");
      return add([
        latin1(`<< /Type /XObject /Subtype /Image /Width ${im.width} /Height ${im.height} /ColorSpace /DeviceGray /BitsPerComponent 8 /Length ${im.gray.length} >>\nstream\n`),
        im.gray,
        latin1("\nendstream"),
      ]);
    });
    const content = add(`<< /Length ${page.content.length} >>\nstream\n${page.content}\nendstream`);
    const xobjects = imageIds.length ? ` /XObject << ${imageIds.map((id, i) => `/Im${i} ${id} 0 R`).join(" ")} >>` : "";
    kids.push(
      add(
        `<< /Type /Page /Parent ${pagesObj} 0 R /MediaBox [0 0 ${num(page.width)} ${num(page.height)}] ` +
          `/Resources << /Font ${fontDict}${xobjects} >> /Contents ${content} 0 R >>`,
      ),
    );
  }
  objects[catalog - 1] = `<< /Type /Catalog /Pages ${pagesObj} 0 R >>`;
  objects[pagesObj - 1] = `<< /Type /Pages /Kids [${kids.map((k) => `${k} 0 R`).join(" ")}] /Count ${kids.length} >>`;
  const infoFields = [options.title ? `/Title ${pdfString(options.title)}` : "", options.producer ? `/Producer ${pdfString(options.producer)}` : ""].filter(Boolean);
  const info = infoFields.length ? add(`<< ${infoFields.join(" ")} >>`) : 0;
  // Revision-2 standard security with made-up /O and /U entries: no password opens it, which is
  // all a reader needs to see to report "password required".
  const encrypt = options.passwordProtected
    ? add(`<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 /O <${"4f".repeat(32)}> /U <${"55".repeat(32)}> >>`)
    : 0;

  const parts: Uint8Array[] = [latin1("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")];
  let offset = parts[0].length;
  const offsets: number[] = [];
  objects.forEach((body, i) => {
    offsets.push(offset);
    const chunk = [latin1(`${i + 1} 0 obj\n`), ...(typeof body === "string" ? [latin1(body)] : body), latin1("\nendobj\n")];
    for (const c of chunk) {
      parts.push(c);
      offset += c.length;
    }
  });
  const xref =
    `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n` +
    offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("") +
    `trailer\n<< /Size ${objects.length + 1} /Root ${catalog} 0 R` +
    (info ? ` /Info ${info} 0 R` : "") +
    (encrypt ? ` /Encrypt ${encrypt} 0 R /ID [<${"00".repeat(16)}> <${"00".repeat(16)}>]` : "") +
    ` >>\nstartxref\n${offset}\n%%EOF\n`;
  parts.push(latin1(xref));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function latin1(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
}
