// The no-op fast path of a big folder dataset. When every file of the folder has the stat (size,
// mtime, inode) it had when the folder was last listed, its file map is the one listed then: the
// stat memo's own rule (engine/stat-memo.ts), applied to the whole folder at once. The snapshot
// keeps that map's digest and count (what a long map's fingerprint and lock hold, engine/
// file-tree.ts), so a no-op run hashes one key over the walk's stats instead of building a
// 20,000-entry map, a listing and their digests. In the cache beside the folder memo
// (folders/<key>.snap, a few hundred bytes, checksummed, written atomically): a damaged one is
// discarded, never trusted. Saved only when no file was modified within the racy window.
import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { folderKey, framed, unframed } from './folder-cache-file.js';
import { CacheLayout } from '../../cache/layout.js';
import { readRegularFileSync, writeOwnedFileAtomic } from '../../cache/safe-fs.js';
import type { FolderFile } from './walk.js';
import { SHA256_RE } from '../../engine/canonical.js';
import { racy } from '../../engine/racy.js';

export interface ListingSnapshot {
  /** snapshotKey() of the walk it was made for */
  key: string;
  /** the layout the folder was read in (never imagefolder: its entries depend on metadata content) */
  layout: 'lab' | 'kohya';
  /** files in the map */
  count: number;
  /** engine/file-tree.ts filesDigest of the map */
  digest: string;
}

const MAGIC = 'lorabuild-folder-snapshot 1';

export function snapshotPath(cacheDir: string, rootAbs: string): string {
  return new CacheLayout(cacheDir).folderSnapshot(folderKey(rootAbs));
}

/**
 * What decides the map, as far as stats can tell: the folder as the lorafile writes it (the map's
 * paths start with it), the layout asked for, and every walked path with its size, mtime and inode.
 */
export function snapshotKey(display: string, layout: string, walked: readonly FolderFile[]): string {
  const hash = createHash('sha256').update(`${MAGIC}\n${display}\n${layout}\n${walked.length}\n`);
  const numbers = new Float64Array(4096 * 3);
  for (let start = 0; start < walked.length; start += 4096) {
    const slice = walked.slice(start, start + 4096);
    let text = '';
    for (let i = 0; i < slice.length; i++) {
      const f = slice[i];
      text += `${f.rel}\n`;
      numbers[i * 3] = f.size;
      numbers[i * 3 + 1] = f.mtimeMs;
      numbers[i * 3 + 2] = f.ino;
    }
    hash.update(text).update(new Uint8Array(numbers.buffer, 0, slice.length * 3 * 8));
  }
  return hash.digest('hex');
}

/** whether no file was racy when the walk started (engine/racy.ts): modified so recently that it could change again unseen */
export function settled(walked: readonly FolderFile[], walkStartedAt: number): boolean {
  for (const f of walked) {
    if (racy(f.mtimeMs, walkStartedAt)) return false;
  }
  return true;
}

export function formatSnapshot(rootAbs: string, snap: ListingSnapshot): string {
  return framed(MAGIC, { root: rootAbs, key: snap.key, layout: snap.layout, count: snap.count, digest: snap.digest });
}

/** the snapshot in `text` with the folder it is about, or why it is not one this code wrote whole */
export function parseSnapshot(text: string): { root: string; snapshot: ListingSnapshot } | { problem: string } {
  const seen = unframed(text, MAGIC);
  if ('problem' in seen) return seen;
  const { root, key, layout, count, digest } = seen.body;
  if (typeof root !== 'string' || typeof key !== 'string' || !SHA256_RE.test(key) || typeof digest !== 'string' || !SHA256_RE.test(digest)) return { problem: 'it is malformed' };
  if ((layout !== 'lab' && layout !== 'kohya') || !Number.isSafeInteger(count) || (count as number) < 1) return { problem: 'it is malformed' };
  return { root, snapshot: { key, layout, count: count as number, digest } };
}

export function isSnapshotText(text: string): boolean {
  return text.startsWith(`${MAGIC} `);
}

/** the snapshot of the folder `rootAbs`, if there is a whole one */
export function loadSnapshot(file: string, rootAbs: string): ListingSnapshot | undefined {
  let text: string;
  try {
    // a snapshot is a few hundred bytes: anything much bigger is not one (and is not read whole)
    if ((lstatSync(file, { throwIfNoEntry: false })?.size ?? 0) > 4096) return undefined;
    text = readRegularFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const seen = parseSnapshot(text);
  return 'snapshot' in seen && seen.root === rootAbs ? seen.snapshot : undefined;
}

export function saveSnapshot(cacheDir: string, file: string, rootAbs: string, snap: ListingSnapshot): void {
  writeOwnedFileAtomic(cacheDir, file, formatSnapshot(rootAbs, snap));
}
