// Reading and writing files whose path may hold something else than a file: a FIFO would block a
// plain read forever, a folder makes a rename fail. Used for the files lorabuild reads back (cache
// records, memos, the lock, the lorafile) and writes into its own cache.
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, rmSync } from 'node:fs';
import { dirname, relative, isAbsolute } from 'node:path';
import { writeCacheFileAtomic, writeFileAtomic } from './atomic.js';
import { forgetDir } from './known-dirs.js';

export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG';
  constructor(
    readonly path: string,
    readonly kind: string,
  ) {
    super(`${path} is ${kind}, not a regular file`);
    this.name = 'NotRegularFileError';
  }
}

/** What a stat says a path is, in words ("a folder", "a FIFO"). */
export function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSymbolicLink?(): boolean }): string {
  if (st.isSymbolicLink?.()) return 'a symbolic link';
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * readFileSync for a path that must be a regular file: opened without blocking (a FIFO opens at
 * once instead of waiting for a writer), checked with fstat, then read. Throws the usual ENOENT
 * errors, and NotRegularFileError for anything but a file. One open and one stat, like readFileSync.
 */
export function readRegularFileSync(path: string): Buffer;
export function readRegularFileSync(path: string, encoding: BufferEncoding): string;
export function readRegularFileSync(path: string, encoding?: BufferEncoding): Buffer | string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new NotRegularFileError(path, kindOf(st));
    return encoding ? readFileSync(fd, encoding) : readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes way for a file the cache under `root` owns at `target`: anything else at the path (a folder,
 * a FIFO, a link), or a file where one of its folders belongs, is damage and is removed. Nothing
 * outside `root` is ever removed.
 */
export function clearOwnedPath(root: string, target: string): void {
  const inside = (p: string) => {
    const rel = relative(root, p);
    return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
  };
  for (let dir = dirname(target); inside(dir); dir = dirname(dir)) {
    let st;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (!st.isDirectory()) rmSync(dir, { force: true });
    break;
  }
  try {
    const st = lstatSync(target);
    if (!st.isFile() && inside(target)) rmSync(target, { recursive: true, force: true });
  } catch {
    // nothing there yet
  }
}

/** writeFileAtomic for a file the cache under `root` owns (see clearOwnedPath) */
export function writeOwnedFileAtomic(root: string, target: string, data: string | Buffer, options?: { missingIsAbsent?: boolean }): void {
  // missingIsAbsent: a file whose loss only means a miss (see writeCacheFileAtomic)
  const write = () => (options?.missingIsAbsent ? writeCacheFileAtomic(target, data) : writeFileAtomic(target, data));
  try {
    write();
  } catch {
    // damage in the way (a folder at the path, a file where a folder belongs): cleared, then once more.
    // Looked for only after a failure: four writes a save would otherwise stat every folder above them
    for (let dir = dirname(target); dir.length > root.length; dir = dirname(dir)) forgetDir(dir);
    clearOwnedPath(root, target);
    write();
  }
}
