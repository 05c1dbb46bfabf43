// The listed files of dataset folders are watched through their folders (watch/folder-notices.ts):
// one OS watch per folder, not per file. Through the CLI: a watch over 300 dataset files holds a
// handful of inotify watches (counted in /proc) and still answers a save. Directly: a write to a
// listed file is a 'change' with its stat, a removal an 'unlink', a second notice of one write is
// dropped, names no listing holds and editors' temp files are no file events, a folder made again
// is watched anew, and a refused watch is reported as the system's refusal.
import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FolderNotices } from '../src/watch/folder-notices.js';
import { makeTempDir, writeFiles } from './helpers/cli.js';
import { isWatch, WatchProcess } from './watch-stream.js';
// @ts-expect-error the bench helpers are plain JavaScript
import { tinyPng } from '../bench/lab-dataset.js';

const tmp = makeTempDir('lorabuild-folder-notices-');
afterAll(tmp.cleanup);

/** inotify watches a process holds (Linux: one "inotify wd:" line per watch in its fdinfo) */
function inotifyWatches(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    n += info.split('\n').filter((l) => l.startsWith('inotify wd:')).length;
  }
  return n;
}

describe('lorabuild watch over a dataset folder', { timeout: 120_000 }, () => {
  it("holds a few OS watches for 300 dataset files, and still answers a caption save and an editor's safe write (a temp file renamed over it)", async () => {
    const dir = join(tmp.dir, 'many');
    const files: Record<string, string | Buffer> = { 'lorafile.yaml': 'version: 1\ndatasets:\n  ds: { folder: data, rules: { too_small: off } }\n' };
    for (let i = 0; i < 150; i++) {
      files[`data/image/${i}.png`] = tinyPng(i) as Buffer;
      files[`data/text/${i}.txt`] = `one-line-art, shape ${i}, side view\n`;
    }
    writeFiles(dir, files);
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: {} });
    try {
      await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
      // the lorafile, the two folders of listed files, and what chokidar's folder poll and Node hold
      // besides: nowhere near one per file (it was 301)
      const watches = inotifyWatches(w.child.pid!);
      expect(watches).toBeGreaterThanOrEqual(3);
      expect(watches).toBeLessThan(20);
      writeFileSync(join(dir, 'data/text/77.txt'), '\n');
      const seen = await w.next(isWatch('diagnostics', (e) => (e.errors as number) > 0), 'the save');
      expect((seen.diagnostics as { file: string; code: string }[]).map((d) => `${d.file} ${d.code}`)).toEqual(['data/text/77.txt empty_caption']);
      // an editor's safe write: a temp file renamed over the caption
      writeFileSync(join(dir, 'data/text/.77.txt.tmp-4913'), 'one-line-art, shape 77, fixed\n');
      renameSync(join(dir, 'data/text/.77.txt.tmp-4913'), join(dir, 'data/text/77.txt'));
      const fixed = await w.next(isWatch('diagnostics', (e) => e.errors === 0 && e.stale === undefined), 'the safe write');
      expect(fixed.diagnostics).toEqual([]);
    } finally {
      const result = await w.interrupt();
      expect(result.code).toBe(130);
    }
  });
});

describe('lorabuild watch over a folder made again', { timeout: 120_000 }, () => {
  it('watches the new folder: a save after the caption folder was removed and made again (a checkout) is answered', async () => {
    const dir = join(tmp.dir, 'remade-cli');
    const files: Record<string, string | Buffer> = { 'lorafile.yaml': 'version: 1\ndatasets:\n  ds: { folder: data, rules: { too_small: off } }\n' };
    const captions: Record<string, string> = {};
    for (let i = 0; i < 4; i++) {
      files[`data/image/${i}.png`] = tinyPng(i) as Buffer;
      captions[`${i}.txt`] = `one-line-art, shape ${i}, side view\n`;
    }
    writeFiles(dir, files);
    writeFiles(join(dir, 'data/text'), captions);
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: {} });
    try {
      await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
      rmSync(join(dir, 'data/text'), { recursive: true });
      writeFiles(join(dir, 'data/text'), captions);
      // the folder's own notices end with it; the folder poll and the walk after it find the new one
      await w.next(isWatch('idle', (e) => (e.build as number) >= 2), 'the build after the checkout');
      await new Promise((r) => setTimeout(r, 500));
      writeFileSync(join(dir, 'data/text/2.txt'), '\n');
      // noticed as the file's change (not found by the audit walk 30 s later, which names the folder)
      const change = await w.next(isWatch('change', (e) => e.path === 'data/text/2.txt'), 'the notice of the save', 20_000);
      expect(change.event).toBe('change');
      const seen = await w.next(isWatch('diagnostics', (e) => (e.errors as number) > 0), 'the save in the new folder');
      expect((seen.diagnostics as { file: string; code: string }[]).map((d) => `${d.file} ${d.code}`)).toEqual(['data/text/2.txt empty_caption']);
    } finally {
      const result = await w.interrupt();
      expect(result.code).toBe(130);
    }
  });
});

interface Seen {
  events: { abs: string; event: string; stats?: Stats }[];
  raws: { eventType: string; watchedPath: string; name: string }[];
  refused: string[];
}

function noticesOn(budget?: () => number | undefined): { notices: FolderNotices; seen: Seen } {
  const seen: Seen = { events: [], raws: [], refused: [] };
  const notices = new FolderNotices({
    event: (abs, event, stats) => seen.events.push({ abs, event, ...(stats ? { stats } : {}) }),
    raw: (eventType, watchedPath, name) => seen.raws.push({ eventType, watchedPath, name }),
    refused: (err) => seen.refused.push(String(err.code)),
    ignored: (abs) => abs.includes('/ignored/'),
    budget: budget ?? (() => undefined),
  });
  return { notices, seen };
}

/** waits until `ok` holds (notices arrive on the event loop), at most 3 s */
async function until(ok: () => boolean): Promise<void> {
  for (let waited = 0; !ok(); waited += 10) {
    if (waited > 3000) throw new Error('no notice within 3 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** lets notices that would come arrive */
const settle = () => new Promise((r) => setTimeout(r, 150));

describe('FolderNotices', () => {
  it('reports writes and removals of listed files by name, with one watch per folder', async () => {
    const root = join(tmp.dir, 'unit');
    writeFiles(root, { 'a/1.txt': 'one\n', 'a/2.txt': 'two\n', 'b/1.png': 'png', 'b/ignored/x.txt': 'x' });
    const listed = ['a/1.txt', 'a/2.txt', 'b/1.png'].map((p) => join(root, p));
    const { notices, seen } = noticesOn();
    try {
      notices.update(listed);
      expect(notices.size).toBe(2);

      writeFileSync(listed[0], 'one, edited\n');
      await until(() => seen.events.length > 0);
      await settle();
      // a truncate and a write may be two OS notices: one event (the second has the stat of the first)
      expect(seen.events.map((e) => `${e.event} ${e.abs}`)).toEqual([`change ${listed[0]}`]);
      expect(seen.events[0].stats?.size).toBe(statSync(listed[0]).size);
      expect(seen.raws.some((r) => r.watchedPath === listed[0] && r.name === '1.txt')).toBe(true);

      // a notice whose stat has not moved (the same mode set again: an attribute notice) is no event
      chmodSync(listed[0], statSync(listed[0]).mode & 0o777);
      await settle();
      expect(seen.events).toHaveLength(1);

      // a name no listing holds: its coming is a raw notice on the folder, not a file event
      seen.raws.length = 0;
      writeFileSync(join(root, 'a/3.txt'), 'three\n');
      // an editor's swap file: nothing at all
      writeFileSync(join(root, 'a/.2.txt.swp'), 'swap');
      await until(() => seen.raws.length > 0);
      await settle();
      expect(seen.events).toHaveLength(1);
      expect(seen.raws.map((r) => `${r.eventType} ${r.watchedPath} ${r.name}`)).toEqual([`rename ${join(root, 'a')} 3.txt`]);

      rmSync(listed[1]);
      await until(() => seen.events.length > 1);
      expect(seen.events[1]).toEqual({ abs: listed[1], event: 'unlink' });
    } finally {
      notices.close();
    }
    expect(notices.size).toBe(0);
  });

  it('watches a folder made again anew, and lets go of folders no listed file is in', async () => {
    const root = join(tmp.dir, 'remade');
    writeFiles(root, { 'a/1.txt': 'one\n', 'b/1.txt': 'one\n' });
    const a1 = join(root, 'a/1.txt');
    const { notices, seen } = noticesOn();
    try {
      notices.update([a1, join(root, 'b/1.txt')]);
      expect(notices.size).toBe(2);
      rmSync(join(root, 'a'), { recursive: true });
      mkdirSync(join(root, 'a'));
      writeFileSync(a1, 'one again\n');
      await settle();
      seen.events.length = 0;
      // the next listing holds the same paths: the new folder (another inode) is watched from now on
      notices.update([a1]);
      expect(notices.size).toBe(1);
      writeFileSync(a1, 'one, edited in the new folder\n');
      await until(() => seen.events.some((e) => e.abs === a1 && e.event === 'change'));
    } finally {
      notices.close();
    }
  });

  it('reports each watch the system refuses beyond what it grants', () => {
    const root = join(tmp.dir, 'refused');
    writeFiles(root, { 'a/1.txt': 'one\n', 'b/1.txt': 'one\n', 'c/1.txt': 'one\n' });
    // the system grants one watch
    const { notices, seen } = noticesOn(() => 1 - notices.size);
    try {
      notices.update(['a', 'b', 'c'].map((d) => join(root, d, '1.txt')));
      expect(notices.size).toBe(1);
      expect(seen.refused).toEqual(['ENOSPC', 'ENOSPC']);
    } finally {
      notices.close();
    }
  });
});
