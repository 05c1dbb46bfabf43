// Input file maps of big datasets as chunk trees (cache/chunk-tree.ts) of [path, sha256] pairs,
// sorted by path: what a fingerprint hashes and the lock records in place of 20,000 lines, so that
// one edited caption changes one leaf. Small maps (every lab dataset) stay inline and readable.
import type { Cas } from '../cache/cas.js';
import { readTree, treeRoot, writeTree, type TreeRef } from '../cache/chunk-tree.js';
import type { Json, LockEntry } from './types.js';

/** maps with more files than this are fingerprinted and locked as a tree */
export const FILES_INLINE_MAX = 4096;

function pairs(files: Record<string, string>): Json[] {
  return Object.keys(files)
    .sort()
    .map((path) => [path, files[path]]);
}

const roots = new WeakMap<Record<string, string>, TreeRef>();

/** the tree of a map too long to inline (undefined for a short one); `cas`: write its nodes too */
export function filesTreeOf(files: Record<string, string>, cas?: Cas): TreeRef | undefined {
  const n = Object.keys(files).length;
  if (n <= FILES_INLINE_MAX) return undefined;
  if (!cas) {
    let ref = roots.get(files);
    if (!ref) roots.set(files, (ref = treeRoot(pairs(files))));
    return ref;
  }
  const ref = writeTree(cas, pairs(files));
  roots.set(files, ref);
  return ref;
}

/** the map a tree records, read back from the cache; undefined when its nodes are not there (a fresh clone) */
export function readFilesTree(cas: Cas, ref: TreeRef): Record<string, string> | undefined {
  try {
    const out: Record<string, string> = {};
    for (const pair of readTree(cas, ref)) {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return undefined;
      out[pair[0]] = pair[1];
    }
    return out;
  } catch {
    return undefined;
  }
}

/** the entry with a tree-recorded file map read back into `files` when this cache holds it */
export function withFilesRead(entry: LockEntry, cas: Cas): LockEntry {
  if (!entry.filesTree || Object.keys(entry.files ?? {}).length > 0) return entry;
  const files = readFilesTree(cas, entry.filesTree);
  return files ? { ...entry, files } : entry;
}
