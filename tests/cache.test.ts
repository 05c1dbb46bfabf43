// Cache stores on real files: CAS atomicity and dedup, verify quarantining a corrupted blob,
// gc policies, the writer lock between real processes (including a stale lock of a killed one).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync, utimesSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ActionCache, type ActionEntry } from '../src/cache/action-cache.js';
import { Cas } from '../src/cache/cas.js';
import { gcCache, parseSize } from '../src/cache/gc.js';
import { ItemMemo } from '../src/cache/item-memo.js';
import { verifyCache } from '../src/cache/verify.js';
import type { Json } from '../src/engine/types.js';
import { acquireWriterLock, currentWriter } from '../src/cache/writer-lock.js';
import { canonicalJson } from '../src/engine/canonical.js';
import { makeTempDir, REPO_ROOT, runCli } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir('lorabuild-cache-')));
afterEach(() => cleanup());

function entry(stage: string, fingerprint: string, files: Record<string, { sha256: string; size: number }>, createdAt: string, refs: string[] = [], items: string[] = []): ActionEntry {
  return { version: 1, stage, kind: 'train', fingerprint, params: {}, upstream: {}, outputs: { files, meta: null }, refs, items, createdAt, durationMs: 1 };
}

describe('canonical JSON', () => {
  it('sorts keys at every level and keeps arrays in order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: 'x' } })).toBe('{"a":{"c":"x","d":[2,1]},"b":1}');
  });

  it('is JSON of the value with keys in code-unit order at every level, undefined members left out', () => {
    // a reference written the plain way: sort by code unit, drop undefined, recurse
    const reference = (v: unknown): string => {
      if (v === null || v === undefined) return 'null';
      if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
      if (typeof v === 'object') {
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(o[k])}`).join(',')}}`;
      }
      return JSON.stringify(v);
    };
    // mulberry32: a seeded generator whose low bits are as random as its high ones
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const names = ['a', 'b', 'B', 'z', 'é', '\u{1F600}', 'ab', '', '10', '9', 'key"quote', 'x\ny'];
    const make = (depth: number): unknown => {
      const pick = rand(depth > 3 ? 4 : 7);
      if (pick === 0) return rand(1000) - 500 + rand(3) / 4;
      if (pick === 1) return names[rand(names.length)];
      if (pick === 2) return rand(2) === 0;
      if (pick === 3) return null;
      if (pick === 4) return Array.from({ length: rand(4) }, () => (rand(6) === 0 ? undefined : make(depth + 1)));
      const o: Record<string, unknown> = {};
      for (let i = rand(6); i > 0; i--) o[names[rand(names.length)]] = rand(8) === 0 ? undefined : make(depth + 1);
      return o;
    };
    let unordered = 0;
    for (let i = 0; i < 2000; i++) {
      const v = make(0);
      expect(canonicalJson(v as Json)).toBe(reference(v));
      if (JSON.stringify(v) !== reference(v)) unordered++;
    }
    // the values put keys out of order (or have undefined members) often enough to tell
    expect(unordered).toBeGreaterThan(200);
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(/non-finite/);
  });
});

describe('CAS', () => {
  it('names blobs by content, stores each once and leaves no temp files', async () => {
    const cas = new Cas(dir);
    const a = cas.putBuffer(Buffer.from('hello'));
    expect(a.sha256).toBe('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    expect(readFileSync(cas.path(a.sha256), 'utf8')).toBe('hello');
    writeFileSync(join(dir, 'moved.txt'), 'hello');
    const b = await cas.putFile(join(dir, 'moved.txt'));
    expect(b).toEqual(a);
    expect(existsSync(join(dir, 'moved.txt'))).toBe(false);
    expect(readdirSync(join(dir, 'tmp'))).toEqual([]);
  });
});

describe('cache verify', () => {
  it('quarantines a corrupted blob and drops the builds and item results that used it', async () => {
    const cas = new Cas(dir);
    const good = cas.putBuffer(Buffer.from('good output'));
    const bad = cas.putBuffer(Buffer.from('image bytes'));
    const actions = new ActionCache(dir);
    actions.put(entry('train:x', 'a'.repeat(64), { 'x.safetensors': good }, '2025-01-01T00:00:00Z'));
    actions.put(entry('prepare:ds', 'b'.repeat(64), { 'manifest.json': good }, '2025-01-01T00:00:00Z', [bad.sha256]));
    const items = new ItemMemo(dir, cas);
    items.put('prepare', items.keyHash({ id: 1 }), '1', { image: bad.sha256 });
    expect(items.get('prepare', items.keyHash({ id: 1 }))).toBeDefined();

    expect((await verifyCache(dir)).corrupted).toEqual([]);
    writeFileSync(cas.path(bad.sha256), 'image bytez');
    const report = await verifyCache(dir);
    expect(report.corrupted.map((c) => c.sha256)).toEqual([bad.sha256]);
    expect(existsSync(cas.path(bad.sha256))).toBe(false);
    expect(readFileSync(report.corrupted[0].quarantined, 'utf8')).toBe('image bytez');
    expect(report.droppedActions.map((d) => d.stage)).toEqual(['prepare:ds']);
    expect(report.droppedItems).toBe(1);
    expect(actions.has('a'.repeat(64))).toBe(true);
    expect(actions.has('b'.repeat(64))).toBe(false);
    expect(items.get('prepare', items.keyHash({ id: 1 }))).toBeUndefined();
    const again = await verifyCache(dir);
    expect(again.corrupted).toEqual([]);
    expect(again.droppedActions).toEqual([]);
  });
});

describe('cache gc', () => {
  function fill() {
    const cas = new Cas(dir);
    const actions = new ActionCache(dir);
    const blobs = [0, 1, 2, 3].map((i) => cas.putBuffer(Buffer.alloc(1000 * (i + 1), i)));
    const items = new ItemMemo(dir, cas);
    const itemKey = items.keyHash({ v: 0 });
    items.put('train', itemKey, 'old', { n: 0 });
    for (let i = 0; i < 4; i++) actions.put(entry('train:x', String(i).repeat(64), { 'x.bin': blobs[i] }, `2025-01-0${i + 1}T00:00:00Z`, [], i === 0 ? [`train/${itemKey}`] : []));
    return { cas, actions, blobs };
  }

  it('--keep-last keeps the newest builds per stage and what the lock pins', () => {
    const { cas, actions, blobs } = fill();
    const report = gcCache(dir, { keepLast: 2 }, new Set(['0'.repeat(64)]));
    expect(report.keptActions).toBe(3);
    expect(report.removedActions).toBe(1);
    expect(actions.has('1'.repeat(64))).toBe(false);
    expect([0, 1, 2, 3].map((i) => cas.has(blobs[i].sha256))).toEqual([true, false, true, true]);
    expect(report.removedBytes).toBe(2000);
    expect(report.removedItems).toBe(0);
  });

  it('drops the item records no kept build names, and keeps those one does', () => {
    const { cas, actions } = fill();
    const items = new ItemMemo(dir, cas);
    const kept = items.keyHash({ v: 4 });
    items.put('train', kept, 'kept', { n: 4 });
    actions.put(entry('train:x', '4'.repeat(64), { 'x.bin': cas.putBuffer(Buffer.from('newest')) }, '2025-01-05T00:00:00Z', [], [`train/${kept}`]));
    // the build that named { v: 0 } is not kept
    const report = gcCache(dir, { keepLast: 1 }, new Set());
    expect(report.removedItems).toBe(1);
    const fresh = new ItemMemo(dir, new Cas(dir));
    expect(fresh.get('train', fresh.keyHash({ v: 0 }))).toBeUndefined();
    expect(fresh.get('train', kept)?.value).toEqual({ n: 4 });
  });

  it('--max-size keeps the newest builds that fit', () => {
    const { cas, blobs } = fill();
    const report = gcCache(dir, { maxBytes: 8000 }, new Set());
    // newest first: 4000 + 3000 fit, 2000 would not, 1000 still fits
    expect([0, 1, 2, 3].map((i) => cas.has(blobs[i].sha256))).toEqual([true, false, true, true]);
    expect(report.keptBytes).toBe(8000);
    expect(report.removedBytes).toBe(2000);
  });

  it('parses sizes', () => {
    expect(parseSize('20G')).toBe(20 * 1024 ** 3);
    expect(parseSize('1.5MB')).toBe(1.5 * 1024 ** 2);
    expect(parseSize('12')).toBe(12);
    expect(parseSize('lots')).toBeUndefined();
  });
});

describe('writer lock', () => {
  const holder = (cache: string, ms: number) => `
    import { acquireWriterLock } from ${JSON.stringify(join(REPO_ROOT, 'dist/cache/writer-lock.js'))};
    const lock = await acquireWriterLock(${JSON.stringify(cache)}, 'holder', { onWait: (h) => console.log('waiting for ' + h.pid) });
    console.log('acquired ' + process.pid);
    await new Promise((r) => setTimeout(r, ${ms}));
    lock.release();
    console.log('released');
  `;

  it('makes a second process wait until the first releases', async () => {
    const first = spawn(process.execPath, ['--input-type=module', '-e', holder(dir, 1500)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out1 = '';
    first.stdout.on('data', (d) => (out1 += d));
    while (!out1.includes('acquired')) await new Promise((r) => setTimeout(r, 50));
    expect(currentWriter(dir)?.pid).toBe(first.pid);
    const second = spawnSync(process.execPath, ['--input-type=module', '-e', holder(dir, 0)], { encoding: 'utf8' });
    expect(second.stdout).toContain(`waiting for ${first.pid}`);
    expect(second.stdout).toContain('acquired');
    await new Promise((r) => first.on('close', r));
    expect(out1).toContain('released');
    expect(currentWriter(dir)).toBeUndefined();
  });

  it('breaks the lock of a process that was killed', async () => {
    const victim = spawn(process.execPath, ['--input-type=module', '-e', holder(dir, 60_000)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    victim.stdout.on('data', (d) => (out += d));
    while (!out.includes('acquired')) await new Promise((r) => setTimeout(r, 50));
    victim.kill('SIGKILL');
    await new Promise((r) => victim.on('close', r));
    expect(existsSync(join(dir, 'writer.lock'))).toBe(true);
    const lock = await acquireWriterLock(dir, 'test');
    expect(JSON.parse(readFileSync(join(dir, 'writer.lock'), 'utf8')).pid).toBe(process.pid);
    lock.release();
    expect(existsSync(join(dir, 'writer.lock'))).toBe(false);
  });

  /** a live process that is not lorabuild: its pid is what a stale lock may name after a reboot */
  const bystander = () => spawn('sleep', ['60'], { stdio: 'ignore' });
  const staleLock = (fields: Record<string, unknown>) => writeFileSync(join(dir, 'writer.lock'), JSON.stringify({ host: hostname(), command: 'lorabuild run', since: '2020-01-01T00:00:00.000Z', ...fields }));

  it('a lock whose pid now belongs to another live process is stale: another boot, another start time, or a process younger than the lock', async () => {
    const other = bystander();
    try {
      const start = Number(readFileSync(`/proc/${other.pid}/stat`, 'utf8').split(') ')[1].split(' ')[19]);
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const cases: [string, Record<string, unknown>, number][] = [
        ['recorded in another boot', { pid: other.pid, boot: 'another-boot', start }, 0],
        ['another process start', { pid: other.pid, boot, start: start - 1 }, 0],
        ['an old lock without start times, untouched since before the process started', { pid: other.pid }, 3600],
      ];
      for (const [what, fields, ageS] of cases) {
        staleLock(fields);
        if (ageS) utimesSync(join(dir, 'writer.lock'), new Date(Date.now() - ageS * 1000), new Date(Date.now() - ageS * 1000));
        expect(currentWriter(dir), what).toBeUndefined();
        const lock = await acquireWriterLock(dir, 'test');
        expect(JSON.parse(readFileSync(join(dir, 'writer.lock'), 'utf8')).pid, what).toBe(process.pid);
        lock.release();
      }
      // the same process recorded with its own identity is a live holder
      staleLock({ pid: other.pid, boot, start });
      expect(currentWriter(dir)?.pid).toBe(other.pid);
    } finally {
      other.kill();
    }
  });

  it('a lock of another host is stale once its holder stops touching it', () => {
    writeFileSync(join(dir, 'writer.lock'), JSON.stringify({ pid: 1, host: 'some-other-host', command: 'lorabuild run', since: '' }));
    expect(currentWriter(dir)?.host).toBe('some-other-host');
    utimesSync(join(dir, 'writer.lock'), new Date(Date.now() - 600_000), new Date(Date.now() - 600_000));
    expect(currentWriter(dir)).toBeUndefined();
  });

  it('through the CLI: run, check and cache verify go ahead past a stale lock of a reused pid, and say how to break a live one', async () => {
    const other = bystander();
    // the project beside the cache (`dir` is the cache)
    const project = makeTempDir('lorabuild-lock-project-');
    writeFileSync(join(project.dir, 'lorafile.yaml'), 'version: 1\n');
    try {
      staleLock({ pid: other.pid, boot: 'another-boot' });
      for (const args of [['run'], ['check'], ['cache', 'verify']]) {
        const r = await runCli(args, { cwd: project.dir, env: { LORABUILD_CACHE: dir }, timeoutMs: 60_000 });
        expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
        expect(r.stderr + r.stdout).not.toContain('waiting for');
        staleLock({ pid: other.pid, boot: 'another-boot' });
      }
    } finally {
      other.kill();
      project.cleanup();
    }
    // a live holder: the waiting message names it and the file to delete
    const live = spawn(process.execPath, ['--input-type=module', '-e', holder(dir, 4000)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const closed = new Promise((r) => live.on('close', r));
    let out = '';
    live.stdout.on('data', (d) => (out += d));
    while (!out.includes('acquired')) await new Promise((r) => setTimeout(r, 50));
    const waited = await runCli(['cache', 'verify'], { cwd: dir, env: { LORABUILD_CACHE: dir }, timeoutMs: 60_000 });
    expect(waited.code).toBe(0);
    expect(waited.stderr).toContain(`lorabuild: waiting for holder (pid ${live.pid}, since `);
    expect(waited.stderr).toContain(`if no lorabuild is running, delete ${join(dir, 'writer.lock')}`);
    await closed;
  });
});
