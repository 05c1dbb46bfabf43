// PackMemo (src/cache/sorted-memo.ts) patches the last sorted item records and blob list of a
// stage instead of sorting them again; whatever the changes, the result must be a full sort's, and
// packLists with a slot must write exactly the entry lists packLists without one writes.
import { afterAll, describe, expect, it } from 'vitest';
import { packLists } from '../src/cache/action-cache.js';
import { Cas } from '../src/cache/cas.js';
import { INLINE_LIST_MAX } from '../src/cache/chunk-tree.js';
import type { ItemRecord } from '../src/cache/item-memo.js';
import { PackMemo } from '../src/cache/sorted-memo.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-sorted-memo-');
afterAll(tmp.cleanup);

// a small deterministic generator, so a failure can be replayed
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const key = (r: () => number) => Math.floor(r() * 1e9).toString(16) + (r() < 0.1 ? 'é' : '') + (r() < 0.1 ? 'Z' : '');
/** blobs from a small pool, so that records share them */
const blob = (r: () => number) => Math.floor(r() * 300).toString(16).padStart(64, '0');
const record = (r: () => number, label: string): ItemRecord => ({ label, value: label, refs: [...new Set(Array.from({ length: Math.floor(r() * 4) }, () => blob(r)))].sort() });

/** one round of changes to a map of records: inserts, deletes, a new record for a kept key, a reorder */
function changed(r: () => number, map: Map<string, ItemRecord>, round: number): Map<string, ItemRecord> {
  const next = new Map(map);
  const keys = [...next.keys()];
  const op = round % 6;
  // (a few are inserted one by one, more are merged: both ways)
  if (op === 0) for (let i = 0, n = 1 + Math.floor(r() * 20); i < n; i++) next.set(key(r), record(r, `new ${round}`));
  if (op === 1) for (const k of keys.slice(0, 1 + Math.floor(r() * 20))) next.delete(k);
  if (op === 2) next.set(keys[Math.floor(r() * keys.length)], record(r, `changed ${round}`));
  if (op === 3) next.set('', record(r, 'empty key'));
  if (op === 4) {
    // a key removed and another added with the very same record (its blobs stay named)
    const k = keys[Math.floor(r() * keys.length)];
    const v = next.get(k)!;
    next.delete(k);
    next.set(key(r), v);
  }
  return op === 5 ? new Map([...next].reverse()) : next;
}

const byKey = (a: [string, unknown], b: [string, unknown]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

describe('PackMemo', () => {
  it('gives a full sort\'s entries and blobs across every kind of change, keeping the pairs of unchanged records', () => {
    const r = rng(11);
    const memo = new PackMemo<ItemRecord>();
    let map = new Map<string, ItemRecord>();
    for (let i = 0; i < 400; i++) map.set(key(r), record(r, `item ${i}`));
    let last: [string, ItemRecord][] = [];
    for (let round = 0; round < 300; round++) {
      map = changed(r, map, round);
      const got = memo.sort('slot', map);
      expect(got.entries.map((e) => e[0])).toEqual([...map].sort(byKey).map((e) => e[0]));
      for (const [k, v] of got.entries) expect(v).toBe(map.get(k));
      expect(got.refs).toEqual([...new Set([...map.values()].flatMap((v) => v.refs))].sort());
      const before = new Map(last.map((e) => [e[0], e]));
      for (const e of got.entries) {
        const old = before.get(e[0]);
        if (old && old[1] === e[1]) expect(e).toBe(old);
      }
      last = got.entries;
    }
  });

  it('keeps the slots apart and forgets the oldest past its bound', () => {
    const memo = new PackMemo<ItemRecord>(2);
    const rec = (refs: string[]): ItemRecord => ({ label: '', value: null, refs });
    memo.sort('a', new Map([['c', rec(['3'])], ['a', rec(['1'])]]));
    memo.sort('b', new Map([['x', rec(['9'])]]));
    memo.sort('c', new Map([['y', rec([])]]));
    const a = memo.sort('a', new Map([['d', rec(['4'])], ['a', rec(['1'])]]));
    expect(a.entries.map((e) => e[0])).toEqual(['a', 'd']);
    expect(a.refs).toEqual(['1', '4']);
  });
});

describe('packLists', () => {
  it('writes with a slot exactly the lists it writes without one, with blobs named by records and by the stage', () => {
    const cas = new Cas(tmp.dir);
    const r = rng(5);
    let map = new Map<string, ItemRecord>();
    for (let i = 0; i < INLINE_LIST_MAX + 50; i++) map.set(key(r), record(r, `item ${i}`));
    for (let round = 0; round < 60; round++) {
      map = changed(r, map, round);
      // blobs the stage stored itself: some named by records as well, some by none
      const refs = new Set(Array.from({ length: Math.floor(r() * 5) }, () => (r() < 0.5 ? blob(r) : `${round}`.padStart(64, 'f'))));
      const patched = packLists(cas, refs, map, 'stage');
      expect(patched).toEqual(packLists(cas, refs, map));
    }
  });
});
