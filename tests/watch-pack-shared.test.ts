// A watch save that leaves a state an earlier process built: the stage that runs preloads the item
// pack of its previous build, which this process never read (the state was restored from the
// cache). In a watch that pack is read through the leaf cache (keepLeavesInMemory): it shares all
// but a leaf or two with the packs the warm-up read, and those leaves are not read again; their
// records are the very objects read before. (At 100,000 items a full read took ~1 s per such save.)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ItemMemo } from '../src/cache/item-memo.js';
import type { Json } from '../src/engine/types.js';
import { makeTempDir, runCli } from './helpers/cli.js';
import { inProcessWatch, restoreWatchGlobals } from './helpers/in-process-watch.js';
import { writeLabProject } from './helpers/lab-folder.js';

const tmp = makeTempDir('lorabuild-watch-pack-shared-');
const restore = restoreWatchGlobals();
afterAll(() => {
  restore();
  tmp.cleanup();
});

// enough items for a pack of a few dozen leaves
const ITEMS = 900;

describe('watch: the previous build\'s item pack of a state an earlier process built', { timeout: 240_000 }, () => {
  it('is read through the leaf cache: its records are, but for a leaf or two, the objects the warm-up read', async () => {
    const project = join(tmp.dir, 'p');
    writeLabProject(project, ITEMS);
    const cacheDir = join(project, 'cache');
    const caption = join(project, 'd', 'text', '450.txt');
    const original = readFileSync(caption, 'utf8');
    const edited = 'one-line-art, shape 450, edited\n';
    // earlier processes: the dataset built, then with caption 450 edited (state E), then back
    expect((await runCli(['run'], { cwd: project })).code).toBe(0);
    writeFileSync(caption, edited);
    expect((await runCli(['run'], { cwd: project })).code).toBe(0);
    writeFileSync(caption, original);
    expect((await runCli(['run'], { cwd: project })).code).toBe(0);

    const { build } = inProcessWatch(project, cacheDir);
    const preload = vi.spyOn(ItemMemo.prototype, 'preload');
    try {
      expect([...(await build('run')).reports.values()].every((r) => r.outcome === 'fresh')).toBe(true);
      await build('warm');
      const readBefore = new Set<Json>(preload.mock.calls.flatMap(([records]) => [...records]));
      expect(readBefore.size).toBeGreaterThan(ITEMS);

      // save 1: back to state E, built by an earlier process: prepare and validate are restored
      writeFileSync(caption, edited);
      const restored = await build('run');
      expect(restored.reports.get('prepare:d')!.outcome).toBe('cached');
      expect(restored.reports.get('validate:d')!.outcome).toBe('cached');
      const callsBefore = preload.mock.calls.length;

      // save 2: the caption broken: prepare and validate run, after E's packs, which this process never read
      writeFileSync(caption, '  \n');
      const broken = await build('run');
      expect(broken.reports.get('prepare:d')!.outcome).toBe('ran');
      expect(broken.reports.get('validate:d')!.outcome).toBe('failed');
      const saveCalls = preload.mock.calls.slice(callsBefore);
      expect(saveCalls.length).toBeGreaterThan(0);
      for (const [records] of saveCalls) {
        expect(records.length).toBe(ITEMS);
        const known = records.filter((r) => readBefore.has(r)).length;
        // the leaves around item 450's records are new; the rest were read (and parsed) once, at the warm-up
        expect(known).toBeGreaterThan(ITEMS * 0.8);
        expect(known).toBeLessThan(ITEMS);
      }
    } finally {
      preload.mockRestore();
    }
  });
});
