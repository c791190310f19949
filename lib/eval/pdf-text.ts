// The text of a PDF page as pdf.js reports it: positioned items, before layout. Its own file so
// that the layout passes (pdf-layout, pdf-line-numbers, pdf-running-text) and the extractor
// (pdf.ts) that runs them share the types without importing each other.

export interface PdfTextItem {
  text: string;
  x: number;
  /** Baseline, measured down from the top of the page. */
  y: number;
  width: number;
  /** Font size (the text matrix's vertical scale). */
  size: number;
  /** The font's PostScript name when pdf.js knows it (e.g. "Times-Bold", "ABCDEF+CMBX12"). */
  font: string;
  bold: boolean;
  /** False for rotated or vertical text (arXiv's margin stamp, axis labels). */
  horizontal: boolean;
}

export interface PdfPageText {
  page: number;
  width: number;
  height: number;
  items: PdfTextItem[];
}
