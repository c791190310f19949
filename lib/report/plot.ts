// Charts as PNG files: a vega-lite spec rendered to SVG by vega (no canvas), then to PNG by
// resvg. Training curves and evaluation bar charts both come through here.

import { importEsm } from "../esm";
import { writeFileAtomic } from "../io/atomic";

export interface LineSeries {
  name: string;
  points: Array<[number, number]>;
}

export interface BarDatum {
  group: string;
  label: string;
  value: number;
}

// vega and vega-lite are ESM with top-level await: they cannot be require()d, only imported
// (importEsm, which also works inside jest).
async function renderPng(spec: object, width = 960): Promise<Uint8Array> {
  const vega = await importEsm("vega");
  const vl = await importEsm("vega-lite");
  const { Resvg } = await import("@resvg/resvg-js");
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  const svg: string = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { background: "white", fitTo: { mode: "width", value: width }, font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" } })
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

/** Grouped bars (e.g. a score per scenario, grouped by stage). */
export async function barChartPng(options: { title: string; yLabel: string; data: BarDatum[] }): Promise<Uint8Array> {
  return renderPng({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: options.title,
    width: { step: 28 },
    height: 300,
    data: { values: options.data },
    mark: "bar",
    encoding: {
      x: { field: "label", type: "nominal", title: null },
      xOffset: { field: "label" },
      column: { field: "group", type: "nominal", title: null },
      y: { field: "value", type: "quantitative", title: options.yLabel },
      color: { field: "label", type: "nominal", title: null },
    },
  });
}

export async function writePng(file: string, png: Promise<Uint8Array> | Uint8Array): Promise<string> {
  writeFileAtomic(file, await png);
  return file;
}
