// The walk cache behind `lorabuild watch`: a dataset folder listed once, patched from watcher
// notices. A 'change' of a listed file re-stats that file only; anything structural re-walks.
import { mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WalkCache } from '../src/watch/walk-cache.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-walk-cache-');
afterAll(tmp.cleanup);

function dataset(name: string, n: number): string {
  const root = join(tmp.dir, name);
  mkdirSync(join(root, 'text'), { recursive: true });
  mkdirSync(join(root, 'image'), { recursive: true });
  for (let i = 0; i < n; i++) {
    writeFileSync(join(root, 'text', `${i}.txt`), `caption ${i}\n`);
    writeFileSync(join(root, 'image', `${i}.png`), `not really a png ${i}`);
  }
  return root;
}

const rels = (files: { rel: string }[]) => files.map((f) => f.rel);

describe('WalkCache', () => {
  it('re-stats only the changed file when the watcher reports a change', async () => {
    const root = dataset('change', 3);
    const cache = new WalkCache();
    expect(rels(await cache.walk(root, 'change'))).toEqual(['image/0.png', 'image/1.png', 'image/2.png', 'text/0.txt', 'text/1.txt', 'text/2.txt']);
    const caption = join(root, 'text', '1.txt');
    writeFileSync(caption, 'a much longer caption than before\n');
    cache.changed(caption, 'change');
    expect(cache.seen(caption)?.dirty).toBe(true);
    const again = await cache.walk(root, 'change');
    expect(cache.fullWalks).toBe(1);
    const entry = again.find((f) => f.rel === 'text/1.txt')!;
    const st = statSync(caption);
    expect([entry.size, entry.mtimeMs, entry.ino]).toEqual([st.size, st.mtimeMs, st.ino]);
    expect(cache.seen(caption)).toEqual({ stat: entry, dirty: false });
  });

  it('walks again after a file is added or removed, or a folder event', async () => {
    const root = dataset('structure', 2);
    const cache = new WalkCache();
    await cache.walk(root, 'structure');
    writeFileSync(join(root, 'text', '2.txt'), 'new\n');
    cache.changed(join(root, 'text', '2.txt'), 'add');
    expect(rels(await cache.walk(root, 'structure'))).toContain('text/2.txt');
    expect(cache.fullWalks).toBe(2);
    cache.changed(join(root, 'text'), 'folder');
    await cache.walk(root, 'structure');
    expect(cache.fullWalks).toBe(3);
    // a change of a path the listing does not know is treated as structural...
    cache.changed(join(root, 'text', 'unknown.txt'), 'change');
    await cache.walk(root, 'structure');
    expect(cache.fullWalks).toBe(4);
    // ...except dot-files, which a dataset never lists (editor swap files)
    cache.changed(join(root, 'text', '.0.txt.swp'), 'change');
    await cache.walk(root, 'structure');
    expect(cache.fullWalks).toBe(4);
  });

  it('walks again when a changed file is no longer a plain file', async () => {
    const root = dataset('gone', 2);
    const cache = new WalkCache();
    await cache.walk(root, 'gone');
    const caption = join(root, 'text', '0.txt');
    cache.changed(caption, 'change');
    // the notice said 'change', but by the time the build looks the file is gone
    rmSync(caption);
    expect(rels(await cache.walk(root, 'gone'))).not.toContain('text/0.txt');
    expect(cache.fullWalks).toBe(2);
  });

  it('never keeps a listing that followed a symbolic link', async () => {
    const root = dataset('links', 1);
    symlinkSync(join(root, 'text', '0.txt'), join(root, 'text', 'alias.txt'));
    const cache = new WalkCache();
    expect(rels(await cache.walk(root, 'links'))).toContain('text/alias.txt');
    await cache.walk(root, 'links');
    expect(cache.fullWalks).toBe(2);
    expect(cache.filesOf(root)).toBeUndefined();
  });

  it('audit finds what no notice reported, and leaves an unchanged folder listed', async () => {
    const root = dataset('audit', 3);
    const other = dataset('audit-other', 2);
    const cache = new WalkCache();
    await cache.walk(root, 'audit');
    await cache.walk(other, 'audit-other');
    expect(cache.audit()).toEqual([]);
    expect(cache.filesOf(root)).toHaveLength(6);
    // changed behind the watcher's back: a different size, then a file nobody announced
    writeFileSync(join(root, 'text', '0.txt'), 'a caption the watcher never saw\n');
    expect(cache.audit()).toEqual([root]);
    expect(cache.filesOf(root)).toBeUndefined();
    expect(cache.filesOf(other)).toHaveLength(4);
    await cache.walk(root, 'audit');
    writeFileSync(join(other, 'text', '9.txt'), 'unannounced\n');
    expect(cache.audit()).toEqual([other]);
    // a file already reported as changed is the next build's business, not a miss
    const caption = join(root, 'text', '1.txt');
    writeFileSync(caption, 'reported\n');
    cache.changed(caption, 'change');
    expect(cache.audit()).toEqual([]);
    cache.dropAll();
    expect(cache.filesOf(root)).toBeUndefined();
  });

  it('marks files from raw notices of a file watcher and of a folder watcher', async () => {
    const root = dataset('raw', 2);
    const cache = new WalkCache();
    await cache.walk(root, 'raw');
    const file = join(root, 'text', '0.txt');
    // chokidar watches each file (watchedPath is the file) and each folder (watchedPath is the folder)
    cache.rawEvent('change', file, '0.txt');
    expect(cache.seen(file)?.dirty).toBe(true);
    cache.confirm(file);
    expect(cache.seen(file)?.dirty).toBe(false);
    cache.rawEvent('change', join(root, 'text'), '1.txt');
    expect(cache.seen(join(root, 'text', '1.txt'))?.dirty).toBe(true);
    expect(cache.fullWalks).toBe(1);
    // a rename notice is structural
    cache.rawEvent('rename', join(root, 'text'), '1.txt');
    expect(cache.filesOf(root)).toBeUndefined();
  });
});
