// .npz archives: a zip of `<name>.npy` members, as written by numpy.savez(_compressed) and
// mlx.core.savez. fflate does the zip work but checks neither CRCs nor member sizes, so
// decodeNpy's exact size check is what turns a truncated or misread member into an error
// instead of silently short or zero-filled weights.

import * as fs from "node:fs";
import { unzipSync, zipSync, type UnzipFileInfo, type Zippable } from "fflate";
import { ClaraError, invalidArgument } from "../errors";
import { Tensor } from "../tensor";
import { writeFileAtomic } from "./atomic";
import { decodeNpy, encodeNpy, npzError } from "./npy";

// fflate writes no ZIP64 records and a Node Buffer tops out at 4 GiB: the limit both ways.
const MAX_ARCHIVE_BYTES = 0xffffffff;
const SPLIT_HINT = "split the tensors across several .npz files";
// A fixed timestamp, so that equal tensors give byte-identical archives (hashes, dedup).
const MTIME = new Date(1980, 0, 1);

export interface NpzWriteOptions {
  /** Deflate the members (numpy.savez_compressed). Default false, like numpy.savez. */
  compress?: boolean;
}

export type NpzEntries = Map<string, Tensor> | Record<string, Tensor>;

export function readNpz(file: string): Map<string, Tensor> {
  return decodeNpz(readWhole(file), file);
}

export function writeNpz(file: string, entries: NpzEntries, opts: NpzWriteOptions = {}): void {
  writeFileAtomic(file, encodeNpz(entries, opts));
}

/** Arrays keyed by member name without `.npy`, in archive order. */
export function decodeNpz(bytes: Uint8Array, file?: string): Map<string, Tensor> {
  const label = file ?? "the .npz data";
  if (bytes.length > MAX_ARCHIVE_BYTES) throw tooLarge(file, bytes.length);
  const members: string[] = [];
  let unzipped: Record<string, Uint8Array>;
  try {
    unzipped = unzipSync(bytes, { filter: (info) => accept(info, members, file) });
  } catch (e) {
    if (e instanceof ClaraError) throw e;
    // fflate reports a bad directory as code 13; anything later broke the member being extracted.
    const current = (e as { code?: unknown }).code === 13 ? undefined : members.at(-1);
    if (current !== undefined)
      throw npzError(
        { file, entry: arrayName(current) },
        `member '${current}' is corrupt (${(e as Error).message}); write the archive again`,
        e,
      );
    throw new ClaraError(
      "E_NPZ",
      `${label} is not a readable .npz (zip) archive: ${(e as Error).message}. ` +
        `It is truncated or corrupt (an interrupted copy or download is the usual cause); write or fetch it again.`,
      { file, cause: e },
    );
  }

  const arrays = new Map<string, Tensor>();
  for (const member of members) {
    const entry = arrayName(member);
    if (arrays.has(entry)) throw npzError({ file, entry }, `the archive holds array '${entry}' twice`);
    arrays.set(entry, decodeNpy(unzipped[member], { file, entry }));
  }
  return arrays;
}

function accept(info: UnzipFileInfo, members: string[], file: string | undefined): boolean {
  if (info.name.endsWith("/")) return false; // folder entries carry no data
  if (info.compression !== 0 && info.compression !== 8)
    throw npzError(
      { file, entry: arrayName(info.name) },
      `member '${info.name}' uses zip compression method ${info.compression}; only stored (0) and deflated (8) are supported`,
    );
  members.push(info.name);
  return true;
}

function arrayName(member: string): string {
  return member.endsWith(".npy") ? member.slice(0, -4) : member;
}

export function encodeNpz(entries: NpzEntries, opts: NpzWriteOptions = {}): Uint8Array {
  if (typeof entries !== "object" || entries === null)
    throw invalidArgument("entries", "a Map or record of tensors", entries);
  const list = entries instanceof Map ? [...entries] : Object.entries(entries);
  // The ".npy" suffix also keeps names like "0" from being reordered as integer object keys.
  const zippable: Zippable = {};
  let size = 22; // end of central directory
  for (const [name, t] of list) {
    if (typeof name !== "string" || name === "") throw invalidArgument("entries key", "a non-empty string", name);
    const npy = encodeNpy(t, `entries[${JSON.stringify(name)}]`);
    const member = `${name}.npy`;
    zippable[member] = npy;
    size += 30 + 46 + 2 * Buffer.byteLength(member) + npy.length; // local + central headers, stored
  }
  if (size > MAX_ARCHIVE_BYTES) throw tooLarge(undefined, size);
  return zipSync(zippable, { level: opts.compress ? 6 : 0, mtime: MTIME });
}

function tooLarge(file: string | undefined, bytes: number): ClaraError {
  const gib = (bytes / 2 ** 30).toFixed(1);
  return new ClaraError(
    "E_NPZ",
    `${file ?? "The .npz archive"} is ${gib} GiB; .npz files over 4 GiB (ZIP64) are not supported, ${SPLIT_HINT}`,
    { file },
  );
}

// fs.readFileSync stops at 2 GiB; archives up to the 4 GiB zip limit are read in pieces.
function readWhole(file: string): Uint8Array {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, "r");
    const size = fs.fstatSync(fd).size;
    if (size > MAX_ARCHIVE_BYTES) throw tooLarge(file, size);
    const out = Buffer.allocUnsafe(size);
    for (let done = 0; done < size; ) {
      const n = fs.readSync(fd, out, done, Math.min(size - done, 1 << 30), done);
      if (n === 0) throw npzError({ file }, `the file shrank while being read (${done} of ${size} bytes)`);
      done += n;
    }
    return out;
  } catch (e) {
    if (e instanceof ClaraError) throw e;
    throw new ClaraError("E_IO", `Could not read ${file}: ${(e as Error).message}`, { file, cause: e });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
