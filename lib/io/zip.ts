// Zip archives read from the file through their central directory (ZIP64 aware): members are
// read on demand, in pieces if large, and each member's CRC-32 is checked the first time it is
// read. Only stored (0) and deflated (8) members; encrypted ones are refused.

import * as fs from "node:fs";
import * as zlib from "node:zlib";
import { inflateSync } from "fflate";
import { ClaraError } from "../errors";

export type ZipErrorCode = "E_PTH" | "E_NPZ";

export interface ZipReaderOptions {
  /** Check each member's CRC-32 the first time it is read (default true). */
  verifyCrc?: boolean;
  /** The code of the format's errors (the archive is read as that format). */
  code: ZipErrorCode;
  /** What to tell the user when the file is not a zip archive at all. */
  notZipHint: string;
  /** The `entry` an error names for a member (default: the member's name). */
  entryOf?: (member: string) => string;
}

/** A file, or bytes already in memory (named in messages by `name` when given). */
export type ZipInput = string | { bytes: Uint8Array; name?: string };

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const CHUNK = 1 << 26; // 64 MiB per read / CRC step

export interface ZipMember {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** A zip archive on disk (or in memory), read through its central directory; members are read on demand. */
export class ZipReader {
  readonly members = new Map<string, ZipMember>();
  readonly size: number;
  /** How messages name the archive. */
  readonly file: string;
  /** The path errors carry (undefined for unnamed bytes). */
  private readonly path: string | undefined;
  private readonly fd: number | undefined;
  private readonly bytes: Uint8Array | undefined;
  private readonly dataStart = new Map<string, number>();
  private readonly verified = new Set<string>();

  private readonly verifyCrc: boolean;
  private readonly code: ZipErrorCode;
  private readonly notZipHint: string;
  private readonly entryOf: (member: string) => string;

  constructor(input: ZipInput, options: ZipReaderOptions) {
    this.verifyCrc = options.verifyCrc ?? true;
    this.code = options.code;
    this.notZipHint = options.notZipHint;
    this.entryOf = options.entryOf ?? ((m) => m);
    if (typeof input === "string") {
      this.file = this.path = input;
      try {
        this.fd = fs.openSync(input, "r");
        this.size = fs.fstatSync(this.fd).size;
      } catch (e) {
        throw new ClaraError("E_IO", `Could not read ${input}: ${(e as Error).message}`, { file: input, cause: e });
      }
    } else {
      this.path = input.name;
      this.file = input.name ?? "the archive data";
      this.bytes = input.bytes;
      this.size = input.bytes.length;
    }
    try {
      this.readDirectory();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  /** `length` bytes of a member's contents from byte `start`, CRC-checked once per member. */
  read(name: string, start = 0, length?: number): Uint8Array {
    const m = this.member(name);
    const len = length ?? m.size - start;
    if (start < 0 || len < 0 || start + len > m.size) {
      throw this.error(`asks for bytes [${start}, ${start + len}) of member '${name}', which holds ${m.size}`, name);
    }
    if (m.method === 8) {
      const all = this.inflated(m);
      return all.subarray(start, start + len);
    }
    const out = this.readAt(this.dataOffset(m) + start, len, name);
    if (this.verifyCrc && !this.verified.has(name)) {
      if (start === 0 && len === m.size) this.checkCrc(m, zlib.crc32(out));
      else this.checkCrc(m, this.streamCrc(m));
    }
    return out;
  }

  has(name: string): boolean {
    return this.members.has(name);
  }

  member(name: string): ZipMember {
    const m = this.members.get(name);
    if (!m) throw this.error(`has no member '${name}'`, name);
    return m;
  }

  private error(message: string, entry?: string, cause?: unknown): ClaraError {
    return new ClaraError(this.code, `${this.file} ${message}`, { file: this.path, entry: entry === undefined ? undefined : this.entryOf(entry), cause });
  }

  private readAt(position: number, length: number, entry?: string): Uint8Array {
    if (this.bytes) {
      if (position + length > this.bytes.length) {
        throw this.error(`ends at byte ${this.bytes.length}, inside ${entry ? `member '${entry}'` : "the zip structures"}: the data is truncated`, entry);
      }
      return this.bytes.slice(position, position + length);
    }
    const out = new Uint8Array(length);
    for (let done = 0; done < length; ) {
      let n: number;
      try {
        n = fs.readSync(this.fd!, out, done, Math.min(length - done, 1 << 30), position + done);
      } catch (e) {
        throw new ClaraError("E_IO", `Could not read ${this.file}: ${(e as Error).message}`, { file: this.path, entry, cause: e });
      }
      if (n === 0) throw this.error(`ends at byte ${position + done}, inside ${entry ? `member '${entry}'` : "the zip structures"}: the file is truncated`, entry);
      done += n;
    }
    return out;
  }

  private readDirectory(): void {
    if (this.size < 22) throw this.notZip(`is ${this.size} bytes, too short for a zip archive`);
    const head = this.readAt(0, Math.min(4, this.size));
    const magic = new DataView(head.buffer).getUint32(0, true);
    if (head[0] === 0x80 && head[1] <= 5) {
      throw this.error(
        "is a bare pickle (torch.save's legacy format, _use_new_zipfile_serialization=False), which this reader does not support; " +
          "re-save it with torch >= 1.6's default format",
      );
    }
    if (magic !== SIG_LOCAL && magic !== SIG_EOCD) throw this.notZip("does not start with a zip signature");
    // The end record sits in the last 22 + 65535 (comment) bytes.
    const tailLen = Math.min(this.size, 22 + 0xffff + 20);
    const tailPos = this.size - tailLen;
    const tail = this.readAt(tailPos, tailLen);
    const tv = new DataView(tail.buffer);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw this.notZip("has no end-of-central-directory record: the file is truncated or is not a zip archive");
    let count = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    const eocdPos = tailPos + eocd;
    if (eocd >= 20 && tv.getUint32(eocd - 20, true) === SIG_ZIP64_LOCATOR) {
      const z64pos = Number(tv.getBigUint64(eocd - 20 + 8, true));
      if (z64pos + 56 > eocdPos) throw this.error(`has a ZIP64 locator pointing at byte ${z64pos}, past its end record: the archive is corrupt`);
      const z = new DataView(this.readAt(z64pos, 56).buffer);
      if (z.getUint32(0, true) !== SIG_ZIP64_EOCD) throw this.error(`has no ZIP64 end record at byte ${z64pos}: the archive is corrupt`);
      count = Number(z.getBigUint64(32, true));
      cdSize = Number(z.getBigUint64(40, true));
      cdOffset = Number(z.getBigUint64(48, true));
    }
    if (cdOffset + cdSize > eocdPos) {
      throw this.error(`has a central directory [${cdOffset}, ${cdOffset + cdSize}) that overlaps its end record at ${eocdPos}: the file is truncated or corrupt`);
    }
    const cd = this.readAt(cdOffset, cdSize);
    const v = new DataView(cd.buffer);
    const decoder = new TextDecoder("utf-8", { fatal: false });
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cdSize || v.getUint32(p, true) !== SIG_CENTRAL) {
        throw this.error(`has a damaged central directory (entry ${i} of ${count} at byte ${cdOffset + p}): the file is truncated or corrupt`);
      }
      const flags = v.getUint16(p + 8, true);
      const method = v.getUint16(p + 10, true);
      const crc = v.getUint32(p + 16, true);
      let compressedSize = v.getUint32(p + 20, true);
      let size = v.getUint32(p + 24, true);
      const nameLen = v.getUint16(p + 28, true);
      const extraLen = v.getUint16(p + 30, true);
      const commentLen = v.getUint16(p + 32, true);
      let localHeaderOffset = v.getUint32(p + 42, true);
      if (p + 46 + nameLen + extraLen + commentLen > cdSize) throw this.error(`has a damaged central directory entry ${i}: the file is corrupt`);
      const name = decoder.decode(cd.subarray(p + 46, p + 46 + nameLen));
      // ZIP64 extra field: the 64-bit values of whichever fields read 0xFFFFFFFF, in order.
      for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen; ) {
        const id = v.getUint16(e, true);
        const len = v.getUint16(e + 2, true);
        if (id === 0x0001) {
          let q = e + 4;
          const next = () => {
            const value = Number(v.getBigUint64(q, true));
            q += 8;
            return value;
          };
          if (size === 0xffffffff) size = next();
          if (compressedSize === 0xffffffff) compressedSize = next();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
        }
        e += 4 + len;
      }
      p += 46 + nameLen + extraLen + commentLen;
      if (flags & 1) throw this.error(`member '${name}' is encrypted`, name);
      if (method !== 0 && method !== 8) throw this.error(`member '${name}' uses zip compression method ${method}; only stored (0) and deflated (8) are supported`, name);
      if (this.members.has(name)) throw this.error(`holds member '${name}' twice`, name);
      if (localHeaderOffset + 30 + compressedSize > cdOffset) {
        throw this.error(`member '${name}' would end past the start of the central directory: the file is truncated or corrupt`, name);
      }
      this.members.set(name, { name, method, crc32: crc, compressedSize, size, localHeaderOffset });
    }
  }

  private notZip(why: string): ClaraError {
    return this.error(`${why}. ${this.notZipHint}`);
  }

  private dataOffset(m: ZipMember): number {
    const known = this.dataStart.get(m.name);
    if (known !== undefined) return known;
    const h = new DataView(this.readAt(m.localHeaderOffset, 30, m.name).buffer);
    if (h.getUint32(0, true) !== SIG_LOCAL) {
      throw this.error(`has no local header for member '${m.name}' at byte ${m.localHeaderOffset}: the archive is corrupt`, m.name);
    }
    const start = m.localHeaderOffset + 30 + h.getUint16(26, true) + h.getUint16(28, true);
    if (start + m.compressedSize > this.size) {
      throw this.error(`member '${m.name}' needs bytes up to ${start + m.compressedSize} but the file has ${this.size}: it is truncated`, m.name);
    }
    this.dataStart.set(m.name, start);
    return start;
  }

  private streamCrc(m: ZipMember): number {
    let crc = 0;
    const start = this.dataOffset(m);
    for (let done = 0; done < m.size; done += CHUNK) {
      crc = zlib.crc32(this.readAt(start + done, Math.min(CHUNK, m.size - done), m.name), crc);
    }
    return crc;
  }

  private checkCrc(m: ZipMember, actual: number): void {
    if (actual >>> 0 !== m.crc32 >>> 0) {
      throw this.error(
        `member '${m.name}' fails its CRC-32 check (stored ${hex(m.crc32)}, computed ${hex(actual)}): the file is corrupt; fetch it again`,
        m.name,
      );
    }
    this.verified.add(m.name);
  }

  private inflated(m: ZipMember): Uint8Array {
    // deflate expands at most ~1032:1; a larger claim is a corrupt (or hostile) directory
    if (m.size > 0xffffffff || m.size > 1032 * m.compressedSize + 1024) {
      throw this.error(`member '${m.name}' claims to inflate from ${m.compressedSize} to ${m.size} bytes: the archive is corrupt`, m.name);
    }
    const packed = this.readAt(this.dataOffset(m), m.compressedSize, m.name);
    let out: Uint8Array;
    try {
      out = inflateSync(packed, { out: new Uint8Array(m.size) });
    } catch (e) {
      throw this.error(`member '${m.name}' does not inflate (${(e as Error).message}): the archive is corrupt`, m.name, e);
    }
    if (out.length !== m.size) throw this.error(`member '${m.name}' inflates to ${out.length} bytes, not ${m.size}: the archive is corrupt`, m.name);
    if (this.verifyCrc && !this.verified.has(m.name)) this.checkCrc(m, zlib.crc32(out));
    return out;
  }
}

function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}
