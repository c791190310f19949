// Charts as PNG files: a vega-lite spec rendered to SVG by vega (no canvas), then to PNG by
// resvg. Training curves and evaluation bar charts both come through here. All text is in one
// font (CHART_FONT), measured by text-width.ts for vega's layout and for the bar chart's labels.

import { importEsm } from "../esm";
import { writeFileAtomic } from "../io/atomic";
import { CHART_FONT, textWidth, widestPiece, wrapText } from "./text-width";

export interface LineSeries {
  name: string;
  points: Array<[number, number]>;
}

export interface BarDatum {
  group: string;
  label: string;
  value: number;
}

/** Axis label size of the bar charts, in px (what their label layout measures). */
const LABEL_FONT_SIZE = 10;

// vega and vega-lite are ESM with top-level await: they cannot be require()d, only imported
// (importEsm, which also works inside jest).
export async function renderSvg(spec: object): Promise<string> {
  const vega = await importEsm("vega");
  const vl = await importEsm("vega-lite");
  // vega lays out titles and legends with this width (without it, a rough estimate).
  vega.textMetrics.width = (item: { fontSize?: number; fontWeight?: string | number }, text: string) =>
    textWidth(String(text ?? ""), item.fontSize ?? 11, item.fontWeight === "bold" || Number(item.fontWeight) >= 600);
  const view = new vega.View(vega.parse(vl.compile({ ...spec, config: { font: CHART_FONT, axis: { labelFontSize: LABEL_FONT_SIZE } } }).spec), { renderer: "none" });
  const svg: string = await view.toSVG();
  view.finalize();
  return svg;
}

async function renderPng(spec: object, width = 960): Promise<Uint8Array> {
  const svg = await renderSvg(spec);
  const { Resvg } = await import("@resvg/resvg-js");
  const png = new Resvg(svg, { background: "white", fitTo: { mode: "width", value: width }, font: { loadSystemFonts: true, defaultFontFamily: CHART_FONT } })
    .render()
    .asPng();
  return new Uint8Array(png);
}

/** A line chart of one or more series (e.g. training and evaluation loss over steps). */
export async function lineChartPng(options: { title: string; xLabel: string; yLabel: string; series: LineSeries[] }): Promise<Uint8Array> {
  const values = options.series.flatMap((s) => s.points.map(([x, y]) => ({ series: s.name, x, y })));
  return renderPng({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title,
    width: 640,
    height: 320,
    data: { values },
    mark: { type: "line", point: values.length <= 60 },
    encoding: {
      x: { field: "x", type: "quantitative", title: options.xLabel },
      y: { field: "y", type: "quantitative", title: options.yLabel, scale: { zero: false } },
      color: { field: "series", type: "nominal", title: null },
    },
  });
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  data: BarDatum[];
  /** Groups along x, in this order (default: as they first appear in data). */
  groups?: string[];
  /** Bars within a group (and legend entries), in this order (default: as they first appear). */
  series?: string[];
  /** The y axis range; default [0, 1] (scores), reaching below 0 when a value does (a negative cosine). */
  yDomain?: [number, number];
}

/** Width of one bar, px. */
const BAR_WIDTH = 20;
/** Least space between two neighbouring x labels, px. */
const LABEL_GAP = 12;

/**
 * The vega-lite spec of grouped bars: a group per x band, its bars side by side, one colour per
 * series with a legend. Bands are wide enough for their bars and for the widest word of any
 * group label; labels wrap to the band, so neighbouring labels cannot overlap.
 */
export function barChartSpec(options: BarChartOptions): object {
  const firstSeen = (key: "group" | "label") => [...new Set(options.data.map((d) => d[key]))];
  const groups = options.groups ?? firstSeen("group");
  const series = options.series ?? firstSeen("label");
  const step = Math.ceil(Math.max(series.length * BAR_WIDTH + LABEL_GAP, ...groups.map((g) => widestPiece(g, LABEL_FONT_SIZE) + LABEL_GAP), 90));
  const wrapped = new Map(groups.map((g) => [g, wrapText(g, step - LABEL_GAP, LABEL_FONT_SIZE).join("\n")]));
  const low = Math.min(0, ...options.data.map((d) => d.value).filter(Number.isFinite));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title,
    width: { step, for: "position" },
    height: 300,
    data: { values: options.data.filter((d) => groups.includes(d.group)).map((d) => ({ ...d, group: wrapped.get(d.group) })) },
    mark: "bar",
    encoding: {
      x: {
        field: "group",
        type: "nominal",
        sort: groups.map((g) => wrapped.get(g)),
        title: null,
        axis: { labelAngle: 0, labelExpr: "split(datum.label, '\\n')", labelLimit: 0 },
      },
      xOffset: { field: "label", type: "nominal", sort: series },
      y: { field: "value", type: "quantitative", title: options.yLabel, scale: { domain: options.yDomain ?? [low, 1] } },
      color: { field: "label", type: "nominal", title: null, sort: series },
    },
  };
}

/** Grouped bars (e.g. a score per scenario, one bar per model), see barChartSpec. */
export async function barChartPng(options: BarChartOptions): Promise<Uint8Array> {
  return renderPng(barChartSpec(options));
}

export async function writePng(file: string, png: Promise<Uint8Array> | Uint8Array): Promise<string> {
  writeFileAtomic(file, await png);
  return file;
}
