// The cache's generation: a token rewritten whenever something is removed from the cache (gc,
// verify). A long-lived process (`lorabuild watch`) that remembers which blobs exist re-checks
// them only after the generation moved, instead of stat-ing every blob on every build.
import { randomBytes } from 'node:crypto';
import { readRegularFileSync, writeOwnedFileAtomic } from './safe-fs.js';
import { CacheLayout } from './layout.js';

export function bumpCacheGeneration(root: string): void {
  writeOwnedFileAtomic(root, new CacheLayout(root).generation, `${Date.now()}-${randomBytes(8).toString('hex')}\n`);
}

/** '' when the cache never had anything removed (or the file is gone with the whole cache) */
export function readCacheGeneration(root: string): string {
  try {
    return readRegularFileSync(new CacheLayout(root).generation, 'utf8');
  } catch {
    return '';
  }
}
