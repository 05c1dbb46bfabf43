// The action cache: fingerprint -> what the stage produced. Every fingerprint ever built is kept
// (until gc), so going back to an earlier input set restores its outputs without running anything.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Json, StageOutputs } from '../engine/types.js';
import { readRegularFileSync, writeOwnedFileAtomic } from './safe-fs.js';
import { CacheLayout } from './layout.js';
import type { Cas } from './cas.js';
import { INLINE_LIST_MAX, isTreeRef, keepReadLeaf, readTree, treeNodes, writeTree, type ReadLeaf, type TreeRef } from './chunk-tree.js';
import type { ItemRecord } from './item-memo.js';
import { mergeBy, PackMemo } from './sorted-memo.js';

export interface ActionEntry {
  version: 1;
  stage: string;
  kind: string;
  fingerprint: string;
  params: Record<string, Json>;
  /** fingerprints of the upstream stages consumed */
  upstream: Record<string, string>;
  outputs: StageOutputs;
  /** every blob the outputs depend on besides outputs.files (e.g. images a manifest names) */
  refs: string[];
  /** item memo entries used ("kind/keyhash"): gc keeps them while this entry lives */
  items: string[];
  /**
   * Long lists live in the CAS as chunk trees (cache/chunk-tree.ts), so that an entry of a
   * 100,000-item stage stays small and a one-item change writes one leaf: `refsTree` holds the
   * refs (then `refs` is empty), `itemPack` the item records [id, label, value, refs] (then `items`
   * is empty; the next run of the stage preloads them instead of reading one file per item), and
   * `trees` the trees its outputs name (listing and manifest entries).
   */
  refsTree?: TreeRef;
  itemPack?: TreeRef;
  trees?: TreeRef[];
  createdAt: string;
  durationMs: number;
}

export class ActionCache {
  readonly layout: CacheLayout;
  constructor(root: string) {
    this.layout = new CacheLayout(root);
  }

  get(fingerprint: string): ActionEntry | undefined {
    try {
      const entry = JSON.parse(readRegularFileSync(this.layout.action(fingerprint), 'utf8')) as ActionEntry;
      return entry.version === 1 && entry.fingerprint === fingerprint ? entry : undefined;
    } catch {
      return undefined;
    }
  }

  has(fingerprint: string): boolean {
    try {
      return statSync(this.layout.action(fingerprint)).isFile();
    } catch {
      return false;
    }
  }

  put(entry: ActionEntry): void {
    // a lost entry is a miss (the stage runs again): no need for ext4's flush on a replacing rename
    writeOwnedFileAtomic(this.layout.root, this.layout.action(entry.fingerprint), JSON.stringify(entry), { missingIsAbsent: true });
  }

  remove(fingerprint: string): void {
    rmSync(this.layout.action(fingerprint), { force: true });
    rmSync(this.layout.log(fingerprint), { force: true });
  }

  /** every entry in the cache (unreadable ones are skipped) */
  *all(): Generator<ActionEntry> {
    let shards: string[];
    try {
      shards = readdirSync(this.layout.actionsDir);
    } catch {
      return;
    }
    for (const shard of shards.sort()) {
      let names: string[];
      try {
        names = readdirSync(join(this.layout.actionsDir, shard)).sort();
      } catch {
        continue; // not a folder: damage that `cache verify` removes
      }
      for (const name of names) {
        if (!name.endsWith('.json')) continue;
        const entry = this.get(name.slice(0, -'.json'.length));
        if (entry) yield entry;
      }
    }
  }
}

/** an item record as an item pack holds it: [id, label, value, refs] */
export type PackedItem = [id: string, record: ItemRecord];

/**
 * Pack text of each record object: the records of a memo that outlives a run (`lorabuild watch`)
 * are the same objects save after save, and serialising 10,000 of them again for every pack cost
 * more than the rest of the save.
 */
const packTexts = new WeakMap<ItemRecord, string>();

function packText([id, r]: PackedItem): string {
  let text = packTexts.get(r);
  if (text === undefined) {
    text = JSON.stringify([id, r.label, r.value, r.refs]);
    packTexts.set(r, text);
  }
  return text;
}

/** one function each (chunk trees keep their leaves per textOf): a pack's records are known by their ItemRecord */
const packRecordText = (p: Json): string => packText(p as unknown as PackedItem);
const packRecordIdentity = (p: Json): unknown => (p as unknown as PackedItem)[1];

/**
 * The leaves of a pack read by a one-off run (`records` as read, `held` the record object each is
 * held as: ItemMemo.preload), kept for this run's pack: a stage that runs again after a one-item
 * change writes its pack from those very records, and only the leaves that changed are joined and
 * hashed again (at 100,000 items, ~30 MB of JSON per pack).
 */
export function keepPackLeaves(records: readonly Json[], held: readonly (ItemRecord | undefined)[], leaves: readonly ReadLeaf[]): void {
  let start = 0;
  for (const leaf of leaves) {
    const end = start + leaf.count;
    const ids = held.slice(start, end);
    const last = records[end - 1];
    if (ids.every((r) => r !== undefined) && Array.isArray(last) && typeof last[0] === 'string') keepReadLeaf(packRecordText, leaf, ids, packText([last[0], held[end - 1]!]));
    start = end;
  }
}

/** the last sorted item records and refs of each stage (a watch packs nearly the same lists save after save) */
const packMemo = new PackMemo<ItemRecord>();

/**
 * The entry's refs and item ids, long lists written to the CAS as chunk trees. `refs` are the blobs
 * used besides those the item records name (which are added here). `slot` (the stage id) lets long
 * lists be sorted by patching what the stage's previous pack had.
 */
export function packLists(cas: Cas, refs: ReadonlySet<string>, items: ReadonlyMap<string, ItemRecord>, slot?: string): Pick<ActionEntry, 'refs' | 'items' | 'refsTree' | 'itemPack'> {
  let sortedItems: PackedItem[];
  let sortedRefs: string[];
  if (slot !== undefined && items.size > INLINE_LIST_MAX) {
    const pack = packMemo.sort(slot, items);
    sortedItems = pack.entries;
    // most blobs a stage stores are named by its records too (a caption's bytes): the rest are few
    const more = [...refs].filter((sha) => binarySearch(pack.refs, sha) < 0).sort();
    sortedRefs = mergeBy(pack.refs, more, (sha) => sha);
  } else {
    sortedItems = [...items].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const all = new Set(refs);
    for (const record of items.values()) for (const sha of record.refs) all.add(sha);
    sortedRefs = [...all].sort();
  }
  return {
    ...(sortedRefs.length > INLINE_LIST_MAX ? { refs: [], refsTree: writeTree(cas, sortedRefs) } : { refs: sortedRefs }),
    ...(sortedItems.length > INLINE_LIST_MAX
      ? { items: [], itemPack: writeTree(cas, sortedItems as unknown as Json[], packRecordText, packRecordIdentity) }
      : { items: sortedItems.map((i) => i[0]) }),
  };
}

/** index of `key` in the sorted list, or a negative number */
function binarySearch(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < key) lo = mid + 1;
    else if (sorted[mid] > key) hi = mid - 1;
    else return mid;
  }
  return -1;
}

/** every blob an entry needs kept: outputs, refs (inline or in their tree) and the nodes of its trees */
export function entryBlobs(entry: ActionEntry, cas: Cas): string[] {
  const out = [...Object.values(entry.outputs.files).map((f) => f.sha256), ...entry.refs];
  if (entry.refsTree) for (const sha of readTree(cas, entry.refsTree, out)) if (typeof sha === 'string') out.push(sha);
  if (entry.itemPack) {
    for (const record of readTree(cas, entry.itemPack, out)) if (Array.isArray(record) && Array.isArray(record[3])) for (const sha of record[3]) if (typeof sha === 'string') out.push(sha);
  }
  for (const tree of entry.trees ?? []) for (const sha of treeNodes(cas, tree)) out.push(sha);
  return out;
}

/** the item memo ids an entry used */
export function entryItems(entry: ActionEntry, cas: Cas): string[] {
  const out = [...entry.items];
  if (entry.itemPack) for (const record of readTree(cas, entry.itemPack)) if (Array.isArray(record) && typeof record[0] === 'string') out.push(record[0]);
  return out;
}

/**
 * The entry as another cache gets it (the remote cache): its outputs only. Refs and item records
 * name this cache's blobs and item memos.
 */
export function withoutLocalLists(entry: ActionEntry): ActionEntry {
  return { ...entry, refs: [], items: [], refsTree: undefined, itemPack: undefined, trees: undefined };
}

/** the optional tree fields are well-formed where present */
export function entryTreesOk(entry: Record<string, unknown>): boolean {
  return (
    (entry.refsTree === undefined || isTreeRef(entry.refsTree)) &&
    (entry.itemPack === undefined || isTreeRef(entry.itemPack)) &&
    (entry.trees === undefined || (Array.isArray(entry.trees) && entry.trees.every(isTreeRef)))
  );
}
