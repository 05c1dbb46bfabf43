// A watch save back to a state an earlier process built, whose validate failed (a broken caption:
// a failed run records no action entry, so validate runs again while prepare is restored from the
// cache and its manifest read back from the store). The manifest's leaves are those the watch's
// own builds wrote, so its items are the very objects validate knew: it hashes the keys of the
// changed leaf's items only, not of all of them (keepLeavesInMemory). And the first save after the
// warm-up compares the listing with the map the warm-up kept at hand, not with its tree read back
// (keepAtHand): here that tree is gone from the store, and the fetch still names the edited file.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { treeNodes } from '../src/cache/chunk-tree.js';
import { ItemMemo } from '../src/cache/item-memo.js';
import { readLockfile } from '../src/engine/lockfile.js';
import { openProject } from '../src/engine/project.js';
import { makeTempDir, runCli } from './helpers/cli.js';
import { inProcessWatch, restoreWatchGlobals } from './helpers/in-process-watch.js';
import { writeLabProject } from './helpers/lab-folder.js';

const tmp = makeTempDir('lorabuild-watch-undo-failed-');
const restore = restoreWatchGlobals();
afterAll(() => {
  restore();
  tmp.cleanup();
});

// 4,200 files: more than FILES_INLINE_MAX, so the lock records the fetch's file map as a tree
const ITEMS = 2100;

describe('watch: a save back to a state an earlier process built', { timeout: 240_000 }, () => {
  it('re-keys only the changed leaf\'s items, and compares the listing with the map the warm-up kept', async () => {
    const project = join(tmp.dir, 'p');
    writeLabProject(project, ITEMS);
    const cacheDir = join(project, 'cache');
    const caption = join(project, 'd', 'text', '1000.txt');
    // earlier processes: the dataset built, then a broken caption (validate fails), then fixed
    expect((await runCli(['run'], { cwd: project })).code).toBe(0);
    writeFileSync(caption, '  \n');
    expect((await runCli(['run'], { cwd: project })).code).not.toBe(0);
    writeFileSync(caption, 'one-line-art, shape 1000\n');
    expect((await runCli(['run'], { cwd: project })).code).toBe(0);

    // the watch: its first build (all fresh), then its warm-up
    const { cas, build } = inProcessWatch(project, cacheDir);
    const first = await build('run');
    expect([...first.reports.values()].every((r) => r.outcome === 'fresh')).toBe(true);
    await build('warm');

    // the lock's tree of the fetch's files, gone from the store: only the map at hand can name the edit
    const p = await openProject(join(project, 'lorafile.yaml'), []);
    const fetchTree = readLockfile(p.lockFile, cacheDir).lock.stages['fetch:d'].filesTree!;
    expect(fetchTree.count).toBe(2 * ITEMS);
    for (const node of treeNodes(cas, { root: fetchTree.root, count: fetchTree.count })) rmSync(cas.path(node));

    const keyHash = vi.spyOn(ItemMemo.prototype, 'keyHash');
    writeFileSync(caption, '  \n');
    const save = await build('run');
    const keyed = keyHash.mock.calls.length;
    keyHash.mockRestore();
    expect(save.reports.get('fetch:d')!.reason).toContain('d/text/1000.txt changed');
    expect(save.reports.get('prepare:d')!.outcome).toBe('cached');
    expect(save.reports.get('validate:d')!.outcome).toBe('failed');
    // the leaf holding item 1000 has a few dozen items; without the kept leaves it was all 2,100
    expect(keyed).toBeGreaterThan(0);
    expect(keyed).toBeLessThan(ITEMS / 10);
  });
});
