// Folders this process has made or found: a save in `lorabuild watch` writes ~25 files into a
// handful of cache folders, and a `mkdir -p` before each cost two system calls (mkdir, then a stat
// on EEXIST), ~0.1 ms apiece on a slow VM. A folder removed since (gc, a test, a user) is made
// again when a write into it fails for want of it.
import { mkdirSync } from 'node:fs';

const known = new Set<string>();
/** beyond this many, the set starts over (the CAS alone has 256 fan-out folders) */
const MAX_KNOWN = 4096;

/** mkdir -p, skipped for a folder this process has made or found before */
function ensureDir(dir: string): void {
  if (known.has(dir)) return;
  mkdirSync(dir, { recursive: true });
  if (known.size >= MAX_KNOWN) known.clear();
  known.add(dir);
}

/** the folder is not taken for granted any more (after a failure in it) */
export function forgetDir(dir: string): void {
  known.delete(dir);
}

/**
 * `op` (a write into `dir`) with `dir` made first; when `op` fails because the folder this process
 * knew has gone (ENOENT), it is made again and `op` runs once more.
 */
export function inDir<T>(dir: string, op: () => T): T {
  const knew = known.has(dir);
  ensureDir(dir);
  try {
    return op();
  } catch (err) {
    if (!knew || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    known.delete(dir);
    ensureDir(dir);
    return op();
  }
}
