// Sorting what is nearly what was sorted last time: a watch build packs the item records of
// 10,000 items after every save, and the blobs they name, where one or two changed. The previous
// sorted pairs are kept; those whose key still maps to the very same record stay in their order
// (the same pair objects: a chunk tree knows records by identity), the few new ones are sorted and
// merged in, and a count of the records naming each blob says which blobs came or went. The result
// is always what a full sort gives (keys by UTF-16 code units, as Array.prototype.sort sorts strings).

/** a record that names blobs (an ItemRecord) */
export interface NamesBlobs {
  readonly refs: readonly string[];
}

/** a map's entries sorted by key, and every blob its records name, sorted, once each */
export interface SortedPack<V> {
  entries: [string, V][];
  refs: string[];
}

interface Kept<V> {
  entries: [string, V][];
  map: ReadonlyMap<string, V>;
  /** blob -> how many of the records name it */
  counts: Map<string, number>;
  refs: string[];
}

export class PackMemo<V extends NamesBlobs> {
  private readonly kept = new Map<string, Kept<V>>();

  constructor(private readonly slots = 16) {}

  /** the map is kept until the slot's next call and must not change meanwhile; the pairs must not be changed */
  sort(slot: string, map: ReadonlyMap<string, V>): SortedPack<V> {
    const prev = this.kept.get(slot);
    // taken out first: a call that throws leaves no half-updated state behind
    this.kept.delete(slot);
    const next = prev === undefined ? fullSort(map) : patched(prev, map);
    this.kept.set(slot, next);
    if (this.kept.size > this.slots) this.kept.delete(this.kept.keys().next().value!);
    return { entries: next.entries, refs: next.refs };
  }
}

/** this many additions or fewer are inserted one by one (see mergeBy) */
const FEW = 8;

const byKey = (a: [string, unknown], b: [string, unknown]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

function fullSort<V extends NamesBlobs>(map: ReadonlyMap<string, V>): Kept<V> {
  const counts = new Map<string, number>();
  for (const v of map.values()) for (const sha of v.refs) counts.set(sha, (counts.get(sha) ?? 0) + 1);
  return { entries: [...map].sort(byKey), map, counts, refs: [...counts.keys()].sort() };
}

/** more changed pairs than this: the sorted entries are filtered in one pass, not spliced */
const SPLICED = 64;

/**
 * The pairs removed from `prev` and added in `now`, found by walking both maps in their insertion
 * order: a stage's run looks its items up in the order of its last run, so the two orders differ
 * only where pairs changed, and only there is a key looked up (a scan looked up every key of both:
 * ~10 ms for 10,000 records before the JIT warms up). Undefined when the orders differ otherwise
 * (pairs moved), or there are too many changes: then the caller compares every pair.
 */
function changesInOrder<V>(prev: ReadonlyMap<string, V>, now: ReadonlyMap<string, V>): { removed: [string, V][]; added: [string, V][] } | undefined {
  const removed: [string, V][] = [];
  const added: [string, V][] = [];
  const a = prev.entries();
  const b = now.entries();
  let x = a.next();
  let y = b.next();
  while (!x.done || !y.done) {
    if (!x.done && !y.done && x.value[1] === y.value[1] && x.value[0] === y.value[0]) {
      x = a.next();
      y = b.next();
    } else if (!x.done && now.get(x.value[0]) !== x.value[1]) {
      removed.push(x.value);
      x = a.next();
    } else if (!y.done && prev.get(y.value[0]) !== y.value[1]) {
      added.push(y.value);
      y = b.next();
    } else return undefined; // a pair of both maps at another place: moved
    if (removed.length + added.length > SPLICED) return undefined;
  }
  return { removed, added };
}

/** the first place in a list sorted by key whose key is not below `k` */
function lowerBound<T>(sorted: readonly T[], k: string, key: (t: T) => string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(sorted[mid]) < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** a list sorted by key, with distinct keys, without the elements of these keys (each one in it) */
function withoutKeys<T>(sorted: T[], keys: Iterable<string>, key: (t: T) => string): T[] {
  const out = sorted.slice();
  for (const k of keys) out.splice(lowerBound(out, k, key), 1);
  return out;
}

function patched<V extends NamesBlobs>(prev: Kept<V>, now: ReadonlyMap<string, V>): Kept<V> {
  // a key whose value changed is one pair removed and one added
  const removed: V[] = [];
  let stay: [string, V][];
  let added: [string, V][] = [];
  const inOrder = changesInOrder(prev.map, now);
  if (inOrder) {
    stay = inOrder.removed.length === 0 ? prev.entries : withoutKeys(prev.entries, inOrder.removed.map((e) => e[0]), (e) => e[0]);
    for (const [, v] of inOrder.removed) removed.push(v);
    added = inOrder.added;
  } else {
    stay = prev.entries.filter((e) => {
      if (now.get(e[0]) === e[1]) return true;
      removed.push(e[1]);
      return false;
    });
    // (every pair that stayed is one of now's: when they are all of them, nothing was added)
    if (stay.length < now.size) for (const [k, v] of now) if (prev.map.get(k) !== v) added.push([k, v]);
  }
  added.sort(byKey);
  // prev is no longer kept (see sort): its counts become the new ones
  const counts = prev.counts;
  const gone = new Set<string>();
  const came: string[] = [];
  for (const v of removed) {
    for (const sha of v.refs) {
      const n = counts.get(sha)! - 1;
      if (n > 0) counts.set(sha, n);
      else {
        counts.delete(sha);
        gone.add(sha);
      }
    }
  }
  for (const [, v] of added) {
    for (const sha of v.refs) {
      const n = counts.get(sha) ?? 0;
      counts.set(sha, n + 1);
      if (n === 0 && !gone.delete(sha)) came.push(sha);
    }
  }
  const kept = gone.size === 0 ? prev.refs : gone.size <= SPLICED ? withoutKeys(prev.refs, gone, (sha) => sha) : prev.refs.filter((sha) => !gone.has(sha));
  return { entries: mergeBy(stay, added, (e) => e[0]), map: now, counts, refs: mergeBy(kept, came.sort(), (s) => s) };
}

/** two lists sorted by key, with no key in both, as one */
export function mergeBy<T>(a: T[], b: T[], key: (t: T) => string): T[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  if (b.length <= FEW) {
    // a save adds one or two: a binary search and a copy each, not a key call per element
    const out = a.slice();
    for (const t of b) out.splice(lowerBound(out, key(t), key), 0, t);
    return out;
  }
  const out = new Array<T>(a.length + b.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < a.length && j < b.length) out[o++] = key(a[i]) < key(b[j]) ? a[i++] : b[j++];
  while (i < a.length) out[o++] = a[i++];
  while (j < b.length) out[o++] = b[j++];
  return out;
}
