// Where a model's files are: a Hugging Face folder (config.json, *.safetensors, tokenizer.json)
// or one GGUF file. Missing pieces are errors that name the file and the fix.

import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";
import { readGgufHeader, type GgufValue } from "../io/gguf";
import { configFromGguf, configFromHf, type ModelConfig } from "./config";
import { sourceQuantizationFromHf, type SourceQuantization } from "./quantization";

export interface ModelFiles {
  source: string;
  format: "safetensors" | "gguf";
  files: string[];
  config: ModelConfig;
  ropePermuted: boolean;
  /** An MLX-quantized folder's groups (config.json "quantization"); absent for float folders and GGUF. */
  sourceQuantization?: SourceQuantization;
  /** GGUF metadata (for the tokenizer), absent for HF folders. */
  ggufMetadata?: Map<string, GgufValue>;
}

function missing(file: string, what: string): ClaraError {
  return new ClaraError("E_MODEL_FILES", `${file} is missing: ${what}`, { file });
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (err) {
    throw new ClaraError("E_MODEL_CONFIG", `${file} is not valid JSON: ${(err as Error).message}`, { file, cause: err });
  }
}

export function locateModel(modelPath: string): ModelFiles {
  if (!fs.existsSync(modelPath)) {
    throw new ClaraError(
      "E_MODEL_FILES",
      `${modelPath} does not exist. Pass a Hugging Face model folder or a .gguf file (the default model: npm run fetch-model).`,
      { file: modelPath },
    );
  }
  if (fs.statSync(modelPath).isDirectory()) return locateHfFolder(modelPath);
  if (modelPath.endsWith(".gguf")) {
    const header = readGgufHeader(modelPath);
    const names = header.tensors.map((t) => t.name);
    const { config, ropePermuted } = configFromGguf(header.metadata, names, modelPath);
    return { source: modelPath, format: "gguf", files: [modelPath], config, ropePermuted, ggufMetadata: header.metadata };
  }
  throw new ClaraError("E_MODEL_FILES", `${modelPath} is neither a model folder nor a .gguf file`, { file: modelPath });
}

function locateHfFolder(dir: string): ModelFiles {
  const configFile = path.join(dir, "config.json");
  if (!fs.existsSync(configFile)) throw missing(configFile, "a Hugging Face model folder needs config.json");
  const json = readJson(configFile);
  const config = configFromHf(json, configFile);
  const sourceQuantization = sourceQuantizationFromHf(json as Record<string, unknown>, configFile);
  const index = path.join(dir, "model.safetensors.index.json");
  let files: string[];
  if (fs.existsSync(index)) {
    const map = (readJson(index) as { weight_map?: Record<string, string> }).weight_map;
    if (!map || typeof map !== "object") {
      throw new ClaraError("E_MODEL_CONFIG", `${index}: weight_map must be an object of tensor -> file`, { file: index, field: "weight_map" });
    }
    files = [...new Set(Object.values(map))].map((f) => path.join(dir, f));
    for (const f of files) if (!fs.existsSync(f)) throw missing(f, `listed in ${path.basename(index)}`);
  } else {
    files = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors")).sort().map((f) => path.join(dir, f));
    if (files.length === 0) throw missing(path.join(dir, "model.safetensors"), "no *.safetensors weights in the folder");
  }
  return { source: dir, format: "safetensors", files, config, ropePermuted: false, sourceQuantization };
}
