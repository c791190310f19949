// clara-eval as users run it: the built CLI (dist/tools/clara-eval.js) in a child process, on a
// tiny random model and the committed sample paper. `run` ends with the score table (the
// numbers of results/<stage>_eval.json) before the report's path; `make-qa --help` and
// `run --help` show the question-file format with an example line that is itself valid; a
// malformed question file exits 2 with one line naming the file, line and field and the shape
// to write.

import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClaraModel } from "../lib/clara/clara-model";
import { QA_EXAMPLE_LINE } from "../lib/eval/qa-set";
import type { ModelEvaluation } from "../lib/eval/evaluation";
import { SAMPLE_PAPER } from "../tools/sample-paper";
import { writeTinyModel } from "../tools/tiny-model";
import { assertBuilt, REPO } from "./helpers/built-cli";

const CLI = path.join(REPO, "dist", "tools", "clara-eval.js");
const PDF = path.join(REPO, "knowledge_data", "sample_paper.pdf");

let work: string;

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: work, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  assertBuilt(CLI);
  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-eval-cli-"));
  writeTinyModel(path.join(work, "tiny"), SAMPLE_PAPER.blocks.map((b) => b.text), { merges: 400 });
  const clara = await ClaraModel.create(path.join(work, "tiny"), { compressionRate: 8, docMaxLength: 64 });
  await clara.model.copyAdapter("compressor", "query_reasoner");
  await clara.save(path.join(work, "stage3.npz"), { stage: "stage3", step: 0, complete: true });
  await clara.dispose();
}, 60_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

test("run prints the score table, then the report's path", () => {
  const r = cli(["run", "--checkpoint", "stage3.npz", "--pdf", PDF, "--out", "results", "--max-questions", "3", "--max-new-tokens", "2", "--max-compression-chunks", "2", "--no-untrained", "--quiet"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const lines = r.stdout.trimEnd().split("\n");
  expect(lines[0]).toBe("Scores on sample_paper: 3 questions, 3 with a gold chunk (recall is over those); top-k 5");
  expect(lines[1].trim()).toBe("stage3");
  expect(lines[lines.length - 1]).toBe(`report: ${path.join("results", "final_report.md")}`);
  const e = JSON.parse(fs.readFileSync(path.join(work, "results", "stage3_eval.json"), "utf8")) as ModelEvaluation;
  const f = (x: number) => x.toFixed(3);
  const cells = (label: string) => lines.find((l) => l.includes(label))!.trim().split(/\s{2,}/).slice(1);
  const zero = e.scenarios.zero_shot.aggregate.overall;
  expect(cells("1. zero-shot")).toEqual([`${f(zero.f1)} / ${f(zero.acc)} / ${f(zero.em)}`]);
  const qr = e.scenarios.rag.variants["clara+compressed"].aggregate.overall;
  expect(cells("query reasoner + compressed")).toEqual([`${f(qr.f1)} / ${f(qr.acc)} / ${f(qr.em)}`]);
  const bm = e.scenarios.rag.retrieval.bm25!.overall;
  expect(cells("BM25 (text)")).toEqual([`${f(bm["recall@1"])} / ${f(bm["recall@3"])} / ${f(bm["recall@5"])}`]);
  expect(lines.some((l) => l.startsWith("Compression: ROUGE-L / cosine"))).toBe(true);
  // --json: one object with the same numbers.
  const j = cli(["report", "--out", "results", "--json"]);
  expect(j.code).toBe(0);
  const out = JSON.parse(j.stdout);
  expect(out.scores[0]).toMatchObject({ label: "stage3", questions: 3, withGoldChunk: 3, answers: { zero_shot: { f1: zero.f1, acc: zero.acc, em: zero.em } } });
}, 120_000);

test("make-qa --help and run --help show the question format with a valid example line", () => {
  for (const command of ["make-qa", "run"]) {
    const r = cli([command, "--help"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines).toContain(QA_EXAMPLE_LINE);
    for (const field of ["id", "question", "answer", "category", "keywords", "evidence"]) expect(lines.some((l) => l.startsWith(`  ${field} `))).toBe(true);
  }
  fs.writeFileSync(path.join(work, "example.jsonl"), QA_EXAMPLE_LINE + "\n");
  const bad = JSON.parse(QA_EXAMPLE_LINE);
  fs.writeFileSync(path.join(work, "bad.jsonl"), `${QA_EXAMPLE_LINE}\n${JSON.stringify({ ...bad, id: 2, category: "trivia" })}\n`);
  const r = cli(["run", "--checkpoint", "stage3.npz", "--pdf", PDF, "--qa", "bad.jsonl", "--out", "bad-results", "--quiet"]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toEqual([
    'clara-eval: bad.jsonl:2: category: Expected one of factual, technical, detailed, comparative, numeric for category but received string "trivia"; write "category": "numeric" (one of factual, technical, detailed, comparative, numeric)',
  ]);
});
