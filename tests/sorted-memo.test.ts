import { describe, expect, it } from 'vitest';
import { EntrySortMemo, SortMemo } from '../src/cache/sorted-memo.js';

// a small deterministic generator, so a failure can be replayed
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const key = (r: () => number) => Math.floor(r() * 1e9).toString(16) + (r() < 0.1 ? 'é' : '') + (r() < 0.1 ? 'Z' : '');

describe('SortMemo', () => {
  it('sorts like Array.prototype.sort across edits, inserts, deletes and reorders of the input', () => {
    const r = rng(7);
    const memo = new SortMemo();
    let keys = [...new Set(Array.from({ length: 500 }, () => key(r)))];
    for (let round = 0; round < 200; round++) {
      const next = new Set(keys);
      const op = round % 5;
      if (op === 0) for (let i = 0; i < 3; i++) next.add(key(r));
      if (op === 1) for (const k of keys.slice(0, 1 + Math.floor(r() * 20))) next.delete(k);
      if (op === 2) {
        next.delete(keys[Math.floor(r() * keys.length)]);
        next.add(key(r));
      }
      if (op === 3) next.add('');
      keys = [...next];
      // the input order is arbitrary (a Set filled in item order)
      if (op === 4) keys.reverse();
      const got = memo.sort('slot', round % 2 ? new Set(keys) : new Map(keys.map((k) => [k, 1])));
      expect(got).toEqual([...keys].sort());
    }
  });

  it('keeps the slots apart', () => {
    const memo = new SortMemo();
    memo.sort('a', new Set(['c', 'a', 'b']));
    memo.sort('b', new Set(['x', 'y']));
    expect(memo.sort('a', new Set(['d', 'b', 'a']))).toEqual(['a', 'b', 'd']);
    expect(memo.sort('b', new Set(['y', 'w']))).toEqual(['w', 'y']);
  });

  it('forgets the oldest slot past its bound and still sorts', () => {
    const memo = new SortMemo(2);
    memo.sort('a', new Set(['b', 'a']));
    memo.sort('b', new Set(['b', 'a']));
    memo.sort('c', new Set(['b', 'a']));
    expect(memo.sort('a', new Set(['c', 'a']))).toEqual(['a', 'c']);
  });
});

describe('EntrySortMemo', () => {
  it('sorts a map\'s entries by key across edits, value changes, inserts and deletes, reusing the pairs of unchanged entries', () => {
    const r = rng(11);
    const memo = new EntrySortMemo<{ v: number }>();
    let map = new Map<string, { v: number }>();
    for (let i = 0; i < 400; i++) map.set(key(r), { v: i });
    let last: [string, { v: number }][] = [];
    for (let round = 0; round < 200; round++) {
      const next = new Map(map);
      const keys = [...next.keys()];
      const op = round % 5;
      if (op === 0) for (let i = 0; i < 3; i++) next.set(key(r), { v: round });
      if (op === 1) for (const k of keys.slice(0, 1 + Math.floor(r() * 20))) next.delete(k);
      // the same key, a new value: the old pair must not stay
      if (op === 2) next.set(keys[Math.floor(r() * keys.length)], { v: -round });
      if (op === 3) next.set('', { v: round });
      map = op === 4 ? new Map([...next].reverse()) : next;
      const got = memo.sort('slot', map);
      const expected = [...map].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      expect(got.map((e) => e[0])).toEqual(expected.map((e) => e[0]));
      for (const [k, v] of got) expect(v).toBe(map.get(k));
      // an entry whose key maps to the very value it had keeps its pair object
      const before = new Map(last.map((e) => [e[0], e]));
      for (const e of got) {
        const old = before.get(e[0]);
        if (old && old[1] === e[1]) expect(e).toBe(old);
      }
      last = got;
    }
  });
});
