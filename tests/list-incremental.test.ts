// A dataset folder listed save after save the way `lorabuild watch` lists it (its walk cache hands
// the same file objects back; the draft memo and the last assembly are kept in memory) must give
// exactly the listing and file map of a fresh listing with no cache: same JSON text, same map,
// same digest. The folder has more files than FILES_INLINE_MAX, so its map is the lazily built one.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, sep } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { draftMemoPath, loadDraftMemo } from '../src/datasets/local/folder-memo.js';
import { listLocalDataset, type LocalListing } from '../src/datasets/local/list.js';
import { sha256FileSync } from '../src/engine/file-hash.js';
import { StatMemo } from '../src/engine/stat-memo.js';
import { FILES_INLINE_MAX, fileCount, filesDigest, sortedPairs } from '../src/engine/file-tree.js';
import { WalkCache } from '../src/watch/walk-cache.js';
import { makeTempDir } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-list-incremental-');
afterAll(tmp.cleanup);

const ITEMS = Math.ceil(FILES_INLINE_MAX / 2) + 20;

function list(root: string, cache?: { cacheDir: string; walks: WalkCache }): Promise<LocalListing> {
  return listLocalDataset({
    abs: root,
    folder: 'data',
    layout: 'auto',
    captionColumn: 'text',
    hashFile: async (abs) => sha256FileSync(abs),
    ...(cache ? { cacheDir: cache.cacheDir, walk: (rootAbs: string, display: string) => cache.walks.walk(rootAbs, display) } : {}),
  });
}

/** what a listing gives downstream: the listing's JSON text, the map as a plain object, its digest and pairs */
function shapeOf(l: LocalListing): { listing: string; files: string; digest: string; count: number; pairs: string } {
  return { listing: JSON.stringify(l.listing), files: JSON.stringify({ ...l.files }), digest: filesDigest(l.files), count: fileCount(l.files), pairs: JSON.stringify(sortedPairs(l.files)) };
}

/** every file of the folder by its display path, read from disk: the map a listing must give */
function diskMap(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of (readdirSync(root, { recursive: true }) as string[]).map((r) => r.split(sep).join('/')).sort()) {
    if (statSync(join(root, rel)).isFile()) out[`data/${rel}`] = sha256FileSync(join(root, rel));
  }
  return out;
}

describe('a folder listed again after each change (watch)', { timeout: 120_000 }, () => {
  it('gives the listing and file map of a fresh listing, keeping the entries of unchanged items', async () => {
    const root = join(tmp.dir, 'data');
    mkdirSync(join(root, 'image'), { recursive: true });
    mkdirSync(join(root, 'text'), { recursive: true });
    for (let i = 0; i < ITEMS; i++) {
      writeFileSync(join(root, 'image', `${i}.png`), `image ${i}`);
      writeFileSync(join(root, 'text', `${i}.txt`), `caption ${i}\n`);
    }
    const cache = { cacheDir: join(tmp.dir, 'cache'), walks: new WalkCache() };
    let last = await list(root, cache);
    expect(fileCount(last.files)).toBeGreaterThan(FILES_INLINE_MAX);
    expect(shapeOf(last)).toEqual(shapeOf(await list(root)));

    const step = async (what: string, events: [string, string][], write: () => void): Promise<LocalListing> => {
      write();
      for (const [rel, event] of events) cache.walks.changed(join(root, rel), event);
      const now = await list(root, cache);
      expect(shapeOf(now), what).toEqual(shapeOf(await list(root)));
      expect({ ...now.files }, what).toEqual(diskMap(root));
      return now;
    };
    const byId = (l: LocalListing) => new Map(l.listing.entries.map((e) => [e.id, e]));

    // a caption edited: every other entry is the very object of the last listing
    let now = await step('a caption edit', [['text/5.txt', 'change']], () => writeFileSync(join(root, 'text', '5.txt'), 'caption five\n'));
    const before = byId(last);
    const kept = now.listing.entries.filter((e) => e === before.get(e.id)).length;
    expect(kept).toBe(ITEMS - 1);
    expect(byId(now).get('5')).not.toBe(before.get('5'));
    last = now;

    now = await step('a caption edited twice between listings', [['text/6.txt', 'change'], ['text/6.txt', 'change']], () => {
      writeFileSync(join(root, 'text', '6.txt'), 'caption six, first\n');
      writeFileSync(join(root, 'text', '6.txt'), 'caption six, second and longer\n');
    });
    expect(byId(now).get('6')!.captionFile!.sha256).toBe(sha256FileSync(join(root, 'text', '6.txt')));
    now = await step('the same caption edited back', [['text/5.txt', 'change']], () => writeFileSync(join(root, 'text', '5.txt'), 'caption 5\n'));
    // the watcher never told: the same file object, another hash (a racy stat)
    now = await step('a change the watcher missed', [], () => writeFileSync(join(root, 'text', '11.txt'), 'caption 1X\n'));
    now = await step('an image replaced', [['image/7.png', 'change']], () => writeFileSync(join(root, 'image', '7.png'), 'another image 7, longer'));
    now = await step('an item added', [['image/9999.png', 'add'], ['text/9999.txt', 'add']], () => {
      writeFileSync(join(root, 'image', '9999.png'), 'image 9999');
      writeFileSync(join(root, 'text', '9999.txt'), 'caption 9999\n');
    });
    now = await step('an item removed', [['image/3.png', 'unlink'], ['text/3.txt', 'unlink']], () => {
      rmSync(join(root, 'image', '3.png'));
      rmSync(join(root, 'text', '3.txt'));
    });
    now = await step('an item renamed', [['image/4.png', 'unlink'], ['text/4.txt', 'unlink'], ['image/4000.png', 'add'], ['text/4000.txt', 'add']], () => {
      renameSync(join(root, 'image', '4.png'), join(root, 'image', '4000.png'));
      renameSync(join(root, 'text', '4.txt'), join(root, 'text', '4000.txt'));
    });
    now = await step('an image without its caption', [['text/8.txt', 'unlink']], () => rmSync(join(root, 'text', '8.txt')));
    now = await step('a stray file', [['notes.md', 'add']], () => writeFileSync(join(root, 'notes.md'), 'notes'));
    expect(now.listing.stray).toContain('data/notes.md');
    // the draft memo damaged on disk while the process holds its parse: discarded, never trusted
    const draftFile = draftMemoPath(cache.cacheDir, root);
    expect(loadDraftMemo(draftFile, root)).toBeDefined();
    writeFileSync(draftFile, readFileSync(draftFile, 'utf8').replace('"0"', '"O"'));
    expect(loadDraftMemo(draftFile, root)).toBeUndefined();
    await step('a caption edit after the damage', [['text/10.txt', 'change']], () => writeFileSync(join(root, 'text', '10.txt'), 'caption ten\n'));
    expect(loadDraftMemo(draftFile, root)).toBeDefined();
  });

  it('an imagefolder whose captions all leave its metadata gives a fresh listing (its entries are not kept by place)', async () => {
    const root = join(tmp.dir, 'imagefolder');
    mkdirSync(root, { recursive: true });
    const rows = (text: boolean) => Array.from({ length: 5 }, (_, i) => JSON.stringify({ file_name: `${i}.png`, text: text ? `caption ${i}` : null })).join('\n') + '\n';
    for (let i = 0; i < 5; i++) writeFileSync(join(root, `${i}.png`), `image ${i}`);
    writeFileSync(join(root, 'metadata.jsonl'), rows(true));
    const cache = { cacheDir: join(tmp.dir, 'cache-if'), walks: new WalkCache() };
    const first = await list(root, cache);
    expect(first.listing.entries.every((e) => e.captionText !== undefined)).toBe(true);
    writeFileSync(join(root, 'metadata.jsonl'), rows(false));
    cache.walks.changed(join(root, 'metadata.jsonl'), 'change');
    const now = await list(root, cache);
    expect(shapeOf(now)).toEqual(shapeOf(await list(root)));
    expect(now.listing.entries.some((e) => e.captionText !== undefined)).toBe(false);
  });

  it('with a stat memo, a file the watch hands back as the same object keeps its hash without a lookup, unless it was racy when hashed', async () => {
    const root = join(tmp.dir, 'memo');
    mkdirSync(join(root, 'image'), { recursive: true });
    mkdirSync(join(root, 'text'), { recursive: true });
    const old = new Date('2024-01-01T00:00:00Z');
    for (let i = 0; i < ITEMS; i++) {
      for (const [rel, text] of [[`image/${i}.png`, `image ${i}`], [`text/${i}.txt`, `caption ${i}\n`]]) {
        writeFileSync(join(root, rel), text);
        utimesSync(join(root, rel), old, old);
      }
    }
    const memo = StatMemo.inMemory();
    const looked: string[] = [];
    const walks = new WalkCache();
    const listWithMemo = () =>
      listLocalDataset({
        abs: root,
        folder: 'data',
        layout: 'auto',
        captionColumn: 'text',
        hashFile: (abs, stat) => memo.hashFile(abs, { stat }),
        knownHash: (abs, stat) => {
          looked.push(abs.slice(root.length + 1));
          return memo.lookup(abs, stat);
        },
        cacheDir: join(tmp.dir, 'cache-memo'),
        walk: (rootAbs, display) => walks.walk(rootAbs, display),
      });
    const step = async (what: string, write: () => string | undefined): Promise<string[]> => {
      const rel = write();
      if (rel) walks.changed(join(root, rel), 'change');
      looked.length = 0;
      const now = await listWithMemo();
      expect(shapeOf(now), what).toEqual(shapeOf(await list(root)));
      return [...looked];
    };
    expect(await step('first listing', () => undefined)).toHaveLength(2 * ITEMS);
    expect(await step('nothing changed', () => undefined)).toEqual([]);
    expect(
      await step('an old caption rewritten as old', () => {
        writeFileSync(join(root, 'text', '5.txt'), 'caption five\n');
        utimesSync(join(root, 'text', '5.txt'), old, old);
        return 'text/5.txt';
      }),
    ).toEqual(['text/5.txt']);
    // changed "now" (a minute ahead, however slow this machine is): racy when hashed, so the next
    // listing asks the stat memo again (which hashes it again)
    const saveNow = () => {
      writeFileSync(join(root, 'text', '6.txt'), 'caption six\n');
      const soon = new Date(Date.now() + 60_000);
      utimesSync(join(root, 'text', '6.txt'), soon, soon);
      return 'text/6.txt';
    };
    expect(await step('a caption saved now', saveNow)).toEqual(['text/6.txt']);
    expect(await step('nothing changed after a racy hash', () => undefined)).toEqual(['text/6.txt']);
  });
});
