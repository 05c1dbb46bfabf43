// The item memo of `lorabuild watch` (src/cache/item-memo.ts with { remember: true }): records stay
// in memory while a run uses them or a pack held holds them, and are let go otherwise (read from
// their files again if they come back); a record's blobs are re-checked once gc or verify moved
// the cache generation.
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { bumpCacheGeneration } from '../src/cache/generation.js';
import { ItemMemo } from '../src/cache/item-memo.js';
import { makeTempDir } from './helpers/cli.js';
import { dropItemRecords, itemRecord } from './helpers/item-records.js';

const temps: (() => void)[] = [];
afterEach(() => temps.splice(0).forEach((c) => c()));
function memo(): { memo: ItemMemo; cas: Cas; root: string } {
  const { dir, cleanup } = makeTempDir('lorabuild-item-memo-');
  temps.push(cleanup);
  const cas = new Cas(dir, { rememberPresence: true });
  return { memo: new ItemMemo(dir, cas, { remember: true }), cas, root: dir };
}
const hash = (i: number) => i.toString(16).padStart(64, '0');

describe('remembering item memo', () => {
  it('keeps the records the last run used, lets the others go, and reads a let-go record from its file', () => {
    const { memo: m } = memo();
    m.refresh();
    for (const i of [1, 2, 3]) m.put('validate', hash(i), `item ${i}`, { ok: i });
    m.endRun();
    m.refresh();
    expect(m.get('validate', hash(1))?.value).toEqual({ ok: 1 });
    m.endRun();
    // files gone: what is still answered comes from memory
    dropItemRecords(m.layout.root, 'validate', [1, 2, 3].map(hash));
    m.refresh();
    expect(m.get('validate', hash(1))?.value).toEqual({ ok: 1 });
    expect(m.get('validate', hash(2))).toBeUndefined();
    expect(m.get('validate', hash(3))).toBeUndefined();
  });

  it('holds the records of a pack while runs ask for it, and forgets pack and records after a run that does not', () => {
    const { memo: m } = memo();
    m.refresh();
    m.preload([['validate/a', 'a', { ok: 'a' }, []], ['validate/b', 'b', { ok: 'b' }, []], ['broken'] as unknown as string], 'pack1');
    m.endRun();
    for (let run = 0; run < 3; run++) {
      m.refresh();
      expect(m.hasPreloaded('pack1')).toBe(true);
      m.endRun();
    }
    m.refresh();
    // the records were never written as files: only the pack held them
    expect(m.get('validate', 'a')?.value).toEqual({ ok: 'a' });
    expect(m.get('validate', 'b')?.value).toEqual({ ok: 'b' });
    m.endRun();
    m.refresh();
    m.endRun();
    m.refresh();
    expect(m.hasPreloaded('pack1')).toBe(false);
    expect(m.get('validate', 'a')).toBeUndefined();
  });

  it('a ref finds the record it found last time, and reads the file again once the record was let go', () => {
    const { memo: m } = memo();
    const keys = Array.from({ length: 200 }, (_, i) => ({ k: i }));
    m.refresh();
    for (const k of keys) {
      const r = m.ref('validate', k);
      m.put(r.kind, r.keyHash, `item ${k.k}`, { v: k.k });
    }
    m.endRun();
    m.refresh();
    for (const k of keys) expect(m.find(m.ref('validate', k))?.value).toEqual({ v: k.k });
    m.endRun();
    // a run that uses key 0 only: the other 199 are let go (far more than a 64th of the memo)
    m.refresh();
    expect(m.find(m.ref('validate', keys[0]))?.value).toEqual({ v: 0 });
    m.endRun();
    dropItemRecords(m.layout.root, 'validate', keys.map((k) => m.ref('validate', k).keyHash));
    m.refresh();
    expect(m.find(m.ref('validate', keys[0]))?.value).toEqual({ v: 0 });
    expect(m.find(m.ref('validate', keys[1]))).toBeUndefined();
    // put again: the ref finds the new record
    const r1 = m.ref('validate', keys[1]);
    m.put(r1.kind, r1.keyHash, 'item 1', { v: 'again' });
    expect(m.find(r1)?.value).toEqual({ v: 'again' });
    m.endRun();
    m.refresh();
    expect(m.find(r1)?.value).toEqual({ v: 'again' });
  });

  it('a record put again for its id (its blob was gone) is what a ref that held the old one finds', () => {
    const { memo: m, cas, root } = memo();
    const key = { item: 1 };
    m.refresh();
    const blob = cas.putBuffer(Buffer.from('old bytes'));
    const ref = m.ref('prepare', key);
    m.put(ref.kind, ref.keyHash, 'item 1', { caption: blob.sha256, n: 1 });
    m.endRun();
    m.refresh();
    expect(m.find(ref)?.value).toEqual({ caption: blob.sha256, n: 1 });
    m.endRun();
    rmSync(cas.path(blob.sha256));
    bumpCacheGeneration(root);
    m.refresh();
    expect(m.find(ref)).toBeUndefined();
    // the stage computes the item again: the blob is back, the value is another
    cas.putBuffer(Buffer.from('old bytes'));
    m.put(ref.kind, ref.keyHash, 'item 1', { caption: blob.sha256, n: 2 });
    expect(m.find(ref)?.value).toEqual({ caption: blob.sha256, n: 2 });
  });

  it('a record whose blob gc removed is a miss once the cache generation moved', () => {
    const { memo: m, cas, root } = memo();
    m.refresh();
    const blob = cas.putBuffer(Buffer.from('caption bytes'));
    m.put('prepare', hash(7), 'item 7', { caption: blob.sha256 });
    m.endRun();
    m.refresh();
    expect(m.get('prepare', hash(7))).toBeDefined();
    m.endRun();
    rmSync(cas.path(blob.sha256));
    bumpCacheGeneration(root);
    m.refresh();
    expect(m.get('prepare', hash(7))).toBeUndefined();
  });

  it('a pack kept by a build that restored its stage (keepPack) stays held with its records, read from nowhere', () => {
    const { memo: m } = memo();
    const ids = Array.from({ length: 100 }, (_, i) => hash(i));
    m.refresh();
    const made = ids.map((h, i) => m.put('prepare', h, `item ${i}`, { n: i }));
    m.packed('pack-prepare', ids.map((h) => m.id('prepare', h)));
    m.put('validate', hash(1000), 'check', { ok: true });
    m.endRun();
    // an undo: prepare restored from the action cache (nothing looked up), validate ran
    m.refresh();
    m.keepPack('pack-prepare');
    expect(m.get('validate', hash(1000))?.value).toEqual({ ok: true });
    m.endRun();
    // the next save runs prepare: its records are still the very objects, with no file left to read
    dropItemRecords(m.layout.root, 'prepare', ids);
    m.refresh();
    expect(m.hasPreloaded('pack-prepare')).toBe(true);
    ids.forEach((h, i) => expect(m.get('prepare', h)).toBe(made[i]));
    m.endRun();
    // a pack this memo does not hold is not read by keepPack, and not held after it
    m.refresh();
    m.keepPack('never-seen');
    expect(m.hasPreloaded('never-seen')).toBe(false);
    m.endRun();
  });

  it('a record put without a file lives in memory until its stage settles it: dropped when packed, written when not', () => {
    for (const remember of [false, true]) {
      const { dir, cleanup } = makeTempDir('lorabuild-item-memo-');
      temps.push(cleanup);
      const m = new ItemMemo(dir, new Cas(dir), { remember });
      m.refresh();
      const ids = (...hs: string[]) => new Map(hs.map((h) => [m.id('validate', h), true]));
      const packedOne = m.put('validate', hash(1), 'one', { ok: 1 }, undefined, { journal: false });
      m.put('validate', hash(2), 'two', { ok: 2 }, undefined, { journal: false });
      m.put('validate', hash(3), 'three', { ok: 3 }, undefined, { journal: false });
      expect(itemRecord(m.layout.root, 'validate', hash(1)) !== undefined).toBe(false);
      // a remembering memo finds it in memory meanwhile
      if (remember) expect(m.get('validate', hash(1))).toBe(packedOne);
      m.settleUnfiled(ids(hash(1)), true);
      m.settleUnfiled(ids(hash(2)), false);
      expect(itemRecord(m.layout.root, 'validate', hash(1)) !== undefined).toBe(false);
      expect(itemRecord(m.layout.root, 'validate', hash(2))).toEqual({ label: 'two', value: { ok: 2 }, refs: [] });
      // never settled (an interrupted stage): gone with the run, never written
      m.endRun();
      m.settleUnfiled(ids(hash(3)), false);
      expect(itemRecord(m.layout.root, 'validate', hash(3)) !== undefined).toBe(false);
    }
  });
});
