// Atomic file writes: write a temp file next to the target (same file system), then rename over
// it. A reader, or a run after kill -9, sees the old file or the new one, never half of one.
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function tempName(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Fills a temp file beside `target` with `fill`, then renames it over `target`; the temp file never outlives a failure. */
function replaceAtomic(target: string, fill: (tmp: string) => void): void {
  mkdirSync(dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    fill(tmp);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeFileAtomic(target: string, data: string | Buffer): void {
  replaceAtomic(target, (tmp) => writeFileSync(tmp, data));
}

export function copyFileAtomic(source: string, target: string): void {
  replaceAtomic(target, (tmp) => copyFileSync(source, tmp));
}
