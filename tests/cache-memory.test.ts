// What a long-lived process (`lorabuild watch`) keeps in memory between builds, and what makes it
// let go: blob presence until gc/verify moves the cache generation, key hashes by their JSON text,
// racy stat-memo records kept only for comparison, and JSON outputs handed between stages frozen.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { gcCache } from '../src/cache/gc.js';
import { bumpCacheGeneration, readCacheGeneration } from '../src/cache/generation.js';
import { ItemMemo } from '../src/cache/item-memo.js';
import { canonicalHash } from '../src/engine/canonical.js';
import { makeStageContext } from '../src/engine/stage-context.js';
import { StatMemo } from '../src/engine/stat-memo.js';
import type { Json, StageNode } from '../src/engine/types.js';
import type { Config } from '../src/config/schema.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-cache-memory-');
afterAll(tmp.cleanup);

describe('Cas.listPresence (a one-off run about to check many blobs)', () => {
  it('answers has() for listed blobs without a stat, stats names not listed, and lists only when checks outnumber the store', () => {
    const root = join(tmp.dir, 'listed');
    const cas = new Cas(root);
    const blobs = Array.from({ length: 300 }, (_, i) => cas.putBuffer(Buffer.from(`blob ${i}`)).sha256);
    const stats = { n: 0 };
    const listedCas = new Cas(root);
    // a store of 300 blobs, 1 check expected: listing costs more than it saves
    const few = new Cas(root);
    few.listPresence(1);
    rmSync(few.path(blobs[0]));
    expect(few.has(blobs[0])).toBe(false);
    cas.putBuffer(Buffer.from('blob 0'));
    // 300 checks expected: listed
    listedCas.listPresence(300);
    const statOf = (listedCas as unknown as { path: (sha: string) => string }).path.bind(listedCas);
    (listedCas as unknown as { path: (sha: string) => string }).path = (sha: string) => {
      stats.n++;
      return statOf(sha);
    };
    for (const sha of blobs) expect(listedCas.has(sha)).toBe(true);
    expect(stats.n).toBe(0);
    // written after the listing: found by its stat; a name never written: absent
    const later = cas.putBuffer(Buffer.from('written later')).sha256;
    expect(listedCas.has(later)).toBe(true);
    expect(listedCas.has('f'.repeat(64))).toBe(false);
    expect(stats.n).toBe(2);
    // a size asked for is always checked on disk
    expect(listedCas.has(blobs[1], 1)).toBe(false);
    // a folder at a blob's name is not a blob
    const bogus = 'e'.repeat(64);
    mkdirSync(cas.path(bogus), { recursive: true });
    const again = new Cas(root);
    again.listPresence(10_000);
    expect(again.has(bogus)).toBe(false);
  });
});

describe('ItemMemo of a one-off run', () => {
  it('asks its Cas to list the store for a big preloaded pack, not for a small one or a remembering memo', () => {
    const root = join(tmp.dir, 'preload-list');
    const asked: number[] = [];
    const cas = new Cas(root);
    cas.listPresence = (n: number) => void asked.push(n);
    const pack = (n: number) => Array.from({ length: n }, (_, i) => [`prepare/${i}`, `${i}`, { i }, []] as Json);
    new ItemMemo(root, cas).preload(pack(1_999), 'small');
    expect(asked).toEqual([]);
    new ItemMemo(root, cas).preload(pack(2_000), 'big');
    expect(asked).toEqual([4_000]);
    new ItemMemo(root, cas, { remember: true }).preload(pack(5_000), 'watch');
    expect(asked).toEqual([4_000]);
  });
});

describe('Cas with rememberPresence', () => {
  it('trusts a blob it saw until the cache generation moves', () => {
    const root = join(tmp.dir, 'presence');
    const cas = new Cas(root, { rememberPresence: true });
    const blob = cas.putBuffer(Buffer.from('hello'));
    cas.refreshPresence();
    expect(cas.has(blob.sha256, blob.size)).toBe(true);
    expect(cas.has(blob.sha256, blob.size + 1)).toBe(false);
    rmSync(cas.path(blob.sha256));
    // removed behind its back without a generation bump: still believed (no stat per build)...
    expect(cas.has(blob.sha256)).toBe(true);
    // ...until gc or verify says something was removed
    bumpCacheGeneration(root);
    cas.refreshPresence();
    expect(cas.has(blob.sha256)).toBe(false);
    // a Cas without the option always looks
    const plain = new Cas(root);
    const again = plain.putBuffer(Buffer.from('again'));
    rmSync(plain.path(again.sha256));
    expect(plain.has(again.sha256)).toBe(false);
  });

  it('gc moves the generation only when it removed something', () => {
    const root = join(tmp.dir, 'gc');
    const cas = new Cas(root);
    cas.putBuffer(Buffer.from('unreferenced'));
    expect(readCacheGeneration(root)).toBe('');
    gcCache(root, { keepLast: 1 }, new Set());
    const first = readCacheGeneration(root);
    expect(first).not.toBe('');
    gcCache(root, { keepLast: 1 }, new Set());
    expect(readCacheGeneration(root)).toBe(first);
  });
});

describe('ItemMemo that remembers', () => {
  it('gives the canonical hash whatever the key order, and the same hash again from memory', () => {
    const root = join(tmp.dir, 'items');
    const memo = new ItemMemo(root, new Cas(root), { remember: true });
    const a: Json = { v: 1, item: { id: '3', caption: { text: 'x', line: 1 } }, settings: 'abc' };
    const b: Json = { settings: 'abc', item: { caption: { line: 1, text: 'x' }, id: '3' }, v: 1 };
    expect(memo.keyHash(a)).toBe(canonicalHash(a));
    expect(memo.keyHash(b)).toBe(canonicalHash(a));
    expect(memo.keyHash(a)).toBe(canonicalHash(a));
    expect(memo.keyHash({ ...(a as object), v: 2 })).not.toBe(canonicalHash(a));
  });
});

describe('StatMemo kept across runs', () => {
  it('stops trusting a racy record after the run, but still knows its hash for comparison', () => {
    const file = join(tmp.dir, 'racy.txt');
    writeFileSync(file, 'just written\n');
    const st = statSync(file);
    const memo = StatMemo.inMemory();
    memo.record(file, st, 'a'.repeat(64)); // written a moment ago: racy
    expect(memo.lookup(file, st)).toBe('a'.repeat(64));
    memo.dropRacy();
    expect(memo.lookup(file, st)).toBeUndefined();
    expect(memo.recordedHash(file, st)).toEqual({ sha256: 'a'.repeat(64), racy: true });
    expect(memo.recordedHash(file, { ...st, size: st.size + 1 })).toBeUndefined();
    const old = { size: 3, mtimeMs: Date.now() - 60_000, ino: 7 };
    memo.record('/elsewhere', old, 'b'.repeat(64));
    memo.dropRacy();
    expect(memo.recordedHash('/elsewhere', old)).toEqual({ sha256: 'b'.repeat(64), racy: false });
  });
});

describe('JSON outputs between stages', () => {
  const config = { root: tmp.dir } as unknown as Config;
  const node = (id: string, deps: string[]): StageNode => ({ id, kind: id.split(':')[0], target: 'ds', deps, resource: 'cpu' }) as unknown as StageNode;
  const deps = (root: string, n: StageNode, upstream: Map<string, { files: Record<string, { sha256: string; size: number }>; meta: Json }>) => {
    const cas = new Cas(root);
    return {
      config,
      node: n,
      cacheDir: root,
      signal: new AbortController().signal,
      previous: undefined,
      options: {},
      memo: StatMemo.inMemory(),
      cas,
      items: new ItemMemo(root, cas),
      upstream,
      emit: () => {},
      worker: async () => {
        throw new Error('no worker');
      },
    };
  };

  it('writes compact JSON into the CAS and hands the same frozen value downstream', () => {
    const root = join(tmp.dir, 'json');
    const upstream = new Map();
    const writer = makeStageContext(deps(root, node('prepare:ds', []), upstream), join(tmp.dir, 'staging'));
    const manifest = { dataset: 'ds', items: [{ id: '0', caption: { text: 'a cat' } }] } as unknown as Json;
    const blob = writer.ctx.writeJson('manifest.json', manifest);
    expect(writer.record.added.get('manifest.json')).toEqual(blob);
    const onDisk = readFileSync(new Cas(root).path(blob.sha256), 'utf8');
    expect(onDisk).toBe(`${JSON.stringify(manifest)}\n`);
    upstream.set('prepare:ds', { files: { 'manifest.json': blob }, meta: null });
    const reader = makeStageContext(deps(root, node('validate:ds', ['prepare:ds']), upstream), null);
    const value = reader.ctx.readJson('prepare:ds', 'manifest.json') as { items: { caption: { text: string } }[] };
    expect(value).toEqual(JSON.parse(onDisk));
    expect(() => {
      value.items[0].caption.text = 'changed downstream';
    }).toThrow(TypeError);
    expect(() => reader.ctx.readJson('prepare:ds', 'listing.json')).toThrow(/has no output named 'listing.json'/);
  });

  it('reads and parses the blob when this process did not write it', () => {
    const root = join(tmp.dir, 'json-cold');
    const cas = new Cas(root);
    const blob = cas.putBuffer(Buffer.from('{"entries":[1,2,3],"layout":"lab"}\n'));
    const upstream = new Map([['fetch:ds', { files: { 'listing.json': blob }, meta: null }]]);
    const reader = makeStageContext(deps(root, node('prepare:ds', ['fetch:ds']), upstream), null);
    expect(reader.ctx.readJson('fetch:ds', 'listing.json')).toEqual({ entries: [1, 2, 3], layout: 'lab' });
    const broken = cas.putBuffer(Buffer.from('{"entries": [1,'));
    upstream.set('fetch:ds', { files: { 'listing.json': broken }, meta: null });
    expect(() => reader.ctx.readJson('fetch:ds', 'listing.json')).toThrow(/listing.json is not valid JSON.*cache verify/);
  });
});

describe('item lookups of a stage run after run (watch)', () => {
  const config = { root: tmp.dir } as unknown as Config;
  const node = { id: 'validate:ds', kind: 'validate', target: 'ds', deps: [], resource: 'cpu' } as unknown as StageNode;

  it('an item asked for with memoized, then item, counts as one lookup: the keys after it keep their places', async () => {
    const root = join(tmp.dir, 'aligned');
    const cas = new Cas(root, { rememberPresence: true });
    const items = new ItemMemo(root, cas, { remember: true });
    const keys: Json[] = Array.from({ length: 50 }, (_, i) => ({ item: i }));
    /** one run of a stage over `keys` the way validate asks; returns how many keys went to the memo's ref */
    const run = async (): Promise<number> => {
      items.refresh();
      let refs = 0;
      const ref = items.ref.bind(items);
      items.ref = (kind, key) => (refs++, ref(kind, key));
      try {
        const { ctx } = makeStageContext({ config, node, cacheDir: root, signal: new AbortController().signal, previous: undefined, options: {}, memo: StatMemo.inMemory(), cas, items, upstream: new Map(), emit: () => {}, worker: async () => { throw new Error('no worker'); } }, join(root, 'staging'));
        for (const [i, key] of keys.entries()) {
          const value = ctx.memoized?.<Json>(`${i}`, key) ?? (await ctx.item(`${i}`, key, async () => ({ checked: JSON.stringify(key) })));
          expect(value).toEqual({ checked: JSON.stringify(key) });
        }
      } finally {
        delete (items as { ref?: unknown }).ref;
        items.endRun();
      }
      return refs;
    };
    expect(await run()).toBe(50);
    expect(await run()).toBe(0);
    // the first item changed: it misses, is computed, and the other 49 are found at their places
    keys[0] = { item: 0, caption: 'changed' };
    expect(await run()).toBe(1);
    expect(await run()).toBe(0);
  });
});
