// Linux CPU only: MLX sends float32 matmul to cblas_sgemm. The mlx-cpu wheel grafts Debian's
// reference BLAS/LAPACK into mlx_cpu.libs/ (about 5 GFLOP/s here); OpenBLAS is ~40x faster.
// We point those grafted names at the system's OpenBLAS, installing it when we may.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const APT_PACKAGE = "libopenblas0-pthread";

function findOpenBlas() {
  const r = spawnSync("ldconfig", ["-p"], { encoding: "utf8" });
  const fromCache = (r.stdout || "")
    .split("\n")
    .map((line) => line.match(/^\s*libopenblas\.so\.0 \((?:libc6,)?x86-64\) => (.+)$/))
    .find(Boolean);
  if (fromCache && fs.existsSync(fromCache[1])) return fromCache[1];
  const known = ["/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib64/libopenblas.so.0", "/usr/lib/libopenblas.so.0"];
  return known.find((p) => fs.existsSync(p)) || null;
}

function aptInstall(log) {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return false;
  if (spawnSync("apt-get", ["--version"]).status !== 0) return false;
  log(`installing ${APT_PACKAGE} with apt-get (fast BLAS for MLX's CPU backend)`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => spawnSync("apt-get", ["install", "-y", "-q", APT_PACKAGE], { stdio: "ignore", env }).status === 0;
  if (install()) return true;
  spawnSync("apt-get", ["update", "-q"], { stdio: "ignore", env });
  return install();
}

/**
 * Makes the cached wheel's grafted libblas/liblapack resolve to OpenBLAS.
 * Returns {openblas, redirected, advice}: advice is the exact fix when OpenBLAS is missing.
 */
function ensureFastBlas(sdkCache, { log = () => {}, env = process.env } = {}) {
  const libsDir = path.join(sdkCache, "mlx_cpu.libs");
  if (process.platform !== "linux" || !fs.existsSync(libsDir)) return { openblas: null, redirected: false };
  if (env.CLARA_BLAS === "reference") {
    restoreReference(libsDir);
    return { openblas: null, redirected: false, advice: "CLARA_BLAS=reference: using the wheel's reference BLAS on purpose" };
  }
  let openblas = findOpenBlas();
  if (!openblas && aptInstall(log)) openblas = findOpenBlas();
  if (!openblas) {
    restoreReference(libsDir);
    return {
      openblas: null,
      redirected: false,
      advice: `OpenBLAS not found: MLX will use reference BLAS (~5 GFLOP/s). Fix: sudo apt-get install -y ${APT_PACKAGE} && npm rebuild @clara/mlx`,
    };
  }
  for (const name of fs.readdirSync(libsDir)) {
    if (!/^lib(blas|lapack)-[0-9a-f]+\.so[.0-9]*$/.test(name)) continue;
    const file = path.join(libsDir, name);
    const reference = `${file}.reference`;
    if (!fs.existsSync(reference)) fs.renameSync(file, reference);
    else fs.rmSync(file, { force: true });
    fs.symlinkSync(openblas, file); // OpenBLAS exports both the BLAS and the LAPACK symbols
  }
  return { openblas, redirected: true };
}

function restoreReference(libsDir) {
  for (const name of fs.readdirSync(libsDir)) {
    if (!name.endsWith(".reference")) continue;
    const file = path.join(libsDir, name.slice(0, -".reference".length));
    fs.rmSync(file, { force: true });
    fs.renameSync(path.join(libsDir, name), file);
  }
}

module.exports = { ensureFastBlas, findOpenBlas, APT_PACKAGE };
