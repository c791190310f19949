// Crash-safe file replacement: readers see either the old file or the complete new one.
// The temp file lives in the target's folder because rename() is only atomic within a
// file system.

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { ClaraError } from "../errors";

export function writeFileAtomic(target: string, bytes: Uint8Array): void {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `${tempPrefix(target)}${process.pid}-${randomBytes(6).toString("hex")}`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "wx");
    keepMode(fd, target);
    for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (e) {
    // Cleanup failures must not hide the error that matters.
    const open = fd;
    if (open !== undefined) quietly(() => fs.closeSync(open));
    quietly(() => fs.rmSync(tmp, { force: true }));
    throw ioError(target, e);
  }
  syncDir(dir, target);
}

/** The temp-file name pattern of writeFileAtomic for `target`. */
function tempPrefix(target: string): string {
  return `.${path.basename(target)}.tmp-`;
}

/**
 * Removes the temp files writeFileAtomic left in `dir` when a process was killed mid-write: ours
 * by name (.<target>.tmp-<pid>-<hex>), for targets `belongs` accepts, and only of processes that
 * are no longer running.
 */
export function removeStaleTemps(dir: string, belongs: (target: string) => boolean): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^\.(.+)\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m || !belongs(m[1]) || processAlive(Number(m[2]))) continue;
    quietly(() => fs.rmSync(path.join(dir, name), { force: true }));
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function quietly(f: () => void): void {
  try {
    f();
  } catch {
    /* already failing */
  }
}

// Replacing a file should not silently change who may read it.
function keepMode(fd: number, target: string): void {
  try {
    fs.fchmodSync(fd, fs.statSync(target).mode & 0o7777);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

// The rename is only durable once the folder entry is flushed. Some platforms and file
// systems cannot open or fsync a folder (Windows: EISDIR/EPERM, some FUSE/network mounts:
// EINVAL); the data itself is already synced there, so that is not an error.
function syncDir(dir: string, target: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== "EISDIR" && code !== "EPERM" && code !== "EINVAL") throw ioError(target, e);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

const HINTS: Record<string, string> = {
  ENOENT: "the folder does not exist",
  ENOTDIR: "a part of the folder path is not a folder",
  EACCES: "permission denied; is the folder writable?",
  EPERM: "operation not permitted; is the folder writable?",
  EROFS: "the file system is read-only",
  ENOSPC: "the disk is full",
  EDQUOT: "the disk quota is exhausted",
  EISDIR: "a folder already exists at that path",
  ENOTEMPTY: "a folder already exists at that path",
};

function ioError(target: string, e: unknown): ClaraError {
  const err = e as NodeJS.ErrnoException;
  const hint = err.code !== undefined ? HINTS[err.code] : undefined;
  return new ClaraError("E_IO", `Could not write ${target}: ${hint ? `${hint} (${err.message})` : err.message}`, {
    file: target,
    cause: e,
  });
}
