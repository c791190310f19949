// The dev-only Python environment (.venv/) that holds the test oracles (numpy, Python MLX):
// created on first use from tools/setup/python-requirements.txt, recreated when that file
// changes. Returns the interpreter, or null with the reason when it cannot be made here.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const crypto = require("node:crypto");
const { spawnSync } = require("node:child_process");

const ROOT = path.resolve(__dirname, "..", "..");
const VENV = path.join(ROOT, ".venv");
const REQUIREMENTS = path.join(__dirname, "python-requirements.txt");

function venvPython() {
  return process.platform === "win32" ? path.join(VENV, "Scripts", "python.exe") : path.join(VENV, "bin", "python");
}

function ensurePythonEnv({ log = () => {} } = {}) {
  if (process.env.CLARA_PYTHON) return { python: process.env.CLARA_PYTHON, reason: null };
  const digest = crypto.createHash("sha256").update(fs.readFileSync(REQUIREMENTS)).digest("hex");
  const stamp = path.join(VENV, ".clara-requirements");
  if (fs.existsSync(venvPython()) && fs.existsSync(stamp) && fs.readFileSync(stamp, "utf8") === digest) {
    return { python: venvPython(), reason: null };
  }
  const base = ["python3", "python"].find((p) => spawnSync(p, ["-c", "import venv, ensurepip"]).status === 0);
  if (!base) return { python: null, reason: "no python3 with venv/ensurepip (Debian: apt-get install -y python3-venv)" };
  log(`creating the Python test oracle in ${path.relative(ROOT, VENV)} (numpy, mlx)`);
  fs.rmSync(VENV, { recursive: true, force: true });
  let r = spawnSync(base, ["-m", "venv", VENV], { stdio: "inherit" });
  if (r.status !== 0) return { python: null, reason: `${base} -m venv failed` };
  r = spawnSync(venvPython(), ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS], {
    stdio: "inherit",
  });
  if (r.status !== 0) return { python: null, reason: "pip could not install tools/setup/python-requirements.txt" };
  fs.writeFileSync(stamp, digest);
  return { python: venvPython(), reason: null };
}

module.exports = { ensurePythonEnv, venvPython };
