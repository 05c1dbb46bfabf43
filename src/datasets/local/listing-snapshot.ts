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
import type { WalkTable } from './walk.js';
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
export function snapshotKey(display: string, layout: string, walked: WalkTable): string {
  const { rels, numbers } = walked;
  const hash = createHash('sha256').update(`${MAGIC}\n${display}\n${layout}\n${rels.length}\n`);
  // per 4,096 files: their paths, then their numbers (size, mtime, inode) as they are in the table
  for (let start = 0; start < rels.length; start += 4096) {
    const end = Math.min(rels.length, start + 4096);
    let text = '';
    for (let i = start; i < end; i++) text += `${rels[i]}\n`;
    hash.update(text).update(new Uint8Array(numbers.buffer, numbers.byteOffset + start * 24, (end - start) * 24));
  }
  return hash.digest('hex');
}

/** whether no file was racy at `at` (engine/racy.ts): modified so recently that it could change again unseen */
export function settled(walked: WalkTable, at: number): boolean {
  const { numbers } = walked;
  for (let i = 1; i < numbers.length; i += 3) {
    if (racy(numbers[i], at)) return false;
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
