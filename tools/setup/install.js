#!/usr/bin/env node
// `npm install` runs this: resolve the MLX SDK, make BLAS fast on Linux, then build the addon
// with cmake-js unless a prebuilt binary for this platform already loads. Every failure ends
// with one message that names the fix.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const { PACKAGE_ROOT, SetupError, resolveSdk, mlxVersion } = require("./mlx-sdk");
const { ensureFastBlas } = require("./blas");

const log = (msg) => console.log(`[@clara/mlx] ${msg}`);

function prebuiltLoads() {
  const dir = path.join(PACKAGE_ROOT, "prebuilds", `${process.platform}-${process.arch}`);
  if (!fs.existsSync(dir)) return false;
  const probe = `require(${JSON.stringify(require.resolve("node-gyp-build"))})(${JSON.stringify(PACKAGE_ROOT)})`;
  return spawnSync(process.execPath, ["-e", probe], { stdio: "ignore" }).status === 0;
}

function requireTool(cmd, fix) {
  if (spawnSync(cmd, ["--version"], { stdio: "ignore" }).status !== 0) {
    throw new SetupError(`${cmd} was not found; it is needed to build the native addon.\n  Fix: ${fix}`);
  }
}

function buildAddon(mlxRoot) {
  const linuxFix = "apt-get install -y cmake ninja-build g++";
  requireTool("cmake", process.platform === "darwin" ? "brew install cmake ninja" : linuxFix);
  const cmakeJs = require.resolve("cmake-js/bin/cmake-js");
  const args = [cmakeJs, "compile", "--CDMLX_ROOT=" + mlxRoot, "--parallel", String(Math.max(1, require("node:os").availableParallelism()))];
  log(`building the native addon against MLX at ${mlxRoot}`);
  const r = spawnSync(process.execPath, args, { cwd: PACKAGE_ROOT, stdio: "inherit" });
  if (r.status !== 0) {
    throw new SetupError("the native build failed (output above).\n  Fix: read the first compiler error; `npm run build:native` retries.");
  }
}

function main() {
  const force = process.argv.includes("--force-build");
  const sdk = resolveSdk({ log });
  log(`MLX ${mlxVersion} SDK: ${sdk.root} (${sdk.source}, backend ${sdk.backend})`);
  const blas = sdk.cache && sdk.backend === "cpu" ? ensureFastBlas(sdk.cache, { log }) : { openblas: null, redirected: false };
  if (blas.openblas) log(`BLAS: ${blas.openblas}`);
  if (blas.advice) log(`warning: ${blas.advice}`);
  if (force || !prebuiltLoads()) buildAddon(sdk.root);
  else log("a prebuilt binary for this platform loads; skipping the native build");
  const record = { mlxVersion, backend: sdk.backend, mlxRoot: sdk.root, source: sdk.source, blas };
  fs.mkdirSync(path.join(PACKAGE_ROOT, "build"), { recursive: true });
  fs.writeFileSync(path.join(PACKAGE_ROOT, "build", "clara-setup.json"), JSON.stringify(record, null, 2) + "\n");
}

try {
  main();
} catch (err) {
  if (err instanceof SetupError) {
    console.error(`[@clara/mlx] setup failed: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
