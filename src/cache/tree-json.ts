// JSON outputs with long top-level lists (listing.json's entries, manifest.json's items) stored as
// a small blob whose long lists are chunk trees (cache/chunk-tree.ts):
//   {"source": "folder", ..., "entries": {"$tree": "<root sha256>", "count": 100000}}
// so that a one-item change writes one leaf, not the whole list again. Readers see the whole
// value: joinTrees puts the lists back.
import type { Json } from '../engine/types.js';
import type { Cas } from './cas.js';
import { INLINE_LIST_MAX, isTreeRef, readSharedTree, writeSharedTree, type TreeRef } from './chunk-tree.js';

const MARK = '$tree';

/** `value` with each named top-level list longer than INLINE_LIST_MAX replaced by a tree reference */
export function splitTrees(cas: Cas, value: Json, fields: readonly string[]): { stored: Json; trees: TreeRef[] } {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return { stored: value, trees: [] };
  const stored: Record<string, Json> = { ...value };
  const trees: TreeRef[] = [];
  for (const field of fields) {
    const list = stored[field];
    if (!Array.isArray(list) || list.length <= INLINE_LIST_MAX) continue;
    const ref = writeSharedTree(cas, list);
    trees.push(ref);
    stored[field] = { [MARK]: ref.root, count: ref.count };
  }
  return { stored, trees };
}

/** the tree a field's value names ({"$tree": root, "count": n}), if it names one */
function refOf(v: Json): TreeRef | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v) || !(MARK in v)) return undefined;
  const ref = { root: v[MARK], count: v.count };
  return isTreeRef(ref) ? ref : undefined;
}

/**
 * The value with its tree references read back into lists (throws TreeDamage when a node is bad),
 * and the trees it read.
 */
export function joinTrees(cas: Cas, parsed: Json): { value: Json; trees: TreeRef[] } {
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return { value: parsed, trees: [] };
  let out: Record<string, Json> | undefined;
  const trees: TreeRef[] = [];
  for (const [key, v] of Object.entries(parsed)) {
    const ref = refOf(v);
    if (!ref) continue;
    out ??= { ...parsed };
    out[key] = readSharedTree(cas, ref);
    trees.push(ref);
  }
  return { value: out ?? parsed, trees };
}

/** about how many characters of JSON the trees' records take (parsed-json.ts bounds its memory by that) */
export function treeChars(trees: readonly TreeRef[]): number {
  return trees.reduce((n, t) => n + t.count * 256, 0);
}
