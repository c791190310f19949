// JSON Lines: one JSON value per line. The training data files of all three CLaRa stages use
// it. Reading is synchronous and whole-file: the files are small to medium (Apple's stage-1
// sample is 1.6 MB) and every record is validated before training starts anyway.

import * as fs from "node:fs";
import { ClaraError } from "../errors";
import { writeFileAtomic } from "../io/atomic";

export interface JsonlLine {
  /** The parsed JSON value of the line. */
  value: unknown;
  /** 1-based line number in the file. */
  line: number;
}

/**
 * Reads a JSON Lines file. Blank (whitespace-only) lines are skipped; a UTF-8 byte-order mark
 * and Windows line ends are tolerated. A line that is not valid JSON throws ClaraError
 * "E_DATA_FORMAT" with `file` and `line` set; a file that cannot be read throws "E_IO".
 */
export function readJsonl(file: string): JsonlLine[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const hint = err.code === "ENOENT" ? "the file does not exist" : err.code === "EISDIR" ? "it is a folder, not a file" : err.message;
    throw new ClaraError("E_IO", `Could not read ${file}: ${hint}`, { file, cause: e });
  }
  return parseJsonl(decodeUtf8(bytes, file), file);
}

/**
 * Strict UTF-8: invalid bytes are refused with their line and byte offset instead of being
 * decoded to U+FFFD and trained on silently.
 */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
    throw new ClaraError(
      "E_DATA_FORMAT",
      `${file}:${line}: invalid UTF-8 at byte ${at} (0x${bytes[at].toString(16).padStart(2, "0")}); save the file as UTF-8 (e.g. \`iconv -f latin1 -t utf-8\`)`,
      { file, line },
    );
  }
}

/**
 * Where the broken sequence starts: a byte that cuts a multi-byte sequence short is reported at
 * that sequence's lead byte (é in Latin-1 is 0xe9, a UTF-8 lead byte), otherwise itself.
 */
function sequenceStart(b: Uint8Array, at: number, floor: number): number {
  for (let k = at - 1; k >= Math.max(floor, at - 3); k--) {
    if ((b[k] & 0xc0) === 0x80) continue;
    return b[k] >= 0xc0 ? k : at;
  }
  return at;
}

/** The offset of the first byte that does not begin or continue a valid UTF-8 sequence. */
function firstInvalidUtf8(b: Uint8Array): number {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  // Decode line by line until one fails, then that line's growing prefixes.
  let start = 0;
  for (let i = 0; i <= b.length; i++) {
    if (i === b.length || b[i] === 0x0a) {
      try {
        decoder.decode(b.subarray(start, i));
      } catch {
        for (let j = start + 1; j <= i; j++) {
          try {
            // A fresh decoder each time; stream: a sequence cut at the end is not yet an error.
            new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(start, j), { stream: true });
          } catch {
            return sequenceStart(b, j - 1, start);
          }
        }
        return start;
      }
      start = i + 1;
    }
  }
  return b.length - 1;
}

/** Parses JSON Lines text; `file` is only used in error messages. See readJsonl. */
export function parseJsonl(text: string, file = "<jsonl>"): JsonlLine[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: JsonlLine[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new ClaraError("E_DATA_FORMAT", `${file}:${i + 1}: not valid JSON (${(e as Error).message}). ${formatHint(raw)}`, {
        file,
        line: i + 1,
        cause: e,
      });
    }
    out.push({ value, line: i + 1 });
  }
  return out;
}

// What to do about a bad line, tailored to the two mistakes seen most: a pretty-printed JSON
// file (one record spread over many lines) and a truncated last line.
function formatHint(raw: string): string {
  const t = raw.trim();
  if (t === "{" || t === "[" || t === "}" || t === "]" || t.endsWith(",") || /^"[^"]*"\s*:/.test(t)) {
    return "This looks like pretty-printed JSON; JSON Lines needs each record as one complete object on its own line (e.g. `jq -c '.[]' data.json > data.jsonl`).";
  }
  return "Each line must be one complete JSON object; fix or delete this line.";
}

/** One JSON value per line, "\n" after each (also the last), no BOM: what readJsonl reads. */
export function formatJsonl(values: Iterable<unknown>): string {
  let out = "";
  for (const v of values) out += JSON.stringify(v) + "\n";
  return out;
}

/** Writes `values` as JSON Lines, atomically (readers see the old file or the complete new one). */
export function writeJsonl(file: string, values: Iterable<unknown>): void {
  writeFileAtomic(file, Buffer.from(formatJsonl(values), "utf8"));
}
