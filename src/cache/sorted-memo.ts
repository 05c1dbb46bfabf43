// Sorting a list that is nearly the list sorted last time: a watch build packs the ids and refs of
// 10,000 items after every save, and a full sort of them cost ~20 ms where one or two changed.
// The previous sorted order is kept; what it still has stays in its order, the few new keys are
// sorted and merged in. The result is always the keys sorted as Array.prototype.sort sorts strings
// (by UTF-16 code units), whatever the previous list was.

interface Sorted {
  keys: string[];
  set: ReadonlySet<string> | ReadonlyMap<string, unknown>;
}

/** sorts unique keys, reusing the order kept under `slot` by the previous call */
export class SortMemo {
  private readonly kept = new Map<string, Sorted>();

  constructor(private readonly slots = 16) {}

  /** the keys of a Set or Map, sorted; the collection is kept until the slot's next call and must not change meanwhile */
  sort(slot: string, keys: ReadonlySet<string> | ReadonlyMap<string, unknown>): string[] {
    const prev = this.kept.get(slot);
    const sorted = prev === undefined ? [...keys.keys()].sort() : mergeSorted(prev, keys);
    this.kept.delete(slot);
    this.kept.set(slot, { keys: sorted, set: keys });
    if (this.kept.size > this.slots) this.kept.delete(this.kept.keys().next().value!);
    return sorted;
  }
}

interface SortedEntries<V extends object> {
  entries: [string, V][];
  map: ReadonlyMap<string, V>;
}

/**
 * The entries of a Map sorted by key, as [key, value] pairs: a pair whose key still maps to the
 * very same value is the pair object of the slot's last call (a chunk tree knows records by
 * identity), and the Map is read once per key, not once to sort and once more for its values.
 */
/** values are objects: a missing key (undefined) is never taken for an unchanged value */
export class EntrySortMemo<V extends object> {
  private readonly kept = new Map<string, SortedEntries<V>>();

  constructor(private readonly slots = 16) {}

  /** the map is kept until the slot's next call and must not change meanwhile; the pairs must not be changed */
  sort(slot: string, map: ReadonlyMap<string, V>): [string, V][] {
    const prev = this.kept.get(slot);
    const sorted = prev === undefined ? [...map].sort(byKey) : mergeEntries(prev, map);
    this.kept.delete(slot);
    this.kept.set(slot, { entries: sorted, map });
    if (this.kept.size > this.slots) this.kept.delete(this.kept.keys().next().value!);
    return sorted;
  }
}

const byKey = (a: [string, unknown], b: [string, unknown]): number => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

function mergeEntries<V extends object>(prev: SortedEntries<V>, now: ReadonlyMap<string, V>): [string, V][] {
  // a key whose value changed is one removed and one added
  const stay = prev.entries.filter((e) => now.get(e[0]) === e[1]);
  const added: [string, V][] = [];
  // (every pair that stayed is one of now's: when they are all of them, nothing was added)
  if (stay.length < now.size) for (const [k, v] of now) if (prev.map.get(k) !== v) added.push([k, v]);
  if (added.length === 0) return stay;
  added.sort(byKey);
  const out = new Array<[string, V]>(stay.length + added.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < stay.length && j < added.length) out[o++] = stay[i][0] < added[j][0] ? stay[i++] : added[j++];
  while (i < stay.length) out[o++] = stay[i++];
  while (j < added.length) out[o++] = added[j++];
  return out;
}

function mergeSorted(prev: Sorted, now: ReadonlySet<string> | ReadonlyMap<string, unknown>): string[] {
  const stay = prev.keys.filter((k) => now.has(k));
  const added: string[] = [];
  for (const k of now.keys()) if (!prev.set.has(k)) added.push(k);
  if (added.length === 0) return stay;
  added.sort();
  const out = new Array<string>(stay.length + added.length);
  let i = 0;
  let j = 0;
  let o = 0;
  while (i < stay.length && j < added.length) out[o++] = stay[i] < added[j] ? stay[i++] : added[j++];
  while (i < stay.length) out[o++] = stay[i++];
  while (j < added.length) out[o++] = added[j++];
  return out;
}
