// The parsed outputs one stage hands the next (cache/parsed-json.ts) must hold a 100,000-item
// listing or manifest: one not kept is read and parsed again by the next stage into new objects,
// and then `lorabuild watch` knows none of its items by identity (a save at 100k took 5-8 s).
import { describe, expect, it } from 'vitest';
import { parsedJson } from '../src/cache/parsed-json.js';
import { treeChars } from '../src/cache/tree-json.js';

const sha = (n: number) => n.toString(16).padStart(64, '0');

describe('parsed JSON handed between stages', () => {
  it('keeps the value of a 100,000-item list, frozen, and lets the least recently used go past its budget', () => {
    const size = treeChars([{ root: sha(0), count: 100_000 }]) + 200;
    const values = Array.from({ length: 8 }, (_, i) => ({ entries: [{ id: `item ${i}` }] }));
    parsedJson.set(sha(1), values[1], size);
    expect(parsedJson.get(sha(1))).toBe(values[1]);
    expect(Object.isFrozen(values[1].entries[0])).toBe(true);
    // a second one (the manifest next to the listing) keeps the first
    parsedJson.set(sha(2), values[2], size);
    expect(parsedJson.get(sha(1))).toBe(values[1]);
    expect(parsedJson.get(sha(2))).toBe(values[2]);
    // seven of them do not all stay: the least recently used goes, the newest stays
    for (let i = 3; i < 8; i++) parsedJson.set(sha(i), values[i], size);
    expect(parsedJson.get(sha(1))).toBeUndefined();
    expect(parsedJson.get(sha(7))).toBe(values[7]);
  });
});
