// The chunk tree's kept leaves (src/cache/chunk-tree.ts): a writer that hands the same record
// objects again (`lorabuild watch` after a save) reuses their leaves without serialising them, and
// the tree it writes must be the very tree a fresh writer makes of equal, new objects.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { readTree, writeTree } from '../src/cache/chunk-tree.js';
import type { Json } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

const temps: (() => void)[] = [];
afterEach(() => temps.splice(0).forEach((c) => c()));
function store(): Cas {
  const { dir, cleanup } = makeTempDir('lorabuild-tree-kept-');
  temps.push(cleanup);
  return new Cas(dir);
}
const record = (i: number, caption = `one-line-art, a face ${i}, side view`): Json => ({ id: String(i), image: { sha256: (i * 7919).toString(16).padStart(64, '0') }, caption });
/** equal records as new objects: what a writer with nothing kept serialises */
const fresh = (list: readonly Json[]): Json[] => JSON.parse(JSON.stringify(list)) as Json[];

describe('chunk tree kept leaves', () => {
  it('edits, inserts, deletes and moves of kept objects give the tree a fresh writer gives', () => {
    const cas = store();
    let list: Json[] = Array.from({ length: 3000 }, (_, i) => record(i));
    const steps: [string, (l: Json[]) => Json[]][] = [
      ['edit one', (l) => l.map((r, i) => (i === 1234 ? record(i, 'edited') : r))],
      ['insert one', (l) => [...l.slice(0, 700), record(90_000), ...l.slice(700)]],
      ['delete one', (l) => [...l.slice(0, 2000), ...l.slice(2001)]],
      ['delete a run', (l) => [...l.slice(0, 100), ...l.slice(400)]],
      ['append', (l) => [...l, record(90_001), record(90_002)]],
      ['move a block', (l) => [...l.slice(500, 900), ...l.slice(0, 500), ...l.slice(900)]],
      ['drop the first', (l) => l.slice(1)],
      ['same list again', (l) => l],
    ];
    writeTree(cas, list);
    for (const [what, step] of steps) {
      list = step(list);
      const kept = writeTree(cas, list);
      const other = store();
      expect(writeTree(other, fresh(list)), what).toEqual(kept);
      expect(readTree(cas, kept), what).toEqual(list);
    }
  });

  it('records known by another object (identityOf) reuse leaves by it, and text per textOf', () => {
    const cas = store();
    const values = Array.from({ length: 2000 }, (_, i) => record(i));
    const textOf = (p: Json) => JSON.stringify([(p as Json[])[0], (p as Json[])[1]]);
    const identityOf = (p: Json) => (p as Json[])[1];
    // new tuples every time, the same values inside: as the executor packs ItemRecords
    const pack = (vs: Json[]) => vs.map((v, i) => [`id${i}`, v] as Json);
    writeTree(cas, pack(values), textOf, identityOf);
    const edited = values.map((v, i) => (i === 999 ? record(i, 'edited') : v));
    const ref = writeTree(cas, pack(edited), textOf, identityOf);
    expect(writeTree(store(), fresh(pack(edited)), textOf)).toEqual(ref);
    // the same objects under the default text are other leaves, not the packed ones
    const plain = writeTree(cas, edited);
    expect(writeTree(store(), fresh(edited))).toEqual(plain);
  });

  it('a kept leaf whose blob is gone is written again, never named while missing', () => {
    const cas = store();
    const list = Array.from({ length: 1500 }, (_, i) => record(i));
    const first = writeTree(cas, list);
    for (const shard of readdirSync(cas.layout.casDir)) rmSync(join(cas.layout.casDir, shard), { recursive: true });
    const again = writeTree(cas, list);
    expect(again).toEqual(first);
    expect(readTree(cas, again)).toEqual(list);
  });

  it('string records (sha lists) reuse their leaves too', () => {
    const cas = store();
    const shas = Array.from({ length: 5000 }, (_, i) => (i * 104729).toString(16).padStart(64, '0')).sort();
    writeTree(cas, shas);
    const fewer = [...shas.slice(0, 2500), ...shas.slice(2501)];
    expect(writeTree(cas, fewer)).toEqual(writeTree(store(), [...fewer]));
  });
});
