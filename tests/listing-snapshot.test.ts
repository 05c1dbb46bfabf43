// The listing snapshot (src/datasets/local/listing-snapshot.ts): a big folder whose files all have
// the stats of its last listing gives its file map by digest, built only when read, and that map
// and listing are exactly what a listing without any cache gives. A damaged or foreign snapshot is
// discarded, never trusted; a racy folder gets none. Through the CLI: a no-op run of 4,200 files
// is fresh without building the map, and a run that needs the map (the lock gone, the fetch's
// cache entry gone) builds the same lock and the same listing as before.
import * as fs from 'node:fs';
import { mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listLocalDataset } from '../src/datasets/local/list.js';
import { formatSnapshot, parseSnapshot, snapshotPath } from '../src/datasets/local/listing-snapshot.js';
import { fileCount, filesDigest } from '../src/engine/file-tree.js';
import { makeTempDir, runCli } from './helpers/cli.js';
import { countedSource, hasCoarseTimestamps, writeOldLabFolder } from './helpers/lab-folder.js';

const tmp = makeTempDir('lorabuild-listing-snapshot-');
afterAll(tmp.cleanup);

/** past the inline limit of 4,096 files: only such folders get a snapshot */
const ITEMS = 2100;
const OLD = new Date('2024-01-01T00:00:00Z');
let serial = 0;

/** files modified less than 100 ms ago (2 s where timestamps are whole seconds) are racy */
const coarseTimestamps = hasCoarseTimestamps(tmp.dir);
const settle = () => new Promise((r) => setTimeout(r, coarseTimestamps ? 2100 : 150));

function labDataset(n = ITEMS): { base: string; root: string; cache: string } {
  const base = join(tmp.dir, `case-${serial++}`);
  const root = join(base, 'data');
  writeOldLabFolder(root, n);
  return { base, root, cache: join(base, 'cache') };
}

const counted = countedSource;

async function list(root: string, cache: string | undefined, folder = 'data') {
  const { source, asked, memo } = counted(root, cache, folder);
  const listed = await listLocalDataset(source);
  memo.save();
  return { listed, asked };
}

/** what a listing without any cache gives, as plain data */
async function fresh(root: string, folder = 'data') {
  const { listed } = await list(root, undefined, folder);
  return { layout: listed.layout, listing: listed.listing, files: { ...listed.files } };
}

async function expectSame(listed: Awaited<ReturnType<typeof list>>['listed'], root: string, folder = 'data') {
  const expected = await fresh(root, folder);
  expect(listed.layout).toBe(expected.layout);
  expect({ ...listed.files }).toEqual(expected.files);
  expect(listed.listing).toEqual(expected.listing);
  expect(filesDigest(listed.files)).toBe(filesDigest(expected.files));
}

describe('listing snapshot', () => {
  it('serves an unchanged big folder by digest, and builds the same map and listing when read', async () => {
    const { root, cache } = labDataset();
    const first = await list(root, cache);
    expect(first.asked.known).toBe(2 * ITEMS);
    expect(fs.existsSync(snapshotPath(cache, root))).toBe(true);

    const again = await list(root, cache);
    // nothing looked up: the digest and count are the snapshot's
    expect(again.asked).toEqual({ known: 0, hashed: 0 });
    expect(fileCount(again.listed.files)).toBe(2 * ITEMS);
    expect(filesDigest(again.listed.files)).toBe(filesDigest(first.listed.files));
    expect(again.listed.layout).toBe('lab');
    expect(again.asked.known).toBe(0);
    // read, the map is built from the stat memo (nothing hashed) and is the full listing's
    await expectSame(again.listed, root);
    expect(again.asked).toEqual({ known: 2 * ITEMS, hashed: 0 });

    // a map frozen before anything read it is built first, and is the same map
    const frozen = (await list(root, cache)).listed.files;
    Object.freeze(frozen);
    expect(Object.isFrozen(frozen)).toBe(true);
    expect({ ...frozen }).toEqual({ ...again.listed.files });
  });

  const changes: [string, (root: string) => void][] = [
    ['a caption edited', (root) => writeFileSync(join(root, 'text', '7.txt'), 'an edited caption\n')],
    ['a caption edited to the same size', (root) => writeFileSync(join(root, 'text', '7.txt'), 'caption X\n')],
    ['a caption edited, its mtime set back', (root) => {
      writeFileSync(join(root, 'text', '7.txt'), 'an edited caption, longer\n');
      utimesSync(join(root, 'text', '7.txt'), OLD, OLD);
    }],
    ['a caption replaced by rename (same size and mtime)', (root) => {
      writeFileSync(join(root, 'text', 'new.tmp'), 'caption 8\n'.replace('8', '9'));
      utimesSync(join(root, 'text', 'new.tmp'), OLD, OLD);
      renameSync(join(root, 'text', 'new.tmp'), join(root, 'text', '8.txt'));
    }],
    ['an image added', (root) => {
      writeFileSync(join(root, 'image', `${ITEMS}.png`), 'png new');
      utimesSync(join(root, 'image', `${ITEMS}.png`), OLD, OLD);
    }],
    ['a caption removed', (root) => rmSync(join(root, 'text', '3.txt'))],
    ['a subfolder added', (root) => {
      mkdirSync(join(root, 'image', 'more'));
      writeFileSync(join(root, 'image', 'more', 'x.png'), 'x');
      utimesSync(join(root, 'image', 'more', 'x.png'), OLD, OLD);
    }],
  ];
  for (const [what, change] of changes) {
    it(`lists everything again after ${what}, and snapshots the new state`, async () => {
      const { root, cache } = labDataset();
      await list(root, cache);
      const before = readFileSync(snapshotPath(cache, root), 'utf8');
      change(root);
      await settle();
      const after = await list(root, cache);
      expect(after.asked.known).toBeGreaterThan(0);
      await expectSame(after.listed, root);
      // the new state is snapshotted (every file is old enough), and served next time
      expect(readFileSync(snapshotPath(cache, root), 'utf8')).not.toBe(before);
      const next = await list(root, cache);
      expect(next.asked.known).toBe(0);
      await expectSame(next.listed, root);
    });
  }

  it('keys the snapshot on the folder as the lorafile writes it (the map paths start with it)', async () => {
    const { root, cache } = labDataset();
    await list(root, cache, 'data');
    const other = await list(root, cache, './data');
    expect(other.asked.known).toBe(2 * ITEMS);
    await expectSame(other.listed, root, './data');
    expect(Object.keys(other.listed.files)[0]).toBe('./data/image/0.png');
  });

  it('takes no snapshot of a folder with a file modified just now (racy), nor of a small folder', async () => {
    const { root, cache } = labDataset();
    writeFileSync(join(root, 'text', '5.txt'), 'just written\n');
    await list(root, cache);
    expect(fs.existsSync(snapshotPath(cache, root))).toBe(false);
    await settle();
    await list(root, cache);
    expect(fs.existsSync(snapshotPath(cache, root))).toBe(true);

    const small = labDataset(100);
    await list(small.root, small.cache);
    expect(fs.existsSync(snapshotPath(small.cache, small.root))).toBe(false);
  });

  const damages: [string, (file: string) => void][] = [
    ['truncated', (f) => writeFileSync(f, readFileSync(f).subarray(0, 40))],
    ['one byte flipped', (f) => {
      const bytes = readFileSync(f);
      bytes[bytes.length - 5] ^= 0x01;
      writeFileSync(f, bytes);
    }],
    ['garbage', (f) => writeFileSync(f, Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a, 0x7b]))],
    ['empty', (f) => writeFileSync(f, '')],
    ['huge', (f) => writeFileSync(f, `${readFileSync(f, 'utf8')}${' '.repeat(1 << 20)}`)],
    ['a folder in its place', (f) => (rmSync(f), mkdirSync(join(f, 'inside'), { recursive: true }))],
    ['another folder\'s, with a valid checksum', (f) => {
      const seen = parseSnapshot(readFileSync(f, 'utf8'));
      if (!('snapshot' in seen)) throw new Error('no snapshot to copy');
      writeFileSync(f, formatSnapshot(`${seen.root}-elsewhere`, seen.snapshot));
    }],
  ];
  for (const [what, damage] of damages) {
    it(`discards a damaged snapshot (${what}) and writes a good one`, async () => {
      const { root, cache } = labDataset();
      await list(root, cache);
      const file = snapshotPath(cache, root);
      damage(file);
      // a caption edit too: a trusted damaged snapshot would serve the old map
      writeFileSync(join(root, 'text', '11.txt'), 'new caption\n');
      utimesSync(join(root, 'text', '11.txt'), OLD, new Date('2024-01-02T00:00:00Z'));
      const after = await list(root, cache);
      expect(after.asked.known).toBe(2 * ITEMS);
      await expectSame(after.listed, root);
      expect(fs.lstatSync(file).isFile()).toBe(true);
      expect('snapshot' in parseSnapshot(readFileSync(file, 'utf8'))).toBe(true);
      expect((await list(root, cache)).asked.known).toBe(0);
    });
  }

  it('refuses a map that no longer has the snapshot\'s digest when it is built', async () => {
    const { root, cache } = labDataset();
    await list(root, cache);
    const served = await list(root, cache);
    // the content changes between the walk and the reading, and the stat memo does not know it
    rmSync(join(cache, 'statmemo.bin'), { force: true });
    rmSync(join(cache, 'statmemo.bin.journal'), { force: true });
    const fresh = await list(root, cache);
    expect(fresh.asked.known).toBe(0);
    writeFileSync(join(root, 'text', '2.txt'), 'caption 3\n'.replace('3', '4'));
    expect(() => Object.keys(fresh.listed.files)).toThrow(/files in data changed while lorabuild was running; run it again/);
    expect(served).toBeDefined();
  });
});

describe('listing snapshot through the CLI', () => {
  it('a no-op run is fresh by snapshot; a run without the lock or the fetch entry builds the same lock and listing', async () => {
    const { base, root } = labDataset();
    writeFileSync(join(base, 'lorafile.yaml'), 'version: 1\ndatasets:\n  ds:\n    folder: data\n');
    const env = { LORABUILD_CACHE: join(base, 'cache') };
    const first = await runCli(['run', 'fetch:ds', '--json'], { cwd: base, env });
    expect(first.code, first.stderr).toBe(0);
    const lock = readFileSync(join(base, 'lorafile.lock'), 'utf8');
    expect(lock).toContain('filesTree');

    const noop = await runCli(['run', 'fetch:ds', '--json'], { cwd: base, env });
    expect(noop.code, noop.stderr).toBe(0);
    const summary = JSON.parse(noop.stdout.trim().split('\n').at(-1)!).summary;
    expect(summary.fresh).toBe(1);
    // no file of the folder was looked up in the stat memo: the snapshot answered
    expect(summary.hashing.memoHits).toBeLessThan(10);

    // the lock gone: restored from the cache, and the lock written again needs the map's tree
    rmSync(join(base, 'lorafile.lock'));
    const relocked = await runCli(['run', 'fetch:ds', '--json'], { cwd: base, env });
    expect(relocked.code, relocked.stderr).toBe(0);
    expect(readFileSync(join(base, 'lorafile.lock'), 'utf8')).toBe(lock);

    // the fetch's cache entry gone: fetch runs on the snapshot's listing and writes the same listing
    rmSync(join(base, 'cache', 'actions'), { recursive: true });
    const rerun = await runCli(['run', 'fetch:ds', '--json'], { cwd: base, env });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/"stage":"fetch:ds","outcome":"ran"/);
    expect(readFileSync(join(base, 'lorafile.lock'), 'utf8')).toBe(lock);

    // a caption edited: status names it
    writeFileSync(join(root, 'text', '42.txt'), 'edited\n');
    const status = await runCli(['status'], { cwd: base, env });
    expect(status.stdout).toContain('data/text/42.txt');

    // cache verify keeps a whole snapshot and removes a damaged one; gc removes the snapshot of a folder that is gone
    const snap = snapshotPath(join(base, 'cache'), root);
    expect((await runCli(['cache', 'verify'], { cwd: base, env })).code).toBe(0);
    expect(fs.existsSync(snap)).toBe(true);
    writeFileSync(snap, readFileSync(snap, 'utf8').replace('"count":', '"count":1'));
    const verify = await runCli(['cache', 'verify'], { cwd: base, env });
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(/removed folders\/[0-9a-f]+\.snap: a damaged folder memo \(its checksum does not match its contents\)/);
    expect(fs.existsSync(snap)).toBe(false);
    expect((await runCli(['run', 'fetch:ds'], { cwd: base, env })).code).toBe(0);
    expect(fs.existsSync(snap)).toBe(true);
    rmSync(root, { recursive: true });
    const gc = await runCli(['cache', 'gc'], { cwd: base, env });
    expect(gc.code, gc.stderr).toBe(0);
    expect(fs.existsSync(snap)).toBe(false);
  }, 120_000);
});
