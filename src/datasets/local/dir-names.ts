// The names a folder held when it was last read, keyed by the folder's own stat. Creating,
// removing or renaming an entry changes the folder's mtime and ctime; ctime cannot be set back by
// anyone (touch -d sets mtime only), so an unchanged (dev, ino, mtime, ctime) means unchanged names.
import type { Stats } from 'node:fs';
import { racy } from '../../engine/racy.js';

export interface DirRecord {
  dev: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
  /** entries that are not hidden, sorted, checked (no control characters, valid UTF-8) */
  names: string[];
}

/** folder path inside the dataset folder ('' for the folder itself) -> its record */
export type DirNames = Map<string, DirRecord>;

/** the record of `rel` if it was made for exactly this stat */
export function reusableNames(known: DirNames | undefined, rel: string, st: Stats): DirRecord | undefined {
  const kept = known?.get(rel);
  if (kept && kept.ino === st.ino && kept.dev === st.dev && kept.mtimeMs === st.mtimeMs && kept.ctimeMs === st.ctimeMs) return kept;
  return undefined;
}

/**
 * The record for names read at `readAt` (Date.now() taken before the read), or undefined when the
 * folder was racy then (engine/racy.ts): it could change again within the same timestamp tick.
 */
export function dirRecordFor(st: Stats, names: string[], readAt: number): DirRecord | undefined {
  if (racy(Math.max(st.mtimeMs, st.ctimeMs), readAt)) return undefined;
  return { dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, names };
}

/** two walks' records hold the same folders with the same stats (nothing to save) */
export function sameDirNames(a: DirNames, b: DirNames): boolean {
  if (a.size !== b.size) return false;
  for (const [rel, r] of a) {
    const o = b.get(rel);
    if (o !== r && (!o || o.ino !== r.ino || o.dev !== r.dev || o.mtimeMs !== r.mtimeMs || o.ctimeMs !== r.ctimeMs)) return false;
  }
  return true;
}
