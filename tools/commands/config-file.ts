// --config run.yaml | run.json: the settings of a run in a file. Keys are the settings of
// settings.ts (camelCase or kebab-case); sections stage1/stage2/stage3/eval/makeData hold
// settings for one stage or command and override the top level; flags override both.
//
//   model: models/SmolLM2-135M-Instruct.Q4_1.gguf
//   docMaxLength: 128
//   stage1: { data: example/pretrain.jsonl, maxSteps: 40 }
//
// Every problem names the file, the line and the key.

import * as fs from "node:fs";
import { isMap, isScalar, LineCounter, parseDocument, type Document } from "yaml";
import { ClaraError } from "../../lib";
import { camel, checkValue, EVAL_KEYS, SECTIONS, SETTINGS, type Section, type Settings } from "./settings";

export interface ConfigFile {
  file: string;
  /** Top-level settings. */
  top: Settings;
  sections: Partial<Record<Section, Settings>>;
  /** 1-based line of a key ("lr", "stage1.lr"), for error messages. */
  lineOf(key: string): number | undefined;
}

export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "the file does not exist" : code === "EISDIR" ? "it is a folder, not a file" : (e as Error).message;
    throw new ClaraError("E_IO", `cannot read the config file: ${why}`, { file, field: "--config" });
  }
  const lines = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const err = doc.errors[0];
    const line = lines.linePos(err.pos[0]).line;
    const what = file.endsWith(".json") ? "JSON" : "YAML";
    throw new ClaraError("E_DATA_FORMAT", `not valid ${what}: ${err.message.split("\n")[0]}. Fix the syntax on this line.`, { file, line });
  }
  const keyLines = new Map<string, number>();
  const contents = doc.contents;
  if (contents === null || (isScalar(contents) && contents.value === null)) return { file, top: {}, sections: {}, lineOf: () => undefined };
  if (!isMap(contents)) {
    throw new ClaraError("E_DATA_FORMAT", "a config file must be a mapping of settings (key: value), e.g. `lr: 0.0001`", { file, line: 1 });
  }
  for (const pair of contents.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    if (isScalar(pair.key) && pair.key.range) keyLines.set(camel(key), lines.linePos(pair.key.range[0]).line);
    if (isMap(pair.value)) {
      for (const inner of pair.value.items) {
        if (isScalar(inner.key) && inner.key.range) keyLines.set(`${camel(key)}.${camel(String(inner.key.value))}`, lines.linePos(inner.key.range[0]).line);
      }
    }
  }
  const lineOf = (key: string) => keyLines.get(key);
  const raw = doc.toJS() as Record<string, unknown>;
  const top: Settings = {};
  const sections: Partial<Record<Section, Settings>> = {};
  for (const [rawKey, value] of Object.entries(raw)) {
    const key = camel(rawKey);
    if ((SECTIONS as readonly string[]).includes(key)) {
      if (value === null || value === undefined) continue;
      if (typeof value !== "object" || Array.isArray(value)) {
        throw new ClaraError("E_INVALID_ARGUMENT", `"${key}" must be a mapping of settings, e.g. ${key}: { lr: 0.0001 }`, { file, line: lineOf(key), field: key });
      }
      const section: Settings = {};
      for (const [innerRaw, innerValue] of Object.entries(value as Record<string, unknown>)) {
        const inner = camel(innerRaw);
        const name = `${key}.${inner}`;
        const allowed = key === "eval" ? (EVAL_KEYS as readonly string[]).includes(inner) : inner in SETTINGS;
        if (!allowed) throw unknownKey(file, lineOf(name), name, key === "eval" ? [...EVAL_KEYS] : Object.keys(SETTINGS));
        if (innerValue === null || innerValue === undefined) continue;
        section[inner] = checkValue(inner, innerValue, { file, line: lineOf(name), name });
      }
      sections[key as Section] = section;
      continue;
    }
    if (!(key in SETTINGS)) throw unknownKey(file, lineOf(key), key, [...Object.keys(SETTINGS), ...SECTIONS]);
    if (value === null || value === undefined) continue;
    top[key] = checkValue(key, value, { file, line: lineOf(key), name: key });
  }
  return { file, top, sections, lineOf };
}

function unknownKey(file: string, line: number | undefined, name: string, known: string[]): ClaraError {
  const last = name.split(".").pop()!;
  const near = known.find((k) => k.toLowerCase() === last.toLowerCase() || editDistance(k.toLowerCase(), last.toLowerCase()) <= 2);
  return new ClaraError(
    "E_INVALID_ARGUMENT",
    `unknown setting${near ? `; did you mean "${near}"?` : `; known settings: ${known.join(", ")}`}`,
    { file, line, field: name },
  );
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}
