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
