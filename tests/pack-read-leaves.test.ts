// A one-off run that preloads a stage's previous item pack and writes the pack again after a
// one-item change (executor preloadItems -> keepPackLeaves) joins and hashes only the leaves that
// changed, and writes the very tree a write from nothing makes. A leaf read back is kept only where
// the writer would have cut, and only when its text ends with the record's text as written now.
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { keepPackLeaves, packLists } from '../src/cache/action-cache.js';
import { Cas } from '../src/cache/cas.js';
import { keepReadLeaf, readTreeLeaves } from '../src/cache/chunk-tree.js';
import { ItemMemo, type ItemRecord } from '../src/cache/item-memo.js';
import type { Json } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-pack-read-leaves-');
afterAll(tmp.cleanup);
afterEach(() => vi.restoreAllMocks());

const ITEMS = 3000;
const id = (i: number) => `prepare/${(i * 2654435761 >>> 0).toString(16).padStart(8, '0')}${String(i).padStart(56, '0')}`;
const record = (i: number, caption = `one-line-art, shape ${i}, side view`): ItemRecord => ({
  label: `${i}`,
  // non-ASCII in some: the writer counts UTF-16 units, the file holds UTF-8 bytes
  value: { caption: i % 7 === 0 ? `${caption}, café` : caption, width: 512, height: 512 },
  refs: [],
});

/** the records as a one-off run would hold them after reading them back (new objects, same content) */
const fresh = (map: Map<string, ItemRecord>) => new Map([...map].map(([k, r]) => [k, JSON.parse(JSON.stringify(r)) as ItemRecord]));

function countStringify(): { calls: number } {
  const count = { calls: 0 };
  const real = JSON.stringify;
  vi.spyOn(JSON, 'stringify').mockImplementation(((...args: Parameters<typeof JSON.stringify>) => {
    count.calls++;
    return real(...args);
  }) as typeof JSON.stringify);
  return count;
}

describe('an item pack read back and written again', () => {
  it('joins and hashes only the changed leaf, and makes the tree a write from nothing makes', () => {
    const dir = `${tmp.dir}/cache`;
    const cas = new Cas(dir);
    const before = new Map(Array.from({ length: ITEMS }, (_, i) => [id(i), record(i)] as const));
    const pack = packLists(cas, new Set(), before).itemPack!;
    expect(pack.count).toBe(ITEMS);

    // a later process: the pack read and preloaded, its leaves kept
    const memo = new ItemMemo(dir, cas);
    const { records, leaves } = readTreeLeaves(cas, pack);
    expect(leaves.length).toBeGreaterThan(20);
    expect(leaves.reduce((n, l) => n + l.count, 0)).toBe(ITEMS);
    const held = memo.preload(records, pack.root);
    keepPackLeaves(records, held, leaves);

    // this run's records: the preloaded ones, but for one item computed again (a caption edited)
    const now = new Map<string, ItemRecord>();
    for (const [i, r] of held.entries()) now.set((records[i] as Json[])[0] as string, r!);
    now.set(id(1234), record(1234, 'one-line-art, shape 1234, edited'));

    const count = countStringify();
    const written = packLists(cas, new Set(), now).itemPack!;
    const kept = count.calls;
    vi.restoreAllMocks();

    const again = countStringify();
    const fromNothing = packLists(cas, new Set(), fresh(now)).itemPack!;
    expect(written).toEqual(fromNothing);
    expect(again.calls).toBeGreaterThanOrEqual(ITEMS);
    // the changed leaf's records, each kept leaf's last record (checked once), and the inner nodes
    expect(kept).toBeLessThan(ITEMS / 10 + leaves.length + 20);
  });

  it('keeps no leaf whose text does not end with the record as written now, nor one that ended only because the records did', () => {
    const dir = `${tmp.dir}/refused`;
    const cas = new Cas(dir);
    const map = new Map(Array.from({ length: 600 }, (_, i) => [id(i), record(i)] as const));
    const pack = packLists(cas, new Set(), map).itemPack!;
    const { records, leaves } = readTreeLeaves(cas, pack);
    const held = new ItemMemo(dir, cas).preload(records, pack.root);
    const textOf = (p: Json) => JSON.stringify(p);
    let start = 0;
    const kept: boolean[] = [];
    for (const leaf of leaves) {
      const end = start + leaf.count;
      const last = records[end - 1];
      kept.push(keepReadLeaf(textOf, leaf, held.slice(start, end), JSON.stringify(last)));
      // the same leaf, said to end with another record's text
      expect(keepReadLeaf(textOf, leaf, held.slice(start, end), JSON.stringify(records[start]) + ' ')).toBe(false);
      start = end;
    }
    // every leaf but the last ends at a cut; the last one ends where the 600 records did
    expect(kept.slice(0, -1).every(Boolean)).toBe(true);
    expect(kept.at(-1)).toBe(false);
  });
});
