// Walking the cache's stores: every blob, every item memo entry.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SHA256_RE } from '../engine/canonical.js';
import { CacheLayout } from './layout.js';

export interface BlobInfo {
  sha256: string;
  path: string;
  size: number;
}

/** a folder's names, sorted; none when it cannot be read (missing, not a folder) */
export function listOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

export function* allBlobs(root: string): Generator<BlobInfo> {
  const cas = new CacheLayout(root).casDir;
  for (const shard of listOrEmpty(cas)) {
    for (const name of listOrEmpty(join(cas, shard))) {
      const path = join(cas, shard, name);
      if (!SHA256_RE.test(name) || name.slice(0, 2) !== shard) continue;
      try {
        yield { sha256: name, path, size: statSync(path).size };
      } catch {
        // removed meanwhile
      }
    }
  }
}

/** stray files in the CAS folders (temp files of killed writers, anything not named by its hash) */
export function* strayCasFiles(root: string): Generator<string> {
  const cas = new CacheLayout(root).casDir;
  for (const shard of listOrEmpty(cas)) {
    for (const name of listOrEmpty(join(cas, shard))) if (!SHA256_RE.test(name) || name.slice(0, 2) !== shard) yield join(cas, shard, name);
  }
}

