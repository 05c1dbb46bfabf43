// JSON outputs with long top-level lists (listing.json's entries, manifest.json's items) stored as
// a small blob whose long lists are chunk trees (cache/chunk-tree.ts):
//   {"source": "folder", ..., "entries": {"$tree": "<root sha256>", "count": 100000}}
// so that a one-item change writes one leaf, not the whole list again. Readers see the whole
// value: joinTrees puts the lists back.
import type { Json } from '../engine/types.js';
import { INLINE_LIST_MAX } from './action-cache.js';
import type { Cas } from './cas.js';
import { isTreeRef, readTree, writeTree, type TreeRef } from './chunk-tree.js';

const MARK = '$tree';

/** `value` with each named top-level list longer than INLINE_LIST_MAX replaced by a tree reference */
export function splitTrees(cas: Cas, value: Json, fields: readonly string[]): { stored: Json; trees: TreeRef[] } {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return { stored: value, trees: [] };
  const stored: Record<string, Json> = { ...value };
  const trees: TreeRef[] = [];
  for (const field of fields) {
    const list = stored[field];
    if (!Array.isArray(list) || list.length <= INLINE_LIST_MAX) continue;
    const ref = writeTree(cas, list);
    trees.push(ref);
    stored[field] = { [MARK]: ref.root, count: ref.count };
  }
  return { stored, trees };
}

/** the value with its tree references read back into lists (throws TreeDamage when a node is bad) */
export function joinTrees(cas: Cas, parsed: Json): Json {
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return parsed;
  let out: Record<string, Json> | undefined;
  for (const [key, v] of Object.entries(parsed)) {
    if (!v || typeof v !== 'object' || Array.isArray(v) || !(MARK in v)) continue;
    const ref = { root: (v as Record<string, Json>)[MARK], count: (v as Record<string, Json>).count };
    if (!isTreeRef(ref)) continue;
    out ??= { ...parsed };
    out[key] = readTree(cas, ref as TreeRef);
  }
  return out ?? parsed;
}

/** the tree references a stored value names (for gc: the nodes are kept with the entry) */
export function treesOf(parsed: Json): TreeRef[] {
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return [];
  const out: TreeRef[] = [];
  for (const v of Object.values(parsed)) {
    if (!v || typeof v !== 'object' || Array.isArray(v) || !(MARK in v)) continue;
    const ref = { root: (v as Record<string, Json>)[MARK], count: (v as Record<string, Json>).count };
    if (isTreeRef(ref)) out.push(ref);
  }
  return out;
}
