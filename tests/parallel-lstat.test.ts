// Parallel lstat (src/datasets/local/parallel-lstat.ts, stat-worker.ts): a folder of more names
// than PARALLEL_MIN is stat-ed on two threads, and the walk is exactly the one-thread walk: files
// with their stats, folders, links, skipped FIFOs and hidden files, and a remembered name that is
// gone (in the helper's share) making the folder be read again.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dirRecordFor } from '../src/datasets/local/dir-names.js';
import { helperCounts, PARALLEL_MIN } from '../src/datasets/local/parallel-lstat.js';
import { walkDatasetFolderSync, type WalkFs } from '../src/datasets/local/walk.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-parallel-lstat-');
afterAll(tmp.cleanup);

/** the real file system, but not `fs` itself: the walk then stays on one thread */
const oneThread: WalkFs = { statSync: fs.statSync, lstatSync: fs.lstatSync, readdirSync: fs.readdirSync, realpathSync: fs.realpathSync };

/** the same files with the same stats (as text: a deep compare of 40,000 objects takes seconds) */
const sameFiles = (a: { files: unknown[] }, b: { files: unknown[] }) => expect(JSON.stringify(a.files) === JSON.stringify(b.files)).toBe(true);

describe('parallel lstat', () => {
  it('walks a big folder on two threads exactly as on one', () => {
    const root = join(tmp.dir, 'big');
    const text = join(root, 'text');
    mkdirSync(text, { recursive: true });
    const n = 40_000;
    for (let i = 0; i < n; i++) writeFileSync(join(text, `${String(i).padStart(6, '0')}.txt`), 'x'.repeat(i % 13));
    // in the helper's share (the tail, by name): a folder, a link to a file inside, a FIFO, a hidden file
    expect(n).toBeGreaterThan(PARALLEL_MIN);
    mkdirSync(join(text, 'zz-sub'));
    writeFileSync(join(text, 'zz-sub', 'inner.txt'), 'inner');
    symlinkSync(join(text, '000001.txt'), join(text, 'zz-link.txt'));
    execFileSync('mkfifo', [join(text, 'zz-fifo')]);
    writeFileSync(join(text, '.zz-hidden'), 'hidden');

    // the helper starts on first need: walk until it has taken part (its chunks are the folder's tail)
    let parallel = walkDatasetFolderSync(root, 'data');
    for (let tries = 0; tries < 10 && helperCounts.names === 0; tries++) parallel = walkDatasetFolderSync(root, 'data');
    expect(helperCounts.names).toBeGreaterThan(0);
    const serial = walkDatasetFolderSync(root, 'data', undefined, oneThread);
    sameFiles(parallel, serial);
    expect(parallel.files.length).toBe(n + 2);
    expect(parallel.files.map((f) => f.rel)).toContain('text/zz-sub/inner.txt');
    expect(parallel.files.map((f) => f.rel)).toContain('text/zz-link.txt');
    expect(parallel.files.map((f) => f.rel)).not.toContain('text/zz-fifo');
    expect(parallel.followedLinks).toBe(true);
    const st = fs.statSync(join(text, `${String(n - 1).padStart(6, '0')}.txt`));
    expect(parallel.files.find((f) => f.rel === `text/${String(n - 1).padStart(6, '0')}.txt`)).toMatchObject({ size: st.size, mtimeMs: st.mtimeMs, ino: st.ino });

    // remembered names, the last one gone (in the helper's share) and a new one not remembered (as
    // after changes within the folder's timestamp tick): the folder is read again, as on one thread
    const names = fs.readdirSync(text).filter((name) => !name.startsWith('.')).sort();
    const gone = `${String(n - 1).padStart(6, '0')}.txt`;
    rmSync(join(text, gone));
    writeFileSync(join(text, 'zz-new.txt'), 'new');
    const record = dirRecordFor(fs.statSync(text), names, Date.now() + 60_000)!;
    let helped = false;
    for (let tries = 0; tries < 10 && !helped; tries++) {
      const before = helperCounts.names;
      const again = walkDatasetFolderSync(root, 'data', new Map([['text', record]]));
      helped = helperCounts.names > before;
      expect(again.files.map((f) => f.rel)).not.toContain(`text/${gone}`);
      expect(again.files.map((f) => f.rel)).toContain('text/zz-new.txt');
      sameFiles(again, walkDatasetFolderSync(root, 'data', undefined, oneThread));
    }
    expect(helped).toBe(true);
  }, 120_000);
});
