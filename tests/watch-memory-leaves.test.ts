// What a watch keeps in memory so that a save costs what changed: the parsed leaves of chunk trees
// (cache/chunk-tree.ts keepLeavesInMemory) and the file map a kept lock entry records
// (engine/file-tree.ts keepAtHand). Without them a save back to a state an earlier process built
// (its prepare restored from cache, its manifest read back from the store) re-keyed every item in
// validate, and the first save after the warm-up read the listing's tree back.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { keepLeavesInMemory, readSharedTree, readTree, treeNodes, writeSharedTree, writeTree } from '../src/cache/chunk-tree.js';
import { deepFreeze } from '../src/cache/parsed-json.js';
import { keepAtHand, lazyFileMap, readFilesTree, registerFileMap, writeFilesTree } from '../src/engine/file-tree.js';
import type { Json } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

const temps: (() => void)[] = [];
afterEach(() => {
  temps.splice(0).forEach((c) => c());
  keepLeavesInMemory(false);
});
function store(): Cas {
  const { dir, cleanup } = makeTempDir('lorabuild-leaves-');
  temps.push(cleanup);
  return new Cas(dir);
}
const record = (i: number, caption = `one-line-art, a face ${i}, side view`): Json => ({ id: String(i), image: { sha256: (i * 7919).toString(16).padStart(64, '0') }, caption });
const frozenRecords = (n: number): Json[] => deepFreeze(Array.from({ length: n }, (_, i) => record(i)));
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
/** a store with no blobs (a fresh one): a read that needs one finds it missing */
const emptyStore = (): Cas => store();

describe('parsed leaves kept in memory (a watch)', () => {
  it('a tree written then read back gives the writer\'s very (frozen) records, leaf by leaf, without reading a leaf', () => {
    keepLeavesInMemory(true);
    const cas = store();
    const a = frozenRecords(3000);
    const refA = writeSharedTree(cas, a);
    // state B: one record changed; its tree shares every leaf but one with A's
    const b = [...a];
    b[1500] = deepFreeze(record(1500, 'edited'));
    const refB = writeSharedTree(cas, b);
    // the leaves' blobs gone from disk: a read that opened one would throw TreeDamage
    const leaves = [...treeNodes(cas, refA), ...treeNodes(cas, refB)].filter((node) => readFileSync(cas.path(node), 'utf8').startsWith('{"tree":1,"leaf"'));
    expect(leaves.length).toBeGreaterThan(10);
    for (const leaf of new Set(leaves)) rmSync(cas.path(leaf));
    const readA = readSharedTree(cas, refA);
    expect(readA.length).toBe(3000);
    expect(readA.every((r, i) => r === a[i])).toBe(true);
    const readB = readSharedTree(cas, refB);
    expect(readB.every((r, i) => r === b[i])).toBe(true);
  });

  it('a tree another process wrote is parsed once: a second read gives the same frozen objects', () => {
    const cas = store();
    const list = Array.from({ length: 2000 }, (_, i) => record(i));
    const ref = writeSharedTree(cas, list); // cache off: as another process wrote it
    keepLeavesInMemory(true);
    const first = readSharedTree(cas, ref);
    expect(first).toEqual(list);
    expect(first.every((r) => Object.isFrozen(r))).toBe(true);
    const second = readSharedTree(cas, ref);
    expect(second.every((r, i) => r === first[i])).toBe(true);
  });

  it('off (one-off runs), for records a reader could not share, or for other trees (item packs), every read parses anew', () => {
    const cas = store();
    const ref = writeSharedTree(cas, frozenRecords(1000));
    const once = readSharedTree(cas, ref);
    expect(readSharedTree(cas, ref).some((r, i) => r === once[i])).toBe(false);
    expect(Object.isFrozen(once[0])).toBe(false);
    keepLeavesInMemory(true);
    // unfrozen records: not handed to readers, and not frozen behind the writer's back
    const loose = Array.from({ length: 1000 }, (_, i) => record(i + 5000));
    const refLoose = writeSharedTree(cas, loose);
    expect(readSharedTree(cas, refLoose).some((r, i) => r === loose[i])).toBe(false);
    expect(Object.isFrozen(loose[0])).toBe(false);
    // a tree that is not a JSON output's list (writeTree, readTree) takes no part
    const other = frozenRecords(1000).map((r) => deepFreeze({ ...(r as object), extra: 1 }) as Json);
    const refOther = writeTree(cas, other);
    const read = readTree(cas, refOther);
    expect(read.some((r, i) => r === other[i])).toBe(false);
    expect(readTree(cas, refOther).some((r, i) => r === read[i])).toBe(false);
    expect(Object.isFrozen(read[0])).toBe(false);
  });
});

describe('the file map of a kept lock entry, at hand for the next build', () => {
  const paths = Array.from({ length: 5000 }, (_, i) => `data/text/${String(i).padStart(4, '0')}.txt`);
  const shas = paths.map((p) => sha(p));
  function registered(): Record<string, string> {
    const files: Record<string, string> = {};
    for (let i = 0; i < paths.length; i++) files[paths[i]] = shas[i];
    registerFileMap(files, paths, shas);
    return files;
  }

  it('a built map is kept: its tree needs no read (the store may not even hold it)', () => {
    const files = registered();
    const tree = writeFilesTree(files, store())!;
    // written by this process, so held already; a tree of the same digest from a lock, read in a fresh store
    expect(readFilesTree(emptyStore(), tree)).toBe(files);
    const other = { ...files, 'data/text/extra.txt': sha('extra') };
    const otherTree = writeFilesTree(other, store())!;
    writeFilesTree(registered(), store()); // two newer maps push `other` out
    writeFilesTree({ ...files, 'data/text/x.txt': sha('x') }, store());
    expect(readFilesTree(emptyStore(), otherTree)).toBeUndefined();
    keepAtHand(otherTree, other, false);
    expect(readFilesTree(emptyStore(), otherTree)).toBe(other);
  });

  it('a lazy map still unbuilt is built and kept only when asked to (a warm-up); a map that cannot be built is not kept', () => {
    const files = registered();
    const tree = writeFilesTree(files, store())!;
    writeFilesTree({ a: sha('a'), ...files }, store());
    writeFilesTree({ b: sha('b'), ...files }, store());
    expect(readFilesTree(emptyStore(), tree)).toBeUndefined();
    let loads = 0;
    const lazy = lazyFileMap(tree.digest, tree.count, () => {
      loads++;
      return registered();
    });
    keepAtHand(tree, lazy, false);
    expect(loads).toBe(0);
    expect(readFilesTree(emptyStore(), tree)).toBeUndefined();
    keepAtHand(tree, lazy, true);
    expect(loads).toBe(1);
    expect(readFilesTree(emptyStore(), tree)).toBe(lazy);
    // a file changed since the walk: its load throws; nothing kept, nothing thrown
    const other = { ...files, c: sha('c') };
    const otherTree = writeFilesTree(other, store())!;
    writeFilesTree({ d: sha('d'), ...files }, store());
    writeFilesTree({ e: sha('e'), ...files }, store());
    const broken = lazyFileMap(otherTree.digest, otherTree.count, () => {
      throw new Error('data/text/0001.txt changed since the walk');
    });
    expect(() => keepAtHand(otherTree, broken, true)).not.toThrow();
    expect(readFilesTree(emptyStore(), otherTree)).toBeUndefined();
    // a map that is not the tree's (another digest) is never kept under it
    keepAtHand(otherTree, registered(), false);
    expect(readFilesTree(emptyStore(), otherTree)).toBeUndefined();
  });
});
