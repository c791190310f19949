// .npz archives: a zip of `<name>.npy` members, as written by numpy.savez(_compressed) and
// mlx.core.savez. Read through io/zip.ts (each member's CRC-32 checked, ZIP64 archives read in
// pieces), and decodeNpy checks each array's exact size; fflate writes them.

import { zipSync, type Zippable } from "fflate";
import { ClaraError, invalidArgument } from "../errors";
import { Tensor } from "../tensor";
import { writeFileAtomic } from "./atomic";
import { decodeNpy, encodeNpy, npzError } from "./npy";
import { ZipReader } from "./zip";

// fflate writes no ZIP64 records: the limit of what is written (reading has none).
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
  return arraysOf(new ZipReader(file, NPZ_ZIP), file);
}

export function writeNpz(file: string, entries: NpzEntries, opts: NpzWriteOptions = {}): void {
  writeFileAtomic(file, encodeNpz(entries, opts));
}

/** Arrays keyed by member name without `.npy`, in archive order. */
export function decodeNpz(bytes: Uint8Array, file?: string): Map<string, Tensor> {
  return arraysOf(new ZipReader({ bytes, name: file }, NPZ_ZIP), file);
}

// Read through io/zip.ts: CRC-checked members and ZIP64 archives (over 4 GiB), read in pieces.
const NPZ_ZIP = {
  code: "E_NPZ",
  notZipHint: "It is not a readable .npz (zip) archive: truncated or corrupt (an interrupted copy or download is the usual cause); write or fetch it again.",
  entryOf: (member: string) => arrayName(member),
} as const;

function arraysOf(zip: ZipReader, file: string | undefined): Map<string, Tensor> {
  try {
    const arrays = new Map<string, Tensor>();
    for (const member of zip.members.keys()) {
      if (member.endsWith("/")) continue; // folder entries carry no data
      const entry = arrayName(member);
      if (arrays.has(entry)) throw npzError({ file, entry }, `the archive holds array '${entry}' twice`);
      arrays.set(entry, decodeNpy(zip.read(member), { file, entry }));
    }
    return arrays;
  } finally {
    zip.close();
  }
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
