// Atomic file writes: write a temp file next to the target (same file system), then rename over
// it. A reader, or a run after kill -9, sees the old file or the new one, never half of one.
import { randomBytes } from 'node:crypto';
import { copyFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { inDir } from './known-dirs.js';

export function tempName(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Fills a temp file beside `target` with `fill`, then renames it over `target`; the temp file never outlives a failure. */
function replaceAtomic(target: string, fill: (tmp: string) => void, unlinkFirst = false): void {
  inDir(dirname(target), () => replaceIn(target, fill, unlinkFirst));
}

function replaceIn(target: string, fill: (tmp: string) => void, unlinkFirst: boolean): void {
  const tmp = tempName(target);
  try {
    fill(tmp);
    if (unlinkFirst) {
      try {
        unlinkSync(target);
      } catch {
        // nothing there (or a folder: the rename then fails as before)
      }
    }
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeFileAtomic(target: string, data: string | Buffer): void {
  replaceAtomic(target, (tmp) => writeFileSync(tmp, data));
}

/**
 * writeFileAtomic for a file of the cache, whose readers treat a missing or damaged file as absent:
 * the old file is unlinked just before the rename. ext4 (auto_da_alloc) starts writeback of the new
 * data when a rename replaces a file, ~0.5 ms each; a rename to a free name skips that. A crash
 * between the two leaves no file (a miss), never half of one; without an fsync a crash could leave
 * an empty new file either way, which readers of the cache already discard.
 */
export function writeCacheFileAtomic(target: string, data: string | Buffer): void {
  replaceAtomic(target, (tmp) => writeFileSync(tmp, data), true);
}

export function copyFileAtomic(source: string, target: string): void {
  replaceAtomic(target, (tmp) => copyFileSync(source, tmp));
}
