// The lock's parsed form (src/engine/lockfile.ts): a run memoises it in the cache (cache/lockjson),
// so that the next process reads JSON instead of YAML; a long-lived process (watch) keeps the last
// lock it wrote in memory instead, and writes no memo per save. Either way readLockfile gives back
// exactly the lock that was written, and a lock edited since is read from its text.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../src/engine/canonical.js';
import { readLockfile, writeLockfile } from '../src/engine/lockfile.js';
import type { Lockfile } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-lock-memo-');
afterAll(tmp.cleanup);

const SHA = 'a'.repeat(64);
function lockWith(n: number): Lockfile {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) files[`data/text/${i}.txt`] = SHA;
  return { version: 1, stages: { 'fetch:ds': { fingerprint: 'b'.repeat(64), params: { source: 'folder', folder: 'data' }, files, upstream: {}, outputs: {}, meta: null, implVersion: 2 } } } as unknown as Lockfile;
}

/** the hash a stat memo would give for the lock's current text */
const textHashOf = (file: string) => () => sha256Hex(readFileSync(file, 'utf8'));
const memos = (cache: string) => (existsSync(join(cache, 'lockjson')) ? readdirSync(join(cache, 'lockjson')) : []);

describe('lock memo', () => {
  it('a run memoises the parsed lock in the cache; a long-lived process keeps it in memory only', async () => {
    const file = join(tmp.dir, 'a.lock');
    const cache = join(tmp.dir, 'cache-a');
    const first = lockWith(3);
    const hash = await writeLockfile(file, first, '', cache);
    expect(hash).toBe(sha256Hex(readFileSync(file, 'utf8')));
    expect(memos(cache)).toEqual([`${hash}.json`]);

    const second = lockWith(5);
    const hash2 = await writeLockfile(file, second, hash!, cache, false);
    expect(hash2).not.toBe(hash);
    // no memo of the second lock in the cache, yet it reads back whole
    expect(memos(cache)).toEqual([`${hash}.json`]);
    const loaded = readLockfile(file, cache, textHashOf(file));
    expect(loaded.textHash).toBe(hash2);
    expect(loaded.lock).toEqual(second);
    // a copy: changing what was read does not change what the next read gives
    (loaded.lock.stages['fetch:ds'] as { files: Record<string, string> }).files.extra = SHA;
    expect(readLockfile(file, cache, textHashOf(file)).lock).toEqual(second);
  });

  it('a lock edited by hand after it was written is read from its text, not from memory', async () => {
    const file = join(tmp.dir, 'b.lock');
    const cache = join(tmp.dir, 'cache-b');
    await writeLockfile(file, lockWith(2), '', cache, false);
    writeFileSync(file, readFileSync(file, 'utf8').replace('data/text/1.txt', 'data/text/9.txt'));
    const loaded = readLockfile(file, cache, textHashOf(file));
    expect(Object.keys((loaded.lock.stages['fetch:ds'] as { files: Record<string, string> }).files)).toEqual(['data/text/0.txt', 'data/text/9.txt']);
    // and that parse is memoised in the cache for the next process
    expect(memos(cache)).toEqual([`${loaded.textHash}.json`]);
  });
});
