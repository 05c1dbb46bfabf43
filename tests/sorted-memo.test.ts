import { describe, expect, it } from 'vitest';
import { SortMemo } from '../src/cache/sorted-memo.js';

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
      const got = memo.sort('slot', [...keys]);
      expect(got).toEqual([...keys].sort());
    }
  });

  it('keeps the slots apart', () => {
    const memo = new SortMemo();
    memo.sort('a', ['c', 'a', 'b']);
    memo.sort('b', ['x', 'y']);
    expect(memo.sort('a', ['d', 'b', 'a'])).toEqual(['a', 'b', 'd']);
    expect(memo.sort('b', ['y', 'w'])).toEqual(['w', 'y']);
  });

  it('forgets the oldest slot past its bound and still sorts', () => {
    const memo = new SortMemo(2);
    memo.sort('a', ['b', 'a']);
    memo.sort('b', ['b', 'a']);
    memo.sort('c', ['b', 'a']);
    expect(memo.sort('a', ['c', 'a'])).toEqual(['a', 'c']);
  });

  it('refuses keys that are not unique', () => {
    expect(() => new SortMemo().sort('a', ['a', 'a'])).toThrow(/not unique/);
  });
});
