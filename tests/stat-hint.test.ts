// The stat hint (src/datasets/local/stat-hint.ts, parallel-lstat.ts): a listing writes the big
// folders it walked (once, not on every run); the next process hands them to the stat thread at
// start, and the walk takes such a prestarted job only where it finds the very same names, with a
// listing exactly that of a walk without it. Stats taken before the walk count for the racy rule
// from when they were taken. A damaged hint is ignored (verify removes it, a listing rewrites it).
// Through the CLI: a no-op run takes both folders' prestarted jobs.
import * as fs from 'node:fs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listLocalDataset } from '../src/datasets/local/list.js';
import { helperCounts, prestartStatHelper } from '../src/datasets/local/parallel-lstat.js';
import { readStatHint } from '../src/datasets/local/stat-hint.js';
import { statHintPath } from '../src/datasets/local/stat-thread.js';
import { inspectFolderMemo } from '../src/datasets/local/folder-memo.js';
import { snapshotPath } from '../src/datasets/local/listing-snapshot.js';
import { makeTempDir, REPO_ROOT, runCli } from './helpers/cli.js';
import { countedSource, hasCoarseTimestamps, writeOldLabFolder } from './helpers/lab-folder.js';

const tmp = makeTempDir('lorabuild-stat-hint-');
afterAll(tmp.cleanup);

/** items per case: image/ and text/ each past PARALLEL_MIN (4,096) names */
const ITEMS = 4200;
let serial = 0;
const coarseTimestamps = hasCoarseTimestamps(tmp.dir);

function labDataset(): { base: string; root: string; cache: string } {
  const base = join(tmp.dir, `case-${serial++}`);
  const root = join(base, 'data');
  writeOldLabFolder(root, ITEMS);
  return { base, root, cache: join(base, 'cache') };
}

async function list(root: string, cache: string | undefined) {
  const { source, memo } = countedSource(root, cache);
  const listed = await listLocalDataset(source);
  memo.save();
  // plain data: a snapshot hit's map and listing are built when read
  return { layout: listed.layout, listing: listed.listing, files: { ...listed.files } };
}

/** the hint file's identity: a rewrite (temp + rename) changes its inode */
const identity = (file: string) => {
  const st = fs.statSync(file);
  return `${st.ino}:${st.mtimeMs}:${st.size}`;
};

describe('stat hint', () => {
  it('is written once for the big folders walked; the next prestart is taken by the walk, which lists exactly what a walk without it lists', async () => {
    const { root, cache } = labDataset();
    const first = await list(root, cache);
    const hint = readStatHint(cache);
    expect(hint.map((f) => [f.prefix, f.count])).toEqual([
      [join(root, 'image') + '/', ITEMS],
      [join(root, 'text') + '/', ITEMS],
    ]);
    expect(hint[1].names.split('\n')).toEqual(fs.readdirSync(join(root, 'text')).sort());
    const written = identity(statHintPath(cache));
    await list(root, cache);
    expect(identity(statHintPath(cache))).toBe(written);

    const used = helperCounts.prestartedUsed;
    prestartStatHelper(cache);
    const again = await list(root, cache);
    expect(helperCounts.prestartedUsed - used).toBe(2);
    expect(again).toEqual(first);
    expect(again).toEqual(await list(root, undefined));
  }, 120_000);

  it('is not used for a folder whose names changed; the walk lists what is there and the hint is rewritten', async () => {
    const { root, cache } = labDataset();
    await list(root, cache);
    writeFileSync(join(root, 'text', 'extra.txt'), 'a stray caption\n');
    const used = helperCounts.prestartedUsed;
    prestartStatHelper(cache);
    const listed = await list(root, cache);
    // image/ is as hinted, text/ is not
    expect(helperCounts.prestartedUsed - used).toBe(1);
    expect(listed).toEqual(await list(root, undefined));
    expect(Object.keys(listed.files)).toContain('data/text/extra.txt');
    expect(readStatHint(cache)[1].names.split('\n')).toContain('extra.txt');
  }, 120_000);

  it.skipIf(coarseTimestamps)('counts the racy window from when a prestarted job was handed out, not from the walk', async () => {
    const { root, cache } = labDataset();
    await list(root, cache);
    const snap = snapshotPath(cache, root);
    const before = readFileSync(snap, 'utf8');
    // a caption saved just before the run started: racy for the prestarted stats, not for the walk 300 ms later
    writeFileSync(join(root, 'text', '999.txt'), 'caption 9!9\n');
    const used = helperCounts.prestartedUsed;
    prestartStatHelper(cache);
    await new Promise((r) => setTimeout(r, 300));
    const listed = await list(root, cache);
    expect(helperCounts.prestartedUsed - used).toBe(2);
    expect(listed.files['data/text/999.txt']).toBe((await list(root, undefined)).files['data/text/999.txt']);
    // no snapshot for stats that were racy when taken
    expect(readFileSync(snap, 'utf8')).toBe(before);
  }, 120_000);

  it('a damaged hint is ignored, reported as damage, and rewritten whole by the next listing', async () => {
    const { root, cache } = labDataset();
    await list(root, cache);
    const file = statHintPath(cache);
    expect(inspectFolderMemo(readFileSync(file, 'utf8'))).toEqual({ root: join(root, 'image') });
    const bytes = readFileSync(file);
    bytes[bytes.length - 20] ^= 0x01;
    writeFileSync(file, bytes);
    expect(readStatHint(cache)).toEqual([]);
    expect(inspectFolderMemo(bytes.toString('utf8'))).toEqual({ problem: 'its checksum does not match its contents' });
    const used = helperCounts.prestartedUsed;
    prestartStatHelper(cache);
    expect(await list(root, cache)).toEqual(await list(root, undefined));
    expect(helperCounts.prestartedUsed).toBe(used);
    expect(readStatHint(cache)).toHaveLength(2);
  }, 120_000);

  it('a no-op run through the CLI takes the prestarted jobs of both folders', async () => {
    const { base } = labDataset();
    writeFileSync(join(base, 'lorafile.yaml'), 'version: 1\ndatasets:\n  big:\n    folder: data\n    rules: { too_small: off }\n');
    // reports the stat thread's counts of the very module the CLI uses: dist/'s ES modules (the
    // bundle holds a copy of its own, which a preload cannot reach)
    const preload = join(base, 'counts.mjs');
    const module = join(REPO_ROOT, 'dist', 'datasets', 'local', 'parallel-lstat.js');
    writeFileSync(preload, `const m = await import(${JSON.stringify(module)});\nprocess.on('exit', () => process.stderr.write('COUNTS ' + JSON.stringify(m.helperCounts) + '\\n'));\n`);
    const run = () => runCli(['run', 'fetch:big', '--json'], { cwd: base, env: { NODE_OPTIONS: `--import ${preload}`, LORABUILD_NO_BUNDLE: '1' } });
    const counts = (stderr: string) => JSON.parse(/COUNTS (.*)/.exec(stderr)![1]) as typeof helperCounts;
    const cold = await run();
    expect(cold.code, cold.stderr).toBe(0);
    expect(counts(cold.stderr).prestartedUsed).toBe(0);
    const noop = await run();
    expect(noop.code, noop.stderr).toBe(0);
    expect(counts(noop.stderr).prestartedUsed).toBe(2);
    expect(noop.events.find((e) => e.summary)?.summary).toMatchObject({ ran: 0 });
  }, 180_000);
});
