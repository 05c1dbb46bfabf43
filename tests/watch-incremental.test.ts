// `lorabuild watch` keeps the work of unchanged items between builds (the same listing entries,
// manifest items, item keys and chunk-tree leaves, object for object). Whatever it kept, the
// outputs after a series of saves must be exactly those of a fresh `lorabuild run` in a clean
// cache: the lock (every output's hash: listing, manifest, validation report) and the reports in
// out/, byte for byte. The dataset is longer than the inline limit, so listing, manifest and item
// packs are chunk trees.
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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
function outputsOf(dir: string, withLock = true): Record<string, string> {
  const read = (rel: string) => readFileSync(join(dir, rel), 'utf8');
  return { ...(withLock ? { lock: read('lorafile.lock') } : {}), json: read('out/datasets/ds/validation.json'), md: read('out/datasets/ds/validation.md') };
}

/**
 * write, wait for a build to start (a few seconds at most), then until the watch has been idle for
 * a while. Not for a build naming the path: a build that started just before the write may read
 * the new content, and the notice arriving after it is then rightly dropped.
 */
async function settle(w: WatchProcess, what: string, write: () => void): Promise<void> {
  const before = w.events.length;
  write();
  const deadline = Date.now() + 90_000;
  for (let waited = 0; waited < 5000 && !w.events.slice(before).some((e) => e.watch === 'build'); waited += 100) await new Promise((r) => setTimeout(r, 100));
  for (;;) {
    const seen = w.events.length;
    await new Promise((r) => setTimeout(r, 1500));
    const last = w.events.findLast((e) => e.watch === 'build' || e.watch === 'idle');
    if (w.events.length === seen && last?.watch === 'idle') return;
    if (Date.now() > deadline) throw new Error(`the watch did not settle after ${what}; last events:\n${w.events.slice(-10).map((e) => JSON.stringify(e)).join('\n')}`);
  }
}

/** the reports a fresh `lorabuild run` in a clean cache writes for a copy of `dir`'s data and lorafile */
async function freshReports(dir: string, name: string): Promise<{ json: string; md: string }> {
  const fresh = join(tmp.dir, name);
  cpSync(join(dir, 'data'), join(fresh, 'data'), { recursive: true });
  cpSync(join(dir, 'lorafile.yaml'), join(fresh, 'lorafile.yaml'));
  await runCli(['run', 'validate:ds'], { cwd: fresh, env: ENV });
  const { json, md } = outputsOf(fresh, false);
  return { json, md };
}

/** a lab dataset of ITEMS items (trigger one-line-art) in tmp/<name>, and a watch on it after its first build */
async function watchedProject(name: string): Promise<{ dir: string; w: WatchProcess }> {
  const dir = join(tmp.dir, name);
  const files: Record<string, string | Buffer> = { 'lorafile.yaml': lorafile('one-line-art') };
  for (let i = 0; i < ITEMS; i++) {
    files[`data/image/${i}.png`] = tinyPng(i) as Buffer;
    files[`data/text/${i}.txt`] = `one-line-art, shape ${i}, ${i % 2 ? 'side' : 'front'} view\n`;
  }
  writeFiles(dir, files);
  const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
  await w.next(isWatch('idle', (e) => e.build === 1), 'the first build');
  return { dir, w };
}

describe('lorabuild watch after saves', { timeout: 300_000 }, () => {
  it('writes the lock and reports a fresh run writes, after edits, a duplicate, an added and a removed item and new settings', async () => {
    const { dir, w } = await watchedProject('watched');

    const step = (what: string, write: () => void) => settle(w, what, write);
    const caption = (i: number, text: string) => writeFileSync(join(dir, `data/text/${i}.txt`), text);
    await step('an edit', () => caption(5, 'one-line-art, a brand new tag, side view\n'));
    await step('a duplicate caption', () => caption(9, 'one-line-art, shape 10, front view\n'));
    await step('an empty caption', () => caption(7, '  \n'));
    await step('a caption without the trigger', () => caption(8, 'shape 8, front view\n'));
    await step('an added item', () => {
      writeFileSync(join(dir, `data/image/${ITEMS}.png`), tinyPng(ITEMS) as Buffer);
      writeFileSync(join(dir, `data/text/${ITEMS}.txt`), 'one-line-art, added, side view\n');
    });
    await step('a removed item', () => {
      rmSync(join(dir, 'data/image/2.png'));
      rmSync(join(dir, 'data/text/2.txt'));
    });
    await step('the empty caption fixed', () => caption(7, 'one-line-art, shape 7, side view\n'));
    await step('the edit undone', () => caption(5, 'one-line-art, shape 5, side view\n'));
    // other settings: every item is prepared and checked under a new key
    await step('another trigger and a resolution', () => {
      writeFileSync(join(dir, 'lorafile.yaml'), lorafile('shape', 'resolution: 64, '));
    });
    const result = await w.interrupt();
    expect(result.code).toBe(130);
    const watched = outputsOf(dir);
    // the watch kept each lock it wrote in memory: no parsed copy per save in the cache
    const lockMemos = join(dir, 'cache', 'lockjson');
    expect(existsSync(lockMemos) ? readdirSync(lockMemos) : []).toEqual([]);

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
  // validate keeps the last report's aggregates and updates them from the changed items
  // (text/validation-delta.ts); a settings change or a different item count starts over, so
  // the reports are compared part way, while the kept state carries them
  it('writes the reports of a fresh run while validate updates its kept report: duplicates, numbering, tag ranks, an item removed and added back', async () => {
    const { dir, w } = await watchedProject('kept');
    let stopped = false;
    try {
      const step = (what: string, write: () => void) => settle(w, what, write);
      const caption = (i: number, text: string) => writeFileSync(join(dir, `data/text/${i}.txt`), text);
      const same = async (name: string, codes: string[]) => {
        const watched = outputsOf(dir, false);
        const expected = await freshReports(dir, name);
        const report = JSON.parse(expected.json) as { diagnostics: { code: string; file?: string }[] };
        expect(report.diagnostics.map((d) => `${d.file} ${d.code}`).sort(), name).toEqual(codes);
        expect(watched.json, name).toBe(expected.json);
        expect(watched.md, name).toBe(expected.md);
      };
      // 'front view' and 'side view' tie at 150 (front first: item 0); two edits put side view ahead
      await step('a tag overtakes another', () => caption(0, 'one-line-art, shape 0, side view\n'));
      await step('and again', () => caption(2, 'one-line-art, shape 2, side view, front view, side view\n'));
      await step('a duplicate caption', () => caption(9, 'one-line-art, shape 10, front view\n'));
      await step('a third copy', () => caption(11, 'one-line-art, shape 10, front view\n'));
      await step('a duplicate image', () => writeFileSync(join(dir, 'data/image/12.png'), tinyPng(11) as Buffer));
      await step('a caption gone: its number has an image only', () => rmSync(join(dir, 'data/text/30.txt')));
      await step('an empty caption', () => caption(7, '  \n'));
      await step('a caption without the trigger', () => caption(8, 'shape 8, front view\n'));
      await same('kept-1', [
        'data/image/12.png duplicate_image',
        'data/image/30.png missing_caption',
        'data/text/10.txt duplicate_caption',
        'data/text/11.txt duplicate_caption',
        'data/text/7.txt empty_caption',
        'data/text/8.txt trigger_missing',
      ]);
      // the first of three copies differs: 10 is now the first, and 11 its duplicate
      await step('the first copy differs', () => caption(9, 'one-line-art, shape 9, side view\n'));
      await step('the caption back', () => caption(30, 'one-line-art, shape 30, front view\n'));
      await step('the empty caption fixed', () => caption(7, 'one-line-art, shape 7, side view\n'));
      await step('a tag falls back', () => caption(0, 'one-line-art, shape 0, front view\n'));
      await same('kept-2', ['data/image/12.png duplicate_image', 'data/text/11.txt duplicate_caption', 'data/text/8.txt trigger_missing']);
      await step('no duplicate caption', () => caption(11, 'one-line-art, shape 11, side view\n'));
      // a numbering gap opens (an item fewer), closes again (the item back), then captions change
      await step('an item removed', () => {
        rmSync(join(dir, 'data/image/40.png'));
        rmSync(join(dir, 'data/text/40.txt'));
      });
      await same('kept-3', ['data/image/12.png duplicate_image', 'data/image/41.png numbering', 'data/text/8.txt trigger_missing']);
      await step('the item back', () => {
        writeFileSync(join(dir, 'data/image/40.png'), tinyPng(40) as Buffer);
        writeFileSync(join(dir, 'data/text/40.txt'), 'one-line-art, shape 40, front view\n');
      });
      await step('an edit after it', () => caption(41, 'one-line-art, shape 41, front view, a new tag\n'));
      await step('the duplicate image gone', () => writeFileSync(join(dir, 'data/image/12.png'), tinyPng(12) as Buffer));
      await step('the trigger back', () => caption(8, 'one-line-art, shape 8, front view\n'));
      await same('kept-4', []);
      const result = await w.interrupt();
      stopped = true;
      expect(result.code).toBe(130);
    } finally {
      // a failed comparison leaves the watch running: stop it before the folder goes
      if (!stopped) await w.interrupt();
    }
  });

  it('matches a fresh run after each save: a caption edited twice, an image replaced, an item renamed, added, a caption deleted, an item removed', async () => {
    const { dir, w } = await watchedProject('steps');
    let fresh = 0;
    // each save, then the watch's lock and reports against a fresh run's on a copy of the folder
    // `validateFails`: a failed stage keeps its last lock entry, which a fresh run never had: the
    // locks are compared without validate's entry (the last one), and the fresh one has none
    const step = async (what: string, write: () => void, validateFails = false) => {
      await settle(w, what, write);
      const copy = join(tmp.dir, `fresh-${++fresh}`);
      cpSync(join(dir, 'data'), join(copy, 'data'), { recursive: true });
      writeFileSync(join(copy, 'lorafile.yaml'), lorafile('one-line-art'));
      const run = await runCli(['run', 'validate:ds'], { cwd: copy, env: ENV });
      expect(run.code, run.stderr).toBe(validateFails ? 1 : 0);
      const expected = outputsOf(copy);
      const watched = outputsOf(dir);
      expect(watched.json, what).toBe(expected.json);
      expect(watched.md, what).toBe(expected.md);
      const withoutValidate = (lock: string) => {
        const lines = lock.split('\n');
        const at = lines.indexOf('  "validate:ds":');
        let end = at + 1;
        while (end < lines.length && lines[end].startsWith('    ')) end++;
        return at < 0 ? lock : [...lines.slice(0, at), ...lines.slice(end)].join('\n');
      };
      if (validateFails) expect(expected.lock).not.toContain('"validate:ds":');
      expect(validateFails ? withoutValidate(watched.lock) : watched.lock, what).toBe(expected.lock);
    };
    const caption = (i: number, text: string) => writeFileSync(join(dir, `data/text/${i}.txt`), text);
    await step('a caption edited twice between builds', () => {
      caption(5, 'one-line-art, first edit\n');
      caption(5, 'one-line-art, the second edit, longer\n');
    });
    await step('an image replaced', () => writeFileSync(join(dir, 'data/image/6.png'), tinyPng(ITEMS + 6) as Buffer));
    await step('an item renamed', () => {
      renameSync(join(dir, 'data/image/7.png'), join(dir, `data/image/${ITEMS + 7}.png`));
      renameSync(join(dir, 'data/text/7.txt'), join(dir, `data/text/${ITEMS + 7}.txt`));
    });
    await step('an item added', () => {
      writeFileSync(join(dir, `data/image/${ITEMS}.png`), tinyPng(ITEMS) as Buffer);
      writeFileSync(join(dir, `data/text/${ITEMS}.txt`), 'one-line-art, added, side view\n');
    });
    // the same number of items, one fewer caption (the stage's counts are patched, see prepare.ts)
    await step('a caption deleted', () => rmSync(join(dir, 'data/text/11.txt')), true);
    await step('the caption back', () => caption(11, 'one-line-art, shape 11, side view\n'));
    await step('an item removed', () => {
      rmSync(join(dir, 'data/image/2.png'));
      rmSync(join(dir, 'data/text/2.txt'));
    });
    await step('the twice-edited caption back as it was', () => caption(5, 'one-line-art, shape 5, side view\n'));
    const result = await w.interrupt();
    expect(result.code).toBe(130);
  });
});
