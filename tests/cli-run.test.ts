// `lorabuild run / status / cache` end to end: the built CLI as real processes on temp folders,
// with the real folder fetch, prepare and validate stages on a generated lab-layout dataset.
import { existsSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { tinyPng } from '../bench/lab-dataset.js';
import { makeTempDir, runCli, startCli, waitForLine, writeFiles, type CliResult } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
const OLD = new Date('2024-01-01T00:00:00Z');

function makeDataset(count: number, folder = 'data'): void {
  const files: Record<string, string | Buffer> = {};
  for (let i = 0; i < count; i++) {
    files[`${folder}/image/${i}.png`] = tinyPng(i);
    files[`${folder}/text/${i}.txt`] = `one-line-art, shape ${i}, side view\n`;
  }
  writeFiles(dir, files);
  // written long ago: the stat memo trusts these stats at once (see RACY_MS in stat-memo.ts)
  for (const f of Object.keys(files)) utimesSync(join(dir, f), OLD, OLD);
}

const LORAFILE = `version: 1
datasets:
  ds:
    folder: data
    rules: { too_small: off }
`;

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-cli-run-'));
  writeFileSync(join(dir, 'lorafile.yaml'), LORAFILE);
});
afterEach(() => cleanup());

const run = (...args: string[]) => runCli(['run', 'ds', '--json', ...args], { cwd: dir });
const stageEvents = (r: CliResult) => r.events.filter((e) => e.stage && !e.item && !e.progress && e.outcome !== 'started');
const outcomes = (r: CliResult) => Object.fromEntries(stageEvents(r).map((e) => [e.stage, e.outcome]));
const reasons = (r: CliResult) => Object.fromEntries(stageEvents(r).map((e) => [e.stage, e.reason]));
const summary = (r: CliResult) => r.events.find((e) => e.summary)!.summary as { hashing: { filesHashed: number; memoHits: number }; ran: number };
const itemsRan = (r: CliResult, stage: string) => r.events.filter((e) => e.stage === stage && e.item && e.outcome === 'ran').map((e) => e.item);
const lock = () => parse(readFileSync(join(dir, 'lorafile.lock'), 'utf8')) as { stages: Record<string, { fingerprint: string; outputs: Record<string, { sha256: string }> }> };

describe('lorabuild run', () => {
  it('runs nothing the second time, and touching mtimes re-hashes only those files and runs nothing', async () => {
    makeDataset(6);
    const first = await run();
    expect(first.code, first.stderr).toBe(0);
    expect(outcomes(first)).toEqual({ 'fetch:ds': 'ran', 'prepare:ds': 'ran', 'validate:ds': 'ran' });
    expect(existsSync(join(dir, 'out/datasets/ds/validation.json'))).toBe(true);

    const second = await run();
    expect(outcomes(second)).toEqual({ 'fetch:ds': 'fresh', 'prepare:ds': 'fresh', 'validate:ds': 'fresh' });
    expect(summary(second).hashing.filesHashed).toBe(0);
    expect(summary(second).hashing.memoHits).toBeGreaterThanOrEqual(12);
    expect(second.events.filter((e) => e.item)).toEqual([]);

    const later = new Date('2024-06-01T00:00:00Z');
    for (let i = 0; i < 6; i++) utimesSync(join(dir, `data/text/${i}.txt`), later, later);
    const touched = await run();
    expect(outcomes(touched)).toEqual({ 'fetch:ds': 'fresh', 'prepare:ds': 'fresh', 'validate:ds': 'fresh' });
    // a new mtime must be read once to learn the content is the same; nothing else is read
    expect(summary(touched).hashing.filesHashed).toBe(6);
    const after = await run();
    expect(summary(after).hashing.filesHashed).toBe(0);
  });

  it('an edited caption: status names it, run redoes that item only, revert restores without running', async () => {
    makeDataset(6);
    expect((await run()).code).toBe(0);
    const built = lock();
    writeFileSync(join(dir, 'data/text/3.txt'), 'one-line-art, a hand\n');

    const status = await runCli(['status', '--json'], { cwd: dir });
    expect(status.code).toBe(0);
    const st = Object.fromEntries(status.events.map((e) => [e.stage, e]));
    expect(st['fetch:ds']).toMatchObject({ outcome: 'stale', reason: 'data/text/3.txt changed' });
    expect(st['prepare:ds']).toMatchObject({ outcome: 'stale', reason: 'upstream fetch:ds is stale' });
    const human = await runCli(['status'], { cwd: dir });
    expect(human.stdout).toMatch(/fetch:ds\s+stale\s+data\/text\/3\.txt changed/);

    const edited = await run();
    expect(outcomes(edited)).toEqual({ 'fetch:ds': 'ran', 'prepare:ds': 'ran', 'validate:ds': 'ran' });
    expect(reasons(edited)['prepare:ds']).toBe('upstream fetch:ds changed');
    expect(itemsRan(edited, 'prepare:ds')).toEqual(['3']);
    expect(edited.events.filter((e) => e.stage === 'prepare:ds' && e.item && e.outcome === 'cached')).toHaveLength(5);
    expect(lock().stages['prepare:ds'].fingerprint).not.toBe(built.stages['prepare:ds'].fingerprint);

    writeFileSync(join(dir, 'data/text/3.txt'), 'one-line-art, shape 3, side view\n');
    const reverted = await run();
    expect(outcomes(reverted)).toEqual({ 'fetch:ds': 'cached', 'prepare:ds': 'cached', 'validate:ds': 'cached' });
    expect(reverted.events.filter((e) => e.item)).toEqual([]);
    expect(reasons(reverted)['fetch:ds']).toBe('data/text/3.txt changed; restored from cache');
    expect(lock().stages).toEqual(built.stages);
  });

  it('a deleted or edited output is stale and comes back from the cache', async () => {
    makeDataset(3);
    expect((await run()).code).toBe(0);
    const report = join(dir, 'out/datasets/ds/validation.md');
    const original = readFileSync(report, 'utf8');
    rmSync(report);
    const status = await runCli(['status', '--json'], { cwd: dir });
    expect(status.events.find((e) => e.stage === 'validate:ds')).toMatchObject({ outcome: 'cached', reason: 'out/datasets/ds/validation.md deleted (restorable from cache)' });
    const restored = await run();
    expect(outcomes(restored)['validate:ds']).toBe('cached');
    expect(readFileSync(report, 'utf8')).toBe(original);

    writeFileSync(report, 'my notes');
    const again = await run();
    expect(reasons(again)['validate:ds']).toBe('out/datasets/ds/validation.md changed after lorabuild wrote it; restored from cache');
    expect(summary(again).ran).toBe(0);
    expect(readFileSync(report, 'utf8')).toBe(original);
  });

  it('survives kill -9 in the middle of a run: the next run completes and cache verify is clean', async () => {
    makeDataset(120);
    const victim = startCli(['run', 'ds', '--json'], { cwd: dir });
    // one listener: lines of one turn of the event loop arrive together, and a second listener would miss those before it
    await waitForLine(victim, (l) => l.includes('prepare:ds') && (l.includes('"item":"3"') || l.includes('"item":"30"')));
    victim.kill('SIGKILL');
    const killed = await victim.result;
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.events.some((e) => e.stage === 'validate:ds' && e.outcome === 'ran')).toBe(false);

    const resumed = await run();
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(outcomes(resumed)['prepare:ds']).toBe('ran');
    // items finished before the kill come from the item memo
    expect(resumed.events.filter((e) => e.stage === 'prepare:ds' && e.item && e.outcome === 'cached').length).toBeGreaterThan(0);
    const verify = await runCli(['cache', 'verify'], { cwd: dir });
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toMatch(/^cache ok: \d+ blobs/m);
  });

  it('Ctrl-C stops cleanly: exit 130, the lock has only completed stages, the next run finishes', async () => {
    makeDataset(120);
    const child = startCli(['run', 'ds', '--json'], { cwd: dir });
    await waitForLine(child, (l) => l.includes('"item"') && l.includes('prepare:ds'));
    child.kill('SIGINT');
    const stopped = await child.result;
    expect(stopped.code).toBe(130);
    expect(outcomes(stopped)['prepare:ds']).toBe('failed');
    expect(reasons(stopped)['prepare:ds']).toBe('interrupted');
    expect(Object.keys(lock().stages)).toEqual(['fetch:ds']);
    const next = await run();
    expect(next.code).toBe(0);
    expect(outcomes(next)).toMatchObject({ 'fetch:ds': 'fresh', 'prepare:ds': 'ran', 'validate:ds': 'ran' });
  });

  it('a second Ctrl-C quits at once, still leaving nothing half-written', async () => {
    makeDataset(120);
    const child = startCli(['run', 'ds', '--json'], { cwd: dir });
    await waitForLine(child, (l) => l.includes('"item"') && l.includes('prepare:ds'));
    child.kill('SIGINT');
    // signals do not queue: send the second once the first was seen
    await waitForLine(child, (l) => l.includes('"note"') && l.includes('interrupted'));
    child.kill('SIGINT');
    const stopped = await child.result;
    // whether the second one found the run still stopping or already done, it exits 130
    expect(stopped.code).toBe(130);
    const next = await run();
    expect(next.code, next.stderr).toBe(0);
    expect(outcomes(next)['validate:ds']).toBe('ran');
    expect((await runCli(['cache', 'verify'], { cwd: dir })).code).toBe(0);
  });

  it('two concurrent runs on one cache: one builds, the other waits and finds everything fresh', async () => {
    makeDataset(120);
    const a = startCli(['run', 'ds', '--json'], { cwd: dir });
    // a holds the writer lock while it prepares: stopped there, so that b surely finds it held (a
    // build of a few items can otherwise end before the second process has started)
    await waitForLine(a, (l) => l.includes('"item"') && l.includes('prepare:ds'));
    a.kill('SIGSTOP');
    const b = startCli(['run', 'ds', '--json'], { cwd: dir });
    try {
      await waitForLine(b, (l) => l.includes('waiting for lorabuild run'));
    } finally {
      a.kill('SIGCONT');
    }
    const [ra, rb] = await Promise.all([a.result, b.result]);
    expect([ra.code, rb.code]).toEqual([0, 0]);
    expect(outcomes(ra)['prepare:ds']).toBe('ran');
    expect(rb.events.some((e) => typeof e.note === 'string' && /waiting for lorabuild run \(pid \d+, since /.test(e.note))).toBe(true);
    expect(outcomes(rb)).toEqual({ 'fetch:ds': 'fresh', 'prepare:ds': 'fresh', 'validate:ds': 'fresh' });
    expect((await runCli(['cache', 'verify'], { cwd: dir })).code).toBe(0);
  });

  it('cache verify finds a corrupted blob and the next run rebuilds instead of using it', async () => {
    makeDataset(3);
    expect((await run()).code).toBe(0);
    const listing = lock().stages['fetch:ds'].outputs['listing.json'].sha256;
    const blob = join(dir, 'cache/cas', listing.slice(0, 2), listing);
    const original = readFileSync(blob);
    writeFileSync(blob, Buffer.concat([original.subarray(0, 10), Buffer.from('X'), original.subarray(11)]));
    const verify = await runCli(['cache', 'verify'], { cwd: dir });
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`corrupted blob ${listing}`);
    expect(verify.stdout).toMatch(/dropped cached build fetch:ds [0-9a-f]{12}: listing.json/);
    const status = await runCli(['status', '--json'], { cwd: dir });
    expect(status.events.find((e) => e.stage === 'fetch:ds')).toMatchObject({ outcome: 'stale' });
    const rebuilt = await run();
    expect(outcomes(rebuilt)['fetch:ds']).toBe('ran');
    expect(lock().stages['fetch:ds'].outputs['listing.json'].sha256).toBe(listing);
    expect(readFileSync(blob)).toEqual(original);
    expect((await runCli(['cache', 'verify'], { cwd: dir })).code).toBe(0);
  });

  it('cache gc --keep-last 1 drops older builds, so going back re-runs; ls lists what is left', async () => {
    makeDataset(3);
    expect((await run()).code).toBe(0);
    writeFileSync(join(dir, 'data/text/1.txt'), 'one-line-art, other\n');
    expect((await run()).code).toBe(0);
    const before = await runCli(['cache', 'ls', '--json'], { cwd: dir });
    expect(before.events.filter((e) => e.stage)).toHaveLength(6);
    const gc = await runCli(['cache', 'gc', '--keep-last', '1'], { cwd: dir });
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(/^removed 3 cached builds, \d+ blobs/);
    const after = await runCli(['cache', 'ls', '--json'], { cwd: dir });
    expect(after.events.filter((e) => e.stage).every((e) => e.inLock === true)).toBe(true);
    expect(after.events.filter((e) => e.stage)).toHaveLength(3);

    writeFileSync(join(dir, 'data/text/1.txt'), 'one-line-art, shape 1, side view\n');
    const back = await run();
    expect(outcomes(back)['prepare:ds']).toBe('ran');
    expect(itemsRan(back, 'prepare:ds')).toEqual(['1']);
    expect((await runCli(['cache', 'gc', '--max-size', 'lots'], { cwd: dir })).code).toBe(2);
  });

  it('--keep-going builds independent branches; a failed stage skips its dependents; status --log replays', async () => {
    makeDataset(2);
    writeFileSync(join(dir, 'lorafile.yaml'), `${LORAFILE}  broken:\n    folder: missing-folder\n`);
    const r = await runCli(['run', 'ds', 'broken', '--json', '--keep-going'], { cwd: dir });
    expect(r.code).toBe(1);
    const o = outcomes(r);
    expect(o['fetch:broken']).toBe('failed');
    expect(reasons(r)['prepare:broken']).toBe('fetch:broken failed');
    expect(o['prepare:broken']).toBe('skipped');
    expect(o['validate:ds']).toBe('ran');
    expect(Object.keys(lock().stages).sort()).toEqual(['fetch:ds', 'prepare:ds', 'validate:ds']);
    const log = await runCli(['status', '--log', 'fetch:broken'], { cwd: dir });
    expect(log.code).toBe(0);
    expect(log.stdout).toMatch(/^# fetch:broken: failed at /);
    expect(log.stdout).toContain('error:');
  });

  it('an invalid lorafile exits 2 with a positioned diagnostic', async () => {
    writeFileSync(join(dir, 'lorafile.yaml'), 'version: 1\ndatasets:\n  ds:\n    foldr: data\n');
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('lorafile.yaml:4:5');
    expect(existsSync(join(dir, 'lorafile.lock'))).toBe(false);
  });
});
