// Small pure parts of the engine: stale reasons, fingerprints, lock file text, progress output.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fingerprint, outputsDigest } from '../src/engine/fingerprint.js';
import { readLockfile, renderLockfile, writeLockfile } from '../src/engine/lockfile.js';
import { makeReporter, stageLine } from '../src/engine/progress.js';
import { staleReasons, summarize } from '../src/engine/reasons.js';
import type { LockEntry } from '../src/engine/types.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir('lorabuild-units-')));
afterEach(() => cleanup());

const sha = (c: string) => c.repeat(64);
const entry = (over: Partial<LockEntry> = {}): LockEntry => ({
  fingerprint: sha('f'),
  params: { learning_rate: 0.0001, rank: 4 },
  files: { 'ds/text/1.txt': sha('a'), 'ds/image/1.png': sha('b') },
  upstream: { 'prepare:ds': sha('c') },
  outputs: {},
  meta: null,
  implVersion: 1,
  ...over,
});

describe('stale reasons', () => {
  it('names changed params with old and new values, changed/added/removed files and upstreams', () => {
    const reasons = staleReasons(entry(), {
      implVersion: 2,
      params: { learning_rate: 0.0002, rank: 4, alpha: 8 },
      files: { 'ds/text/1.txt': sha('d'), 'ds/image/7.png': sha('e') },
      upstream: { 'prepare:ds': sha('9') },
    });
    expect(reasons).toEqual([
      'stage implementation version 1 -> 2',
      'alpha added (8)',
      'learning_rate 0.0001 -> 0.0002',
      'ds/text/1.txt changed',
      'ds/image/7.png added',
      'ds/image/1.png removed',
      'upstream prepare:ds changed',
    ]);
    expect(summarize(reasons)).toBe('stage implementation version 1 -> 2; alpha added (8); learning_rate 0.0001 -> 0.0002; and 4 more');
    expect(staleReasons(undefined, { implVersion: 1, params: {}, files: {}, upstream: {} })).toEqual(['never built']);
  });

  it('lists at most five files of a kind', () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 8; i++) files[`t/${i}.txt`] = sha('1');
    const reasons = staleReasons(entry({ files: {} }), { implVersion: 1, params: entry().params, files, upstream: entry().upstream });
    expect(reasons).toHaveLength(6);
    expect(reasons[5]).toBe('3 more files added');
  });
});

describe('fingerprint', () => {
  it('ignores key order and changes with any input', () => {
    const base = { kind: 'train' as const, version: 1, params: { a: 1, b: [1, 2] }, files: { x: sha('a') }, upstream: {} };
    expect(fingerprint(base)).toBe(fingerprint({ ...base, params: { b: [1, 2], a: 1 } }));
    expect(fingerprint(base)).not.toBe(fingerprint({ ...base, params: { a: 1, b: [2, 1] } }));
    expect(fingerprint(base)).not.toBe(fingerprint({ ...base, version: 2 }));
    expect(fingerprint(base)).not.toBe(fingerprint({ ...base, files: { x: sha('b') } }));
    // downstream sees output content, not how it was produced
    expect(outputsDigest({ files: { m: { sha256: sha('a'), size: 1 } }, meta: { n: 1 } })).toBe(outputsDigest({ meta: { n: 1 }, files: { m: { size: 1, sha256: sha('a') } } }));
  });
});

describe('lorafile.lock', () => {
  it('is the same text whatever order entries were added in, and round-trips', async () => {
    const a = await renderLockfile({ version: 1, stages: { 'train:x': entry(), 'fetch:ds': entry({ params: { z: 1, a: 2 } }) } });
    const b = await renderLockfile({ version: 1, stages: { 'fetch:ds': entry({ params: { a: 2, z: 1 } }), 'train:x': entry() } });
    expect(a).toBe(b);
    expect(a.indexOf('fetch:ds')).toBeLessThan(a.indexOf('train:x'));
    const file = join(dir, 'lorafile.lock');
    const lock = { version: 1 as const, stages: { 'train:x': entry() } };
    expect(await writeLockfile(file, lock, '', join(dir, 'cache'))).toMatch(/^[0-9a-f]{64}$/);
    const loaded = readLockfile(file, join(dir, 'cache'));
    expect(loaded.lock).toEqual(lock);
    expect(await writeLockfile(file, lock, loaded.textHash, join(dir, 'cache'))).toBeNull();
    expect(readFileSync(file, 'utf8')).toBe(await renderLockfile(lock));
  });

  it('a damaged lock is reported with its position and ignored, not trusted', async () => {
    const file = join(dir, 'lorafile.lock');
    writeFileSync(file, 'stages:\n  train:x:\n<<<<<<< HEAD\n');
    const loaded = readLockfile(file, join(dir, 'cache'));
    expect(loaded.lock.stages).toEqual({});
    expect(loaded.problem).toMatch(/lorafile\.lock:\d+:\d+: .* the lock is ignored and rewritten by the next successful run/);
  });
});

describe('lorafile.lock from an untrusted source', () => {
  it('refuses output names that leave out/ and blob names that are not hashes', () => {
    const file = join(dir, 'lorafile.lock');
    writeFileSync(file, `version: 1\nstages:\n  train:x:\n    fingerprint: ${sha('f')}\n    outputs:\n      ../../home/x.txt: { sha256: ${sha('a')}, size: 1 }\n`);
    expect(readLockfile(file, join(dir, 'cache')).problem).toContain("stage train:x: output name '../../home/x.txt' must not contain empty, '.' or '..' parts");
    writeFileSync(file, `version: 1\nstages:\n  train:x:\n    fingerprint: ${sha('f')}\n    outputs:\n      x.txt: { sha256: ../../etc/passwd, size: 1 }\n`);
    expect(readLockfile(file, join(dir, 'cache')).problem).toContain('stage train:x: output x.txt needs a sha256 and a size');
  });
});

describe('progress output', () => {
  function fakeStream(isTTY: boolean) {
    const chunks: string[] = [];
    return { chunks, stream: { isTTY, columns: 80, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream };
  }

  it('plain: one line per finished stage; items are not printed one by one', () => {
    const out = fakeStream(false);
    const err = fakeStream(false);
    const r = makeReporter('plain', dir, out.stream, err.stream);
    r.event({ stage: 'prepare:ds', item: '3', outcome: 'ran' });
    r.event({ stage: 'prepare:ds', outcome: 'ran', reason: 'upstream fetch:ds changed', durationMs: 1500, items: { ran: 1, cached: 9 } });
    r.event({ stage: 'train:x', outcome: 'skipped', reason: 'validate:ds failed' });
    expect(out.chunks.join('')).toBe('ran       prepare:ds  1.5s  (1 item ran, 9 cached)  — upstream fetch:ds changed\nskipped   train:x: validate:ds failed\n');
  });

  it('tty: draws a bar for running stages and erases it before printing results', async () => {
    const out = fakeStream(true);
    const r = makeReporter('tty', dir, out.stream, fakeStream(true).stream);
    r.event({ stage: 'prepare:ds', outcome: 'started' });
    r.event({ stage: 'prepare:ds', progress: { done: 5, total: 10, unit: 'items' } });
    await new Promise((resolve) => setTimeout(resolve, 200)); // redraws are batched
    expect(out.chunks.join('')).toBe('prepare:ds  [############------------] 5/10 items · measuring rate…\n');
    r.event({ stage: 'prepare:ds', progress: { done: 6, total: 10, unit: 'items', rate: 0.02, eta_s: 200 } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(out.chunks.at(-1)).toBe('prepare:ds  [##############----------] 6/10 items · 50.0 s/item · ETA 3m 20s\n');
    r.event({ stage: 'prepare:ds', outcome: 'ran', durationMs: 10 });
    r.summary({}, 'done');
    const text = out.chunks.join('');
    expect(text).toContain('\x1b[1A\x1b[0J');
    expect(text).toContain('ran       prepare:ds  10ms');
    expect(text.endsWith('done\n')).toBe(true);
  });

  it('json: one object per line; the lines of one turn of the event loop in one write, the summary at once', async () => {
    const out = fakeStream(false);
    const r = makeReporter('json', dir, out.stream);
    const items = [0, 1, 2].map((i) => ({ stage: 'prepare:ds', item: String(i), outcome: 'cached' as const }));
    for (const e of items) r.event(e);
    expect(out.chunks).toEqual([]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(out.chunks).toHaveLength(1);
    expect(out.chunks[0].trimEnd().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual(items);
    r.event({ stage: 'fetch:ds', outcome: 'fresh', reason: 'up to date' });
    r.summary({ ran: 0 }, 'done');
    expect(out.chunks.slice(1).join('')).toBe(`${JSON.stringify({ stage: 'fetch:ds', outcome: 'fresh', reason: 'up to date' })}\n${JSON.stringify({ summary: { ran: 0 } })}\n`);
    // a long loop of events is written as it passes 64 KB, not held to its end
    for (let i = 0; i < 5000; i++) r.event({ stage: 'prepare:ds', item: String(i), outcome: 'cached' });
    expect(out.chunks.length).toBeGreaterThan(3);
    expect(stageLine({ stage: 'a', outcome: 'fresh', reason: 'up to date' })).toBe('fresh     a');
  });

  it('json: lines still held when the process exits are written', () => {
    const script = `
      import { makeReporter } from ${JSON.stringify(join(REPO_ROOT, 'dist/engine/progress.js'))};
      const r = makeReporter('json', '.');
      r.event({ stage: 'prepare:ds', item: '1', outcome: 'ran' });
      process.exit(3);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.status).toBe(3);
    expect(child.stdout).toBe(`${JSON.stringify({ stage: 'prepare:ds', item: '1', outcome: 'ran' })}\n`);
  });
});

describe('rate and ETA', () => {
  it('measures over the last 30 s but from at least two updates, and starts over when done goes back', async () => {
    const { RateMeter } = await import('../src/engine/rate.js');
    let now = 0;
    const meter = new RateMeter(() => now);
    expect(meter.update(0, 100)).toEqual({});
    now = 100;
    expect(meter.update(1, 100)).toEqual({}); // 100 ms is too short to tell
    now = 10_000;
    expect(meter.update(10, 100)).toEqual({ rate: 1, eta_s: 90 });
    // a slow phase: only the last 30 s count
    now = 40_000;
    meter.update(13, 100);
    now = 70_000;
    const slow = meter.update(16, 100);
    expect(slow.rate).toBeCloseTo(0.1, 6);
    expect(slow.eta_s).toBeCloseTo(840, 6);
    // a step that takes minutes still has a rate: from the previous update
    now = 370_000;
    expect(meter.update(17, 100).rate).toBeCloseTo(1 / 300, 9);
    now = 371_000;
    expect(meter.update(0, 50)).toEqual({});
  });

  it('formats rates (per second, or seconds per unit when slow, bytes in SI units) and durations', async () => {
    const { formatDuration, formatRate } = await import('../src/engine/rate.js');
    expect(formatRate(3.123, 'step')).toBe('3.12 step/s');
    expect(formatRate(250, 'items')).toBe('250 items/s');
    expect(formatRate(0.02, 'step')).toBe('50.0 s/step');
    expect(formatRate(12_345_678, 'B')).toBe('12.3 MB/s');
    expect(formatRate(999, 'B')).toBe('999 B/s');
    expect([formatDuration(42.4), formatDuration(185), formatDuration(14 * 3600 + 130), formatDuration(2 * 86400 + 3 * 3600)]).toEqual(['42s', '3m 05s', '14h 02m', '2d 03h']);
  });

  it('plain lines and JSON events carry them', () => {
    const out = { chunks: [] as string[] };
    const stream = { isTTY: false, columns: 80, write: (s: string) => (out.chunks.push(s), true) } as unknown as NodeJS.WriteStream;
    makeReporter('plain', dir, stream, stream).event({ stage: 'train:x', progress: { done: 164, total: 200, unit: 'step', message: 'loss 0.9508', rate: 3.12, eta_s: 12 } });
    expect(out.chunks.join('')).toBe('          train:x 164/200 step · 3.12 step/s · ETA 12s · loss 0.9508\n');
  });
});

describe('stat memo', () => {
  it('reads a file only when its stat changed, trusts a caller-provided stat, persists across loads', async () => {
    const { StatMemo } = await import('../src/engine/stat-memo.js');
    const { statSync, utimesSync } = await import('node:fs');
    const file = join(dir, 'a.txt');
    writeFileSync(file, 'abc');
    utimesSync(file, new Date('2024-01-01'), new Date('2024-01-01'));
    const memoFile = join(dir, 'memo.json');
    const first = StatMemo.load(memoFile);
    expect(await first.hashFile(file)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    first.save();
    const second = StatMemo.load(memoFile);
    await second.hashFile(file);
    await second.hashFile(file, { stat: statSync(file) });
    expect(second.stats).toEqual({ memoHits: 2, filesHashed: 0, bytesHashed: 0 });
    writeFileSync(file, 'abd'); // same size, new mtime
    expect(await second.hashFile(file)).not.toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(second.stats.filesHashed).toBe(1);
    // just written: racy, so it is not saved and the next process hashes it again
    second.save();
    const third = StatMemo.load(memoFile);
    await third.hashFile(file);
    expect(third.stats.filesHashed).toBe(1);
  });
});
