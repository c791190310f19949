// Widths of chart text in pixels, so that a chart's layout can make its labels fit (wrap them,
// widen the bands) instead of letting them overlap. Charts name one font (CHART_FONT) for vega's
// SVG, for resvg's rasterising and for this measurement, so the three agree. Where that font is
// not installed, widths are vega's own estimate (0.8 em per character), which is wider than
// real text in the fonts that replace it: labels then get more room than they need, not less.

import { createCanvas, GlobalFonts, type SKRSContext2D } from "@napi-rs/canvas";

export const CHART_FONT = "DejaVu Sans";

let context: SKRSContext2D | null | undefined;

function measuringContext(): SKRSContext2D | null {
  if (context === undefined) context = GlobalFonts.has(CHART_FONT) ? createCanvas(1, 1).getContext("2d") : null;
  return context;
}

/** Width of one line of `text` at `fontSize` px in CHART_FONT. */
export function textWidth(text: string, fontSize: number, bold = false): number {
  const ctx = measuringContext();
  if (!ctx) return 0.8 * fontSize * [...text].length;
  ctx.font = `${bold ? "bold " : ""}${fontSize}px "${CHART_FONT}"`;
  return ctx.measureText(text).width;
}

/**
 * `text` broken into lines no wider than `maxWidth`, at spaces and after "+", "/" and "-"
 * (so "BM25+compressed" can become "BM25+" / "compressed"). A piece wider than maxWidth on its
 * own stays whole, on its own line: the caller sizes the room by widestPiece().
 */
export function wrapText(text: string, maxWidth: number, fontSize: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const piece of pieces(text)) {
    const candidate = line + piece;
    if (line !== "" && textWidth(candidate.trimEnd(), fontSize) > maxWidth) {
      lines.push(line.trimEnd());
      line = piece.trimStart();
    } else line = candidate;
  }
  if (line.trim() !== "") lines.push(line.trimEnd());
  return lines;
}

/** The widest piece wrapText cannot break. */
export function widestPiece(text: string, fontSize: number): number {
  return Math.max(0, ...pieces(text).map((p) => textWidth(p.trim(), fontSize)));
}

function pieces(text: string): string[] {
  return text.split(/(?<=[ +/-])/).filter((p) => p !== "");
}
