// Bar charts (lib/report/plot.ts) as rendered by vega to SVG: groups along x in the order given
// (the report's scenario order, not alphabetical or data order), a 0–1 y axis for scores that
// reaches below 0 only for a negative value, and x labels that wrap to their band so that no two
// label boxes intersect, measured in the chart's font (lib/report/text-width.ts). The report's
// charts (report.ts evaluationCharts) list the scenarios in the report's order.

import { barChartSpec, renderSvg, type BarDatum } from "../lib/report/plot";
import { textWidth, wrapText } from "../lib/report/text-width";
import { ANSWER_ROWS, evaluationCharts } from "../lib/eval/report";
import type { ModelEvaluation } from "../lib/eval/evaluation";

interface Label {
  x: number;
  y: number;
  lines: string[];
}

/** The tick labels of one axis ("X" or "Y") in a vega SVG, with their anchor positions. */
function axisLabels(svg: string, axis: "X" | "Y"): Label[] {
  const start = svg.indexOf(`aria-label="${axis}-axis`);
  expect(start).toBeGreaterThan(0);
  const group = svg.slice(start, svg.indexOf("role-axis-domain", start));
  return [...group.matchAll(/<text[^>]*transform="translate\(([-\d.e]+),([-\d.e]+)\)"[^>]*>(.*?)<\/text>/g)].map((m) => {
    const tspans = [...m[3].matchAll(/<tspan[^>]*>(.*?)<\/tspan>/g)].map((t) => t[1]);
    return { x: Number(m[1]), y: Number(m[2]), lines: tspans.length ? tspans : [m[3]] };
  });
}

/** A centred x label's box: its widest line, its lines stacked 12 px apart below the anchor. */
function box(l: Label, fontSize = 10) {
  const w = Math.max(...l.lines.map((t) => textWidth(t, fontSize)));
  return { x0: l.x - w / 2, x1: l.x + w / 2, y0: l.y - fontSize, y1: l.y + (l.lines.length - 1) * 12 + 3 };
}

const intersect = (a: ReturnType<typeof box>, b: ReturnType<typeof box>) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

const MODELS = ["stage1", "stage2", "stage3", "untrained"];
const LONG = ANSWER_ROWS.map((r) => r.label); // "2. RAG: query reasoner + compressed (CLaRa)", ...

function data(groups: string[], value = (i: number, j: number) => 0.05 * (i + j)): BarDatum[] {
  // Deliberately not in the display order: the chart must not depend on the data's order.
  return [...groups].reverse().flatMap((g, i) => [...MODELS].reverse().map((label, j) => ({ group: g, label, value: value(i, j) })));
}

describe("bar charts", () => {
  test("groups in the given order, bars and legend in the series order", async () => {
    const svg = await renderSvg(barChartSpec({ title: "F1", yLabel: "F1", data: data(LONG), groups: LONG, series: MODELS }));
    const xs = axisLabels(svg, "X");
    expect(xs.map((l) => l.lines.join(" "))).toEqual(LONG);
    expect(xs.map((l) => l.x)).toEqual([...xs.map((l) => l.x)].sort((a, b) => a - b));
    const legend = [...svg.matchAll(/<text[^>]*>(stage\d|untrained)<\/text>/g)].map((m) => m[1]);
    expect(legend).toEqual(MODELS);
  });

  test("labels wrap to their band: no two label boxes intersect", async () => {
    for (const groups of [LONG, ["zero-shot", "BM25+raw", "BM25+compressed", "CLaRa+compressed", "CLaRa+raw"], ["a-very-long-unbreakable-scenario-name", "another_unbreakable_name_that_is_long", "x"]]) {
      for (const series of [MODELS.slice(0, 1), MODELS]) {
        const svg = await renderSvg(barChartSpec({ title: "t", yLabel: "F1", data: data(groups).filter((d) => series.includes(d.label)), groups, series }));
        const boxes = axisLabels(svg, "X").map((l) => box(l));
        expect(boxes.length).toBe(groups.length);
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) expect({ groups, i, j, overlap: intersect(boxes[i], boxes[j]) }).toEqual({ groups, i, j, overlap: false });
      }
    }
    // The long labels did need wrapping: on one line they would overlap.
    const svg = await renderSvg(barChartSpec({ title: "t", yLabel: "F1", data: data(LONG), groups: LONG }));
    const one = axisLabels(svg, "X").map((l) => box({ ...l, lines: [l.lines.join(" ")] }));
    expect(one.some((b, i) => i > 0 && intersect(one[i - 1], b))).toBe(true);
  });

  test("wrapping breaks at spaces and after + / -, keeps unbreakable pieces whole", () => {
    expect(wrapText("BM25+compressed", textWidth("compressed", 10) + 1, 10)).toEqual(["BM25+", "compressed"]);
    expect(wrapText("query reasoner + compressed", 1, 10)).toEqual(["query", "reasoner", "+", "compressed"]);
    expect(wrapText("zero-shot", 1000, 10)).toEqual(["zero-shot"]);
  });

  test("the y axis runs from 0 to 1 for scores, below 0 only when a value is", async () => {
    const ticks = async (values: (i: number, j: number) => number) => {
      const svg = await renderSvg(barChartSpec({ title: "t", yLabel: "score", data: data(["a", "b"], values) }));
      const ys = axisLabels(svg, "Y");
      const top = ys.reduce((a, b) => (b.y < a.y ? b : a));
      const bottom = ys.reduce((a, b) => (b.y > a.y ? b : a));
      const value = (t: string) => Number(t.replace("\u2212", "-")); // d3-format writes a minus sign
      return [value(bottom.lines[0]), value(top.lines[0])];
    };
    expect(await ticks(() => 0.2)).toEqual([0, 1]);
    expect(await ticks(() => 0)).toEqual([0, 1]);
    const negative = (i: number, j: number) => (i === 0 && j === 0 ? -0.3 : 0.5);
    const [low, high] = await ticks(negative);
    expect(low).toBeLessThan(0);
    expect(high).toBe(1);
    const spec = barChartSpec({ title: "t", yLabel: "score", data: data(["a", "b"], negative) }) as { encoding: { y: { scale: { domain: number[] } } } };
    expect(spec.encoding.y.scale.domain).toEqual([-0.3, 1]);
  });
});

describe("the report's charts", () => {
  test("scenarios in the report's order, models in the evaluations' order", () => {
    const agg = (f1: number) => ({ aggregate: { overall: { f1, acc: f1, em: 0 } } });
    const evaluation = (label: string, clara: boolean) =>
      ({
        label,
        scenarios: {
          zero_shot: agg(0.1),
          rag: {
            retrieval: { bm25: { overall: { "recall@1": 0.1, "recall@3": 0.2, "recall@5": 0.3 } }, ...(clara ? { clara: { overall: { "recall@1": 0.4, "recall@3": 0.5, "recall@5": 0.6 } } } : {}) },
            variants: { "bm25+raw": agg(0.2), "bm25+compressed": agg(0.3), ...(clara ? { "clara+raw": agg(0.5), "clara+compressed": agg(0.4) } : {}) },
          },
          compression: { aggregate: { cosine: -0.1, rougeL: 0.2, tokenF1: 0.3 } },
        },
      }) as unknown as ModelEvaluation;
    // Stage 1 has no query reasoner; its scenarios come first in the data, the report's order must win.
    const charts = evaluationCharts([evaluation("stage1", false), evaluation("stage3", true), evaluation("untrained", false)]);
    expect(charts.map((c) => c.file)).toEqual(["eval_f1.png", "eval_acc.png", "eval_retrieval.png", "eval_compression.png"]);
    const f1 = charts[0].chart;
    expect(f1.groups).toEqual(["zero-shot", "BM25+raw", "BM25+compressed", "CLaRa+compressed", "CLaRa+raw"]);
    expect(f1.series).toEqual(["stage1", "stage3", "untrained"]);
    expect(f1.data.filter((d) => d.group === "CLaRa+raw").map((d) => [d.label, d.value])).toEqual([["stage3", 0.5]]);
    expect([...new Set(charts[2].chart.data.map((d) => d.group))]).toEqual(["BM25 R@1", "BM25 R@3", "BM25 R@5", "query reasoner R@1", "query reasoner R@3", "query reasoner R@5"]);
    expect([...new Set(charts[3].chart.data.map((d) => d.group))]).toEqual(["cosine", "ROUGE-L", "token F1"]);
  });
});
