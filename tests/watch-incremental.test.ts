// `lorabuild watch` keeps the work of unchanged items between builds (the same listing entries,
// manifest items, item keys and chunk-tree leaves, object for object). Whatever it kept, the
// outputs after a series of saves must be exactly those of a fresh `lorabuild run` in a clean
// cache: the lock (every output's hash: listing, manifest, validation report) and the reports in
// out/, byte for byte. The dataset is longer than the inline limit, so listing, manifest and item
// packs are chunk trees.
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';
import { isWatch, WatchProcess } from './watch-stream.js';
// @ts-expect-error the bench helpers are plain JavaScript
import { tinyPng } from '../bench/lab-dataset.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const tmp = makeTempDir('lorabuild-watch-incremental-');
afterAll(tmp.cleanup);

const ITEMS = 300;
const lorafile = (trigger: string, resolution = '') => `version: 1
datasets:
  ds: { folder: data, trigger: ${trigger}, ${resolution}rules: { too_small: off } }
`;

/** the watch's outputs: lock and the materialised reports */
function outputsOf(dir: string): Record<string, string> {
  const read = (rel: string) => readFileSync(join(dir, rel), 'utf8');
  return { lock: read('lorafile.lock'), json: read('out/datasets/ds/validation.json'), md: read('out/datasets/ds/validation.md') };
}

describe('lorabuild watch after saves', { timeout: 300_000 }, () => {
  it('writes the lock and reports a fresh run writes, after edits, a duplicate, an added and a removed item and new settings', async () => {
    const dir = join(tmp.dir, 'watched');
    const files: Record<string, string | Buffer> = { 'lorafile.yaml': lorafile('one-line-art') };
    for (let i = 0; i < ITEMS; i++) {
      files[`data/image/${i}.png`] = tinyPng(i) as Buffer;
      files[`data/text/${i}.txt`] = `one-line-art, shape ${i}, ${i % 2 ? 'side' : 'front'} view\n`;
    }
    writeFiles(dir, files);
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the first build');

    // each step: write, then wait for the end of a build that took the last path written in
    const step = async (what: string, write: () => string[]) => {
      const paths = write();
      const last = paths.at(-1)!;
      // an added or removed file may come as its folder's notice
      const seen = [last, last.includes('/') ? last.slice(0, last.lastIndexOf('/')) : last];
      await w.next(isWatch('build', (e) => (e.changes as string[]).some((c) => seen.includes(c))), `a build of ${what}`);
      await w.next(isWatch('idle'), `the end of the build of ${what}`);
    };
    const caption = (i: number, text: string) => {
      writeFileSync(join(dir, `data/text/${i}.txt`), text);
      return [`data/text/${i}.txt`];
    };
    await step('an edit', () => caption(5, 'one-line-art, a brand new tag, side view\n'));
    await step('a duplicate caption', () => caption(9, 'one-line-art, shape 10, front view\n'));
    await step('an empty caption', () => caption(7, '  \n'));
    await step('a caption without the trigger', () => caption(8, 'shape 8, front view\n'));
    await step('an added item', () => {
      writeFileSync(join(dir, `data/image/${ITEMS}.png`), tinyPng(ITEMS) as Buffer);
      writeFileSync(join(dir, `data/text/${ITEMS}.txt`), 'one-line-art, added, side view\n');
      return [`data/image/${ITEMS}.png`, `data/text/${ITEMS}.txt`];
    });
    await step('a removed item', () => {
      rmSync(join(dir, 'data/image/2.png'));
      rmSync(join(dir, 'data/text/2.txt'));
      return ['data/text/2.txt'];
    });
    await step('the empty caption fixed', () => caption(7, 'one-line-art, shape 7, side view\n'));
    await step('the edit undone', () => caption(5, 'one-line-art, shape 5, side view\n'));
    // other settings: every item is prepared and checked under a new key
    await step('another trigger and a resolution', () => {
      writeFileSync(join(dir, 'lorafile.yaml'), lorafile('shape', 'resolution: 64, '));
      return ['lorafile.yaml'];
    });
    const result = await w.interrupt();
    expect(result.code).toBe(130);
    const watched = outputsOf(dir);

    const fresh = join(tmp.dir, 'fresh');
    cpSync(join(dir, 'data'), join(fresh, 'data'), { recursive: true });
    writeFileSync(join(fresh, 'lorafile.yaml'), lorafile('shape', 'resolution: 64, '));
    const run = await runCli(['run', 'validate:ds'], { cwd: fresh, env: ENV });
    expect(run.code, run.stderr).toBe(0);
    const expected = outputsOf(fresh);
    // the report saw every change: the duplicate, the missing trigger, the added and removed items
    const report = JSON.parse(expected.json) as { items: number; diagnostics: { code: string; file?: string }[] };
    expect(report.items).toBe(ITEMS);
    expect(report.diagnostics.map((d) => `${d.file} ${d.code}`).sort()).toEqual(['data/image/3.png numbering', 'data/text/10.txt duplicate_caption', 'data/text/300.txt trigger_missing']);
    expect(watched.json).toBe(expected.json);
    expect(watched.md).toBe(expected.md);
    expect(watched.lock).toBe(expected.lock);
  });
});
