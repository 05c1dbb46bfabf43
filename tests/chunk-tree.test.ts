// The chunk tree (src/cache/chunk-tree.ts): long record lists as CAS blobs where a one-record change
// writes one leaf and a few inner nodes, and a damaged node is reported, never silently read.
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { readTree, treeNodes, TreeDamage, writeTree } from '../src/cache/chunk-tree.js';
import type { Json } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

const temps: (() => void)[] = [];
afterEach(() => temps.splice(0).forEach((c) => c()));
function store(): Cas {
  const { dir, cleanup } = makeTempDir('lorabuild-tree-');
  temps.push(cleanup);
  return new Cas(dir);
}
function blobCount(cas: Cas): number {
  let n = 0;
  for (const shard of readdirSync(cas.layout.casDir)) n += readdirSync(join(cas.layout.casDir, shard)).length;
  return n;
}
const record = (i: number, caption = `one-line-art, a face ${i}, side view`): Json => ({ id: String(i), image: { sha256: (i * 7919).toString(16).padStart(64, '0'), width: 512, height: 512 }, caption });
const records = (n: number): Json[] => Array.from({ length: n }, (_, i) => record(i));

describe('chunk tree', () => {
  it('reads back exactly what it stored, at every size, and the same list makes the same root without writing again', () => {
    for (const n of [0, 1, 31, 257, 5000]) {
      const cas = store();
      const list = records(n);
      const ref = writeTree(cas, list);
      expect(ref.count).toBe(n);
      expect(readTree(cas, ref)).toEqual(list);
      const blobs = blobCount(cas);
      expect(writeTree(cas, list)).toEqual(ref);
      expect(blobCount(cas)).toBe(blobs);
      expect(new Set(treeNodes(cas, ref)).size).toBe(blobCount(cas));
    }
  });

  it('a one-record edit, insert or delete writes a handful of nodes, as few at 10,000 records as at 1,000', () => {
    const written = (n: number, change: (list: Json[]) => void): { nodes: number; bytes: number } => {
      const cas = store();
      const list = records(n);
      writeTree(cas, list);
      const before = new Set(cas.written);
      change(list);
      cas.written.clear();
      const ref = writeTree(cas, list);
      expect(readTree(cas, ref)).toEqual(list);
      const fresh = [...cas.written].filter((sha) => !before.has(sha));
      return { nodes: fresh.length, bytes: fresh.reduce((s, sha) => s + statSync(cas.path(sha)).size, 0) };
    };
    const changes: [string, (list: Json[]) => void][] = [
      ['edit', (l) => void (l[l.length >> 1] = record(l.length >> 1, 'a new caption'))],
      ['insert', (l) => void l.splice(Math.floor(l.length / 3), 0, record(-1))],
      ['delete', (l) => void l.splice(l.length >> 2, 1)],
    ];
    for (const [what, change] of changes) {
      const small = written(1000, change);
      const large = written(10_000, change);
      expect(small.nodes, what).toBeLessThanOrEqual(6);
      expect(large.nodes, what).toBeLessThanOrEqual(8);
      // a leaf is at most 64 KB of text; the inner nodes on the path are small
      expect(large.bytes, what).toBeLessThan(200_000);
      expect(large.bytes, what).toBeLessThan(small.bytes * 3 + 50_000);
    }
  });

  it('cuts near-identical records (differing in a digit) into ~8 KB leaves too, so an edit stays local', () => {
    const cas = store();
    const list: Json[] = Array.from({ length: 20_000 }, (_, i) => `one-line-art, shape ${i}, side view`);
    const ref = writeTree(cas, list);
    const leaves = treeNodes(cas, ref).filter((sha) => (JSON.parse(readFileSync(cas.path(sha), 'utf8')) as { leaf?: unknown }).leaf);
    const chars = JSON.stringify(list).length;
    // content-defined cuts average the target; cuts that never fire would leave only the positional safety cuts
    expect(leaves.length).toBeGreaterThan(chars / 8192 / 2);
    expect(leaves.length).toBeLessThan((chars / 8192) * 2);
    const before = new Set(cas.written);
    cas.written.clear();
    list.splice(5000, 0, 'one-line-art, shape inserted, side view');
    writeTree(cas, list);
    expect([...cas.written].filter((sha) => !before.has(sha)).length).toBeLessThanOrEqual(6);
  });

  it('a missing, garbled or lying node is TreeDamage naming it, never a short or wrong list', () => {
    const cas = store();
    const list = records(3000);
    const ref = writeTree(cas, list);
    const nodes = treeNodes(cas, ref);
    const leaf = nodes[nodes.length - 1];
    const path = cas.path(leaf);
    const original = readFileSync(path, 'utf8');

    rmSync(path);
    expect(() => readTree(cas, ref)).toThrow(TreeDamage);
    expect(() => readTree(cas, ref)).toThrow(new RegExp(`${leaf} is missing`));

    writeFileSync(path, '{"tree":1,"leaf":[1,2');
    expect(() => readTree(cas, ref)).toThrow(/cannot be read/);

    // a well-formed leaf with a record too few: the parent's count gives it away
    const parsed = JSON.parse(original) as { leaf: Json[] };
    writeFileSync(path, JSON.stringify({ tree: 1, leaf: parsed.leaf.slice(1) }));
    expect(() => readTree(cas, ref)).toThrow(/holds \d+ records, its parent says/);

    // an inner node where a leaf belongs, pointing at itself: refused, no endless recursion
    writeFileSync(path, JSON.stringify({ tree: 1, level: 1, children: [{ sha: leaf, count: 1 }] }));
    expect(() => readTree(cas, ref)).toThrow(/bad level/);

    writeFileSync(path, JSON.stringify({ tree: 2, leaf: [] }));
    expect(() => readTree(cas, ref)).toThrow(/not a tree node/);
    expect(() => readTree(cas, { root: ref.root, count: ref.count + 1 })).toThrow(TreeDamage);
  });
});

