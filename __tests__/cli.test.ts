// clara-train as users run it: the built CLI (dist/tools/clara-train.js) in a child process, on a
// tiny random model. Every bad input exits 2 with one line naming the file, line and field;
// --json prints only JSON; Ctrl-C writes a checkpoint, exits 130 and prints a resume command
// that finishes with the same loss as an uninterrupted run; a non-finite loss exits 3 and leaves
// the last good checkpoint as it was; the pipeline skips stages that are already done.

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { readCheckpoint, writeCheckpoint } from "../lib/io/checkpoint";
import { readEndToEndRecords, readInstructionRecords } from "../lib/data/records";
import { writeTinyModel } from "../tools/tiny-model";
import { readConfigFile } from "../tools/commands/config-file";
import { pipelineEvalSettings, pipelineStageSettings } from "../tools/commands/resolve";
import { stageCommandSettings } from "../tools/commands/stage-settings";
import { assertBuilt } from "./helpers/built-cli";

const REPO = path.resolve(__dirname, "..");
const CLI = path.join(REPO, "dist", "tools", "clara-train.js");

let work: string;
let model: string;
let otherModel: string;
let s1: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], options: { cwd?: string } = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: options.cwd ?? work, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The one error line of a --quiet run that failed on bad input. */
function expectBadInput(r: Run): string {
  expect(r.code).toBe(2);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^clara-train: /);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  return lines[0];
}

function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

const TINY = ["--doc-max-length", "64", "--compression-rate", "16"];

beforeAll(() => {
  assertBuilt(CLI);

  work = fs.mkdtempSync(path.join(os.tmpdir(), "clara-cli-"));
  const lines = fs.readFileSync(path.join(REPO, "example", "pretrain.jsonl"), "utf8").split("\n").slice(0, 24);
  fs.writeFileSync(path.join(work, "pre.jsonl"), lines.join("\n") + "\n");
  const corpus = lines.map((l) => {
    const r = JSON.parse(l) as { docs: string[]; question: string[]; answers: string[] };
    return [r.docs[0], ...r.question, ...r.answers].join(" ");
  });
  model = path.join(work, "model");
  otherModel = path.join(work, "other-model");
  writeTinyModel(model, corpus, { hiddenSize: 32, layers: 2, heads: 4, kvHeads: 2, merges: 300, seed: 1 });
  writeTinyModel(otherModel, corpus, { hiddenSize: 32, layers: 2, heads: 4, kvHeads: 2, merges: 300, seed: 2 });

  // Stage-2/3 records derived by the CLI, and a finished stage-1 checkpoint for stages 2-3.
  const made = cli(["make-data", "--from", "pre.jsonl", "--instruction", "s2.jsonl", "--end-to-end", "s3.jsonl", "--k", "3", "--candidates", "6", "--quiet"]);
  expect(made.code).toBe(0);
  s1 = path.join(work, "ck", "s1.npz");
  const r = cli(["stage1", "--model", model, "--data", "pre.jsonl", ...TINY, "--batch-size", "2", "--max-steps", "4", "--out", s1, "--no-plots", "--quiet"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
}, 120_000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe("bad input: exit 2 and one line naming the file, line, field and fix", () => {
  const stage1 = (data: string, ...more: string[]) => cli(["stage1", "--model", model, "--data", data, ...TINY, "--max-steps", "2", "--out", "ck/bad.npz", "--no-plots", "--quiet", ...more]);
  const write = (name: string, text: string) => fs.writeFileSync(path.join(work, name), text);

  test("a missing JSONL file", () => {
    expect(expectBadInput(stage1("nope.jsonl"))).toMatch(/^clara-train: nope\.jsonl: --data: .*does not exist.*check the path/);
  });

  test("malformed JSONL (a broken line)", () => {
    write("broken.jsonl", `${fs.readFileSync(path.join(work, "pre.jsonl"), "utf8").split("\n")[0]}\n{"docs": [\n`);
    expect(expectBadInput(stage1("broken.jsonl"))).toMatch(/^clara-train: broken\.jsonl:2: not valid JSON .*fix or delete this line/);
  });

  test("a field of the wrong type", () => {
    write("types.jsonl", `${JSON.stringify({ docs: "a document", question: ["q?"], answers: ["a"] })}\n`);
    expect(expectBadInput(stage1("types.jsonl"))).toMatch(/^clara-train: types\.jsonl:1: docs: Expected an array of strings for "docs" but received string/);
    write("answers.jsonl", `${JSON.stringify({ docs: ["a document"], question: ["q?"], answers: [7] })}\n`);
    expect(expectBadInput(stage1("answers.jsonl"))).toMatch(/^clara-train: answers\.jsonl:1: answers\[0\]: /);
  });

  test("an empty document", () => {
    write("empty-doc.jsonl", `${JSON.stringify({ docs: ["   "], question: ["q?"], answers: ["a"] })}\n`);
    expect(expectBadInput(stage1("empty-doc.jsonl"))).toMatch(/^clara-train: empty-doc\.jsonl:1: docs\[0\]: Document 0 of "docs" is empty/);
  });

  test("an empty file", () => {
    write("empty.jsonl", "\n\n");
    expect(expectBadInput(stage1("empty.jsonl"))).toMatch(/^clara-train: empty\.jsonl: no records/);
  });

  test("stage 2 records with another number of documents than k", () => {
    const line = expectBadInput(cli(["stage2", "--from", s1, "--data", "s2.jsonl", "--k", "5", "--quiet", "--no-plots", "--out", "ck/bad2.npz"]));
    expect(line).toMatch(/^clara-train: s2\.jsonl:1: docs: Expected exactly 5 documents/);
  });

  test("documents longer than the document length are truncated with a warning that counts them", () => {
    const short = { docs: ["A short document about a town."], question: ["Which town?"], answers: ["a town"] };
    const long = { docs: [Array.from({ length: 80 }, (_, i) => `word${i}`).join(" ")], question: ["How long?"], answers: ["long"] };
    write("lengths.jsonl", [short, short, long, short].map((r) => JSON.stringify(r)).join("\n") + "\n");
    const r = cli(["stage1", "--model", model, "--data", "lengths.jsonl", ...TINY, "--max-steps", "1", "--out", "ck/len.npz", "--no-plots"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: 1 of 2 documents are longer than the document length \(64 tokens\) and will be truncated/);
  });

  test("a checkpoint for another compression rate or document length", () => {
    const args = ["stage2", "--from", s1, "--data", "s2.jsonl", "--k", "3", "--quiet", "--out", "ck/x.npz"];
    expect(expectBadInput(cli([...args, "--compression-rate", "8"]))).toMatch(
      /^clara-train: .*s1\.npz: clara\.compressionRate: was trained with compressionRate 16, not 8; pass --compression-rate 16/,
    );
    expect(expectBadInput(cli([...args, "--doc-max-length", "128"]))).toMatch(/clara\.docMaxLength: was trained with docMaxLength 64, not 128/);
  });

  test("a checkpoint for another base model", () => {
    const line = expectBadInput(cli(["stage2", "--from", s1, "--model", otherModel, "--data", "s2.jsonl", "--k", "3", "--quiet", "--no-plots", "--out", "ck/x.npz"]));
    expect(line).toMatch(/^clara-train: .*s1\.npz: base\.fingerprint: .*was trained on another base model/);
  });

  test("resuming with another compression rate", () => {
    const args = ["stage1", "--model", model, "--data", "pre.jsonl", "--doc-max-length", "64", "--max-steps", "2", "--out", "ck/r.npz", "--quiet", "--no-plots"];
    const out = path.join(work, "ck", "r.npz");
    expect(cli([...args, "--compression-rate", "16", "--checkpoint-every", "1", "--max-steps", "3"]).code).toBe(0);
    // Make it an unfinished run, then resume with another rate.
    const { entries, metadata } = readCheckpoint(out);
    writeCheckpoint(out, entries, { ...metadata, complete: false, step: 3 });
    const line = expectBadInput(cli([...args, "--compression-rate", "32", "--max-steps", "3", "--checkpoint-every", "1", "--resume"]));
    expect(line).toMatch(/r\.npz: compressionRate: cannot resume .*differs in .*compressionRate/);
  });

  test("missing model files", () => {
    expect(expectBadInput(stage1("pre.jsonl", "--model", path.join(work, "no-model")))).toMatch(/no-model: --model: the model does not exist; pass --model/);
    const partial = path.join(work, "partial-model");
    fs.mkdirSync(partial, { recursive: true });
    fs.copyFileSync(path.join(model, "config.json"), path.join(partial, "config.json"));
    fs.copyFileSync(path.join(model, "model.safetensors"), path.join(partial, "model.safetensors"));
    expect(expectBadInput(stage1("pre.jsonl", "--model", partial))).toMatch(/partial-model.*tokenizer/);
  });

  test("an unwritable output folder", () => {
    fs.writeFileSync(path.join(work, "a-file"), "not a folder");
    expect(expectBadInput(stage1("pre.jsonl", "--out", "a-file/sub/s1.npz"))).toMatch(/a-file\/sub: --out: cannot write to the folder .*a part of the path is a file/);
    expect(expectBadInput(stage1("pre.jsonl", "--results", "a-file/results"))).toMatch(/--results: cannot write to the folder/);
    if (process.getuid?.() !== 0) {
      const locked = path.join(work, "locked");
      fs.mkdirSync(locked, { mode: 0o500 });
      expect(expectBadInput(stage1("pre.jsonl", "--out", "locked/s1.npz"))).toMatch(/locked: --out: cannot write to the folder .*permission denied/);
    }
  });

  test("an unfinished run at --out is refused without --resume or --force (not overwritten); --force starts over", () => {
    const unfinished = path.join(work, "ck", "unfinished.npz");
    const { entries, metadata } = readCheckpoint(s1);
    writeCheckpoint(unfinished, entries, { ...metadata, complete: false, step: 2 });
    const before = sha256(unfinished);
    const args = ["stage1", "--model", model, "--data", "pre.jsonl", ...TINY, "--batch-size", "2", "--max-steps", "1", "--out", unfinished, "--no-plots", "--quiet"];
    const line = expectBadInput(cli(args));
    expect(line).toContain("unfinished.npz");
    expect(line).toMatch(/unfinished stage1 run \(update 2\): continue it with --resume, or start over with --force/);
    expect(sha256(unfinished)).toBe(before);
    expect(cli([...args, "--force"]).code).toBe(0);
    expect(readCheckpoint(unfinished).metadata).toMatchObject({ complete: true, step: 1 });
  });

  test("a document length past the model's context is refused before anything loads", () => {
    const line = expectBadInput(cli(["stage1", "--model", model, "--data", "pre.jsonl", "--doc-max-length", "100000", "--compression-rate", "16", "--quiet", "--no-plots", "--out", "ck/long.npz"]));
    expect(line).toMatch(/--doc-max-length: a document of 100000 tokens needs 106253 positions .* the model's context is 4096; lower --doc-max-length/);
  });

  test("--out that is a folder is refused before training", () => {
    fs.mkdirSync(path.join(work, "outdir"), { recursive: true });
    const line = expectBadInput(cli(["stage1", "--model", model, "--data", "pre.jsonl", ...TINY, "--max-steps", "1", "--out", "outdir", "--quiet", "--no-plots"]));
    expect(line).toMatch(/^clara-train: outdir: --out: is a folder; --out names the checkpoint file to write/);
  });

  test("a corrupt checkpoint names its path once", () => {
    const corrupt = path.join(work, "ck", "corrupt.npz");
    fs.writeFileSync(corrupt, fs.readFileSync(s1).subarray(0, 200));
    const line = expectBadInput(cli(["stage2", "--from", corrupt, "--data", "s2.jsonl", "--k", "3", "--quiet", "--no-plots", "--out", "ck/c2.npz"]));
    expect(line.split("corrupt.npz").length - 1).toBe(1);
    expect(line).toMatch(/corrupt\.npz: has no end-of-central-directory record.*It is not a readable \.npz \(zip\) archive/);
  });

  test("bad settings: flags, config keys and values name the file, line and key", () => {
    expect(expectBadInput(stage1("pre.jsonl", "--lr", "fast"))).toMatch(/^clara-train: --lr: must be a number/);
    expect(expectBadInput(stage1("pre.jsonl", "--lanes", "3"))).toBe("clara-train: --lanes: must be 1 or 2, got 3");
    expect(expectBadInput(stage1("pre.jsonl", "--learning-rate", "1"))).toMatch(/^clara-train: Unknown argument: --learning-rate \(see clara-train stage1 --help\)$/);
    fs.writeFileSync(path.join(work, "typo.yaml"), "seed: 1\nstage1:\n  lrr: 0.001\n");
    expect(expectBadInput(stage1("pre.jsonl", "--config", "typo.yaml"))).toBe('clara-train: typo.yaml:3: stage1.lrr: unknown setting; did you mean "lr"?');
    fs.writeFileSync(path.join(work, "value.json"), '{\n  "maxSteps": "many"\n}\n');
    expect(expectBadInput(stage1("pre.jsonl", "--config", "value.json"))).toBe('clara-train: value.json:2: maxSteps: must be an integer, got "many"');
    fs.writeFileSync(path.join(work, "syntax.yaml"), "lr: 1\nstage1: [\n");
    expect(expectBadInput(stage1("pre.jsonl", "--config", "syntax.yaml"))).toMatch(/^clara-train: syntax\.yaml:\d+: not valid YAML/);
    expect(expectBadInput(stage1("pre.jsonl", "--compression-rate", "128"))).toMatch(/--compression-rate: compressionRate 128 is larger than docMaxLength 64: no memory token is left/);
  });
});

describe("running", () => {
  test("--config sets defaults, flags override them, and the effective config is saved beside the checkpoint", () => {
    fs.writeFileSync(path.join(work, "run.yaml"), `model: ${model}\ndocMaxLength: 64\ncompressionRate: 16\nbatchSize: 2\nstage1:\n  data: pre.jsonl\n  maxSteps: 2\n  lr: 0.001\n`);
    const r = cli(["stage1", "--config", "run.yaml", "--max-steps", "3", "--out", "ck/cfg.npz", "--no-plots", "--quiet"]);
    expect(r.code).toBe(0);
    const saved = JSON.parse(fs.readFileSync(path.join(work, "ck", "cfg.config.json"), "utf8"));
    expect(saved.settings).toMatchObject({ maxSteps: 3, lr: 0.001, docMaxLength: 64, compressionRate: 16, data: "pre.jsonl", batchSize: 2, seed: 42 });
    const { metadata } = readCheckpoint(path.join(work, "ck", "cfg.npz"));
    expect(metadata.config).toMatchObject({ maxSteps: 3, lr: 0.001, settingsHash: saved.settingsHash, dataSha256: saved.inputs.dataSha256 });
    expect(metadata.step).toBe(3);
  });

  test("--json prints one JSON object per event and nothing else on stdout", () => {
    const r = cli(["stage1", "--model", model, "--data", "pre.jsonl", ...TINY, "--batch-size", "2", "--max-steps", "3", "--eval-split", "0.2", "--out", "ck/json.npz", "--no-plots", "--json"]);
    expect(r.code).toBe(0);
    const events = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { type: string; step?: number });
    const types = events.map((e) => e.type);
    expect(types.filter((t) => t === "step")).toHaveLength(3);
    expect(types).toEqual(expect.arrayContaining(["start", "step", "eval", "checkpoint", "end", "result"]));
    expect(types.indexOf("start")).toBeLessThan(types.indexOf("step"));
    expect(types[types.length - 1]).toBe("result");
    const result = events[events.length - 1] as unknown as { finalLoss: number; checkpoint: string; steps: number };
    expect(result.steps).toBe(3);
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    // Errors are JSON too.
    const bad = cli(["stage1", "--model", model, "--data", "nope.jsonl", "--json"]);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stdout.trim())).toMatchObject({ type: "error", exitCode: 2, file: "nope.jsonl", field: "--data" });
  });

  const interruptArgs = () => ["stage1", "--model", model, "--data", "pre.jsonl", ...TINY, "--batch-size", "1", "--max-steps", "20", "--eval-split", "0.1", "--no-plots"];
  let uninterrupted: { steps: number; finalLoss: number; evalLoss: number } | undefined;
  const fullRun = () => {
    if (uninterrupted) return uninterrupted;
    const full = cli([...interruptArgs(), "--out", "ck/full.npz", "--json"]);
    expect(full.code).toBe(0);
    return (uninterrupted = JSON.parse(full.stdout.trim().split("\n").pop()!));
  };

  // SIGTERM (timeout, docker stop, SLURM) and SIGHUP (a closing terminal) are treated as Ctrl-C.
  test.each(["SIGINT", "SIGTERM", "SIGHUP"] as const)("%s writes a checkpoint and exits 130; the printed resume command ends with the uninterrupted run's loss", async (signal) => {
    const args = interruptArgs();
    const fullResult = fullRun();
    const out = `ck/int-${signal}.npz`;
    const child = spawn(process.execPath, [CLI, ...args, "--out", out, "--json"], { cwd: work });
    let stdout = "";
    let stderr = "";
    let sent = false;
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.on("data", (d) => {
      stdout += d;
      if (!sent && stdout.includes('"type":"step"')) {
        sent = true;
        child.kill(signal);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code).toBe(130);
    const events = stdout.trim().split("\n").map((l) => JSON.parse(l));
    const end = events.find((e) => e.type === "end");
    expect(end).toMatchObject({ interrupted: true });
    expect(end.step).toBeLessThan(fullResult.steps);
    const ckpt = readCheckpoint(path.join(work, out)).metadata;
    expect(ckpt).toMatchObject({ complete: false, step: end.step });
    const resume = /resume with: npx clara-train (.*)$/m.exec(stderr);
    expect(resume).not.toBeNull();
    const resumeArgs = resume![1].split(" ");
    expect(resumeArgs).toContain("--resume");

    const resumed = cli(resumeArgs);
    expect(resumed.code).toBe(0);
    const result = JSON.parse(resumed.stdout.trim().split("\n").pop()!);
    expect(result.steps).toBe(fullResult.steps);
    expect(result.finalLoss).toBe(fullResult.finalLoss);
    expect(result.evalLoss).toBe(fullResult.evalLoss);
  });

  test("a non-finite loss stops with exit 3, names the update and the likely cause, and leaves the last good checkpoint untouched", () => {
    const args = ["stage2", "--data", "s2.jsonl", "--k", "3", "--batch-size", "2", "--max-steps", "2", "--out", "ck/s2.npz", "--no-plots", "--quiet"];
    expect(cli([...args, "--from", s1]).code).toBe(0);
    const good = path.join(work, "ck", "s2.npz");
    const before = sha256(good);
    // A stage-1 result whose memory-token embeddings diverged to NaN.
    const { entries, metadata } = readCheckpoint(s1);
    const poisoned = entries.map(([name, t]): [string, typeof t] =>
      name === "clara.mem_embeddings" ? [name, { ...t, data: new Float32Array(t.data.length).fill(Number.NaN) }] : [name, t],
    );
    const bad = path.join(work, "ck", "s1-nan.npz");
    writeCheckpoint(bad, poisoned, metadata);
    const r = cli([...args, "--from", bad]);
    expect(r.code).toBe(3);
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^clara-train: stage2 stopped at update 1: the loss became NaN or infinite .*likely cause: the starting checkpoint .*s1-nan\.npz/);
    expect(lines[0]).toMatch(/s2\.npz is untouched/);
    expect(sha256(good)).toBe(before);
  });

  test("make-data derives stage-2/3 records the readers accept", () => {
    expect(readInstructionRecords(path.join(work, "s2.jsonl"), { k: 3 }).records.length).toBeGreaterThan(10);
    const e2e = readEndToEndRecords(path.join(work, "s3.jsonl"), { candidates: 6 }).records;
    expect(e2e.every((r) => r.posIndex.length === 1)).toBe(true);
  });

  test("pipeline: three stages with curves; a second run skips what is done; a changed stage 3 retrains only stage 3", () => {
    fs.writeFileSync(
      path.join(work, "pipe.yaml"),
      [
        `model: ${model}`,
        "docMaxLength: 64",
        "compressionRate: 16",
        "batchSize: 2",
        "results: pres",
        "stage1: { data: pre.jsonl, maxSteps: 2, evalSplit: 0.2, out: pck/s1.npz }",
        "stage2: { data: s2.jsonl, k: 3, maxSteps: 2, out: pck/s2.npz }",
        "stage3: { data: s3.jsonl, k: 2, candidates: 4, maxSteps: 2, out: pck/s3.npz }",
        "skipEval: true",
      ].join("\n") + "\n",
    );
    const first = cli(["pipeline", "--config", "pipe.yaml"]);
    expect(first.code).toBe(0);
    for (const f of ["pck/s1.npz", "pck/s2.npz", "pck/s3.npz", "pck/s1.config.json", "pck/s3.config.json", "pres/stage1_loss.png", "pres/stage2_loss.png", "pres/stage3_loss.png", "pres/pipeline.json"]) {
      expect(fs.existsSync(path.join(work, f))).toBe(true);
    }
    const png = fs.readFileSync(path.join(work, "pres/stage1_loss.png"));
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect(first.stdout).toMatch(/^done in .*stopped after stage 3/m);

    const second = cli(["pipeline", "--config", "pipe.yaml"]);
    expect(second.code).toBe(0);
    for (const s of ["stage1", "stage2", "stage3"]) expect(second.stderr).toMatch(new RegExp(`${s}: pck/${s.replace("stage", "s")}\\.npz is complete and matches the config; skipping it`));

    const third = cli(["pipeline", "--config", "pipe.yaml", "--stage3.lr", "0.0001", "--json"]);
    expect(third.code).toBe(0);
    const events = third.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === "skip").map((e) => e.stage)).toEqual(["stage1", "stage2"]);
    expect(events.filter((e) => e.type === "start").map((e) => e.stage)).toEqual(["stage3"]);
    expect(third.stderr).toMatch(/stage3: retraining: the checkpoint was trained with other settings \(lr\)/);
  });

  test("clara index: build refuses an existing index and a stage-1 checkpoint before compressing; ask names --checkpoint when the index's checkpoint moved", () => {
    const clara = (args: string[]) => {
      const r = spawnSync(process.execPath, [path.join(REPO, "dist", "tools", "clara.js"), ...args], { cwd: work, encoding: "utf8", timeout: 60_000 });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const s3 = path.join(work, "pck", "s3.npz");
    expect(fs.existsSync(s3)).toBe(true); // from the pipeline test
    expect(clara(["index", "build", "pre.jsonl", "--checkpoint", s3, "--out", "idx", "--quiet"]).code).toBe(0);
    const again = clara(["index", "build", "pre.jsonl", "--checkpoint", s3, "--out", "idx", "--quiet"]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists; an index is never overwritten/);
    const stage1 = clara(["index", "build", "pre.jsonl", "--checkpoint", path.join(work, "pck", "s1.npz"), "--out", "idx1", "--quiet"]);
    expect(stage1.code).toBe(2);
    expect(stage1.stderr).toMatch(/no query_reasoner adapter/);
    expect(fs.existsSync(path.join(work, "idx1"))).toBe(false);
    const moved = path.join(work, "pck", "s3-moved.npz");
    fs.copyFileSync(s3, moved);
    fs.renameSync(s3, path.join(work, "pck", "s3-away.npz"));
    try {
      const lost = clara(["ask", "--index", "idx", "Who founded it?", "--max-tokens", "2"]);
      expect(lost.code).toBe(2);
      expect(lost.stderr).toMatch(/no longer exists \(moved\?\); pass --checkpoint/);
      expect(lost.stderr).not.toMatch(/--from/);
      expect(clara(["ask", "--index", "idx", "--checkpoint", moved, "Who founded it?", "--max-tokens", "2"]).code).toBe(0);
    } finally {
      fs.renameSync(path.join(work, "pck", "s3-away.npz"), s3);
    }
    // A 10^6-character question (through stdin: argv cannot hold it) is refused in one line, and
    // the interactive session answers the next question.
    const r = spawnSync(process.execPath, [path.join(REPO, "dist", "tools", "clara.js"), "ask", "--index", "idx", "--interactive", "--max-tokens", "2"], {
      cwd: work,
      encoding: "utf8",
      timeout: 120_000,
      input: `${"Velmora ".repeat(125_000)}\nWho founded it?\n`,
    });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/clara: prompt: a prompt of \d+ tokens plus 2 new tokens runs past the model's context of 4096 tokens/m);
    expect(r.stdout).toMatch(/\(\d+ ms: query/);
  });

  test("a 10^6-character document and question in the training data are truncated, with a warning, not a crash", () => {
    const huge = "Velmora ".repeat(125_000);
    fs.writeFileSync(path.join(work, "huge.jsonl"), JSON.stringify({ data_type: "qa", question: [huge], answers: ["x"], docs: [huge] }) + "\n" + fs.readFileSync(path.join(work, "pre.jsonl"), "utf8"));
    const r = cli(["stage1", "--model", model, "--data", "huge.jsonl", ...TINY, "--batch-size", "2", "--max-steps", "1", "--out", "ck/huge.npz", "--no-plots"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/truncated/);
  });

  test("stage 3 from a stage-1 checkpoint is allowed, as in the reference, with a warning", () => {
    const r = cli(["stage3", "--from", s1, "--data", "s3.jsonl", "--k", "2", "--candidates", "4", "--max-steps", "1", "--out", "ck/s3-from-1.npz", "--no-plots"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: stage3 starts from a stage-1 checkpoint .*stage 2 first usually answers better/);
  });

  test("the demo's settings are a valid config whose data files exist", () => {
    const cfg = readConfigFile(path.join(REPO, "tools", "commands", "demo.yaml"));
    for (const stage of ["stage1", "stage2", "stage3"] as const) {
      const { run, config } = stageCommandSettings(stage, pipelineStageSettings(stage, "demo", {}, cfg));
      for (const file of [run.data, run.evalData]) expect(fs.existsSync(path.join(REPO, file ?? "(none)"))).toBe(true);
      expect(config.maxSteps).toBeGreaterThan(0);
    }
    expect(pipelineEvalSettings("demo", {}, cfg)).toMatchObject({ maxQuestions: expect.any(Number) });
  });
});
