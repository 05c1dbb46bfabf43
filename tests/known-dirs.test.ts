// Cache writes make each folder once per process (cache/known-dirs.ts), and a folder removed since
// (by gc, a test, a user) is made again when a write into it fails for want of it. Writes of the
// cache's own files still clear damage in their way, now only after a failed first try.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { writeOwnedFileAtomic } from '../src/cache/safe-fs.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-known-dirs-');
afterAll(tmp.cleanup);

const realMkdir = fs.mkdirSync;
afterEach(() => {
  fs.mkdirSync = realMkdir;
  syncBuiltinESMExports();
});

/** counts mkdirSync calls by every module (named imports included) until afterEach */
function countMkdirs(): string[] {
  const calls: string[] = [];
  fs.mkdirSync = ((path: fs.PathLike, options?: fs.MakeDirectoryOptions) => {
    calls.push(String(path));
    return realMkdir(path, options);
  }) as typeof fs.mkdirSync;
  syncBuiltinESMExports();
  return calls;
}

describe('cache folders made once', () => {
  it('stores 40 blobs making each folder once, not twice per blob', () => {
    const cas = new Cas(join(tmp.dir, 'once'));
    const calls = countMkdirs();
    const blobs = Array.from({ length: 40 }, (_, i) => cas.putBuffer(Buffer.from(`blob ${i}\n`)));
    const folders = new Set(blobs.map((b) => dirname(cas.path(b.sha256))));
    // the temp folder and each fan-out folder, once each (before: two mkdir calls per blob)
    expect(calls.length).toBe(folders.size + 1);
    expect(new Set(calls).size).toBe(calls.length);
    for (const [i, b] of blobs.entries()) expect(readFileSync(cas.path(b.sha256), 'utf8')).toBe(`blob ${i}\n`);
  });

  it('makes the temp and fan-out folders again when they were removed after this process made them', () => {
    const root = join(tmp.dir, 'removed');
    const cas = new Cas(root);
    const first = cas.putBuffer(Buffer.from('first\n'));
    rmSync(join(root, 'tmp'), { recursive: true });
    rmSync(dirname(cas.path(first.sha256)), { recursive: true });
    // the same fan-out folder again: a blob whose name starts as the first one's
    let text = '';
    for (let i = 0; ; i++) {
      text = `second ${i}\n`;
      if (dirname(cas.path(sha(text))) === dirname(cas.path(first.sha256))) break;
    }
    const second = cas.putBuffer(Buffer.from(text));
    expect(readFileSync(cas.path(second.sha256), 'utf8')).toBe(text);
    expect(statSync(join(root, 'tmp')).isDirectory()).toBe(true);
  });

  it("writes a cache file over a folder in its way, into a folder removed since, and where a file stood in a folder's place", () => {
    const root = join(tmp.dir, 'owned');
    const target = join(root, 'runs', 'stage.json');
    writeOwnedFileAtomic(root, target, 'one\n');
    rmSync(join(root, 'runs'), { recursive: true });
    writeOwnedFileAtomic(root, target, 'two\n');
    expect(readFileSync(target, 'utf8')).toBe('two\n');
    rmSync(target);
    mkdirSync(join(target, 'inside'), { recursive: true });
    writeOwnedFileAtomic(root, target, 'three\n');
    expect(readFileSync(target, 'utf8')).toBe('three\n');
    rmSync(join(root, 'runs'), { recursive: true });
    writeFileSync(join(root, 'runs'), 'not a folder');
    writeOwnedFileAtomic(root, target, 'four\n');
    expect(readFileSync(target, 'utf8')).toBe('four\n');
  });
});

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
