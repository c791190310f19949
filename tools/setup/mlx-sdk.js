// Finds the MLX C++ SDK (headers, libmlx, share/cmake/MLX) this package builds against.
// Order: $MLX_DIR, then the SDK cached inside the package (fetched from PyPI on first use),
// then a system install (Homebrew). The pinned version lives in package.json "mlx".
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const PACKAGE_ROOT = path.resolve(__dirname, "..", "..");
const pkg = require(path.join(PACKAGE_ROOT, "package.json"));

class SetupError extends Error {}

function hasCmakeConfig(root) {
  return fs.existsSync(path.join(root, "share", "cmake", "MLX", "MLXConfig.cmake"));
}

/** Which backend wheel this machine wants: metal on Apple Silicon, cpu or cuda on Linux. */
function selectBackend(env = process.env, platform = process.platform, arch = process.arch) {
  const wanted = (env.CLARA_MLX_BACKEND || "").toLowerCase();
  if (platform === "darwin") {
    if (arch !== "arm64") throw new SetupError("MLX needs an Apple-Silicon Mac (arm64); this is darwin-" + arch + ".");
    if (wanted && wanted !== "metal") throw new SetupError(`CLARA_MLX_BACKEND=${wanted} is not available on macOS; use metal.`);
    return { backend: "metal", wheel: pkg.mlx.wheels["darwin-arm64"] };
  }
  if (platform === "linux" && arch === "x64") {
    if (wanted === "cuda") return { backend: "cuda", wheel: pkg.mlx.wheels["linux-x64-cuda"] };
    if (wanted && wanted !== "cpu") throw new SetupError(`CLARA_MLX_BACKEND=${wanted} is not one of cpu, cuda.`);
    return { backend: "cpu", wheel: pkg.mlx.wheels["linux-x64"] };
  }
  throw new SetupError(`No MLX backend wheel is published for ${platform}-${arch}. Build MLX from source and set MLX_DIR.`);
}

function cacheDir(backend) {
  return path.join(PACKAGE_ROOT, ".mlx-sdk", `${pkg.mlx.version}-${backend}`);
}

function findPython() {
  for (const exe of [process.env.PYTHON, "python3", "python"].filter(Boolean)) {
    const r = spawnSync(exe, ["-m", "pip", "--version"], { encoding: "utf8" });
    if (r.status === 0) return exe;
  }
  return null;
}

/** pip-installs the backend wheel into the cache folder (no Python environment is touched). */
function fetchWheel(backend, wheel, log) {
  const dir = cacheDir(backend);
  const python = findPython();
  if (!python) {
    throw new SetupError(
      "pip is needed once, to fetch the MLX SDK wheel " + `${wheel}==${pkg.mlx.version} from PyPI, and none was found.\n` +
        "  Fix: install pip (Debian/Ubuntu: apt-get install -y python3-pip; macOS: python3 -m ensurepip),\n" +
        "  or download and unpack the wheel yourself and run: MLX_DIR=<unpacked>/mlx npm install",
    );
  }
  const staging = `${dir}.partial-${process.pid}`;
  fs.rmSync(staging, { recursive: true, force: true });
  // The CUDA wheel finds the NVIDIA libraries beside it (its RPATH points at ../../nvidia/*),
  // so those come along; the CPU and Metal wheels need nothing else.
  const args = ["-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check",
    "--only-binary=:all:", "--target", staging, `${wheel}==${pkg.mlx.version}`];
  if (backend !== "cuda") args.splice(3, 0, "--no-deps");
  log(`fetching ${wheel}==${pkg.mlx.version} from PyPI into ${path.relative(PACKAGE_ROOT, dir)}`);
  const r = spawnSync(python, args, { stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new SetupError(
      `pip could not fetch ${wheel}==${pkg.mlx.version} (exit ${r.status}).\n` +
        "  Fix: check that PyPI is reachable (pip config, proxy), or set MLX_DIR to an MLX install.",
    );
  }
  if (!hasCmakeConfig(path.join(staging, "mlx"))) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw new SetupError(`${wheel}==${pkg.mlx.version} has no share/cmake/MLX; set MLX_DIR to a source build of MLX.`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(staging, dir); // the cache appears whole or not at all
  return dir;
}

function homebrewRoot() {
  const candidates = ["/opt/homebrew/opt/mlx", "/usr/local/opt/mlx"];
  const brew = spawnSync("brew", ["--prefix", "mlx"], { encoding: "utf8" });
  if (brew.status === 0) candidates.unshift(brew.stdout.trim());
  return candidates.find(hasCmakeConfig) || null;
}

/** Resolves the SDK: {root, source, backend, cache?}. Fetches into the cache when needed. */
function resolveSdk({ log = () => {}, env = process.env } = {}) {
  if (env.MLX_DIR) {
    const root = path.resolve(env.MLX_DIR);
    if (!hasCmakeConfig(root)) {
      throw new SetupError(`MLX_DIR=${env.MLX_DIR} holds no share/cmake/MLX/MLXConfig.cmake; point it at an MLX install prefix.`);
    }
    return { root, source: "MLX_DIR", backend: env.CLARA_MLX_BACKEND || "unknown" };
  }
  const { backend, wheel } = selectBackend(env);
  const dir = cacheDir(backend);
  if (hasCmakeConfig(path.join(dir, "mlx"))) return { root: path.join(dir, "mlx"), source: "cache", backend, cache: dir };
  try {
    const fetched = fetchWheel(backend, wheel, log);
    return { root: path.join(fetched, "mlx"), source: "cache", backend, cache: fetched };
  } catch (err) {
    const brew = homebrewRoot();
    if (brew) {
      log(`${err.message}\nusing Homebrew's MLX at ${brew} instead`);
      return { root: brew, source: "homebrew", backend };
    }
    throw err;
  }
}

module.exports = { PACKAGE_ROOT, SetupError, resolveSdk, selectBackend, cacheDir, mlxVersion: pkg.mlx.version };
