// An undo in `lorabuild watch`: a caption saved back to what it was restores prepare and validate
// from the action cache, and no stage looks an item up in that build. The item records of the
// restored entries must stay in memory, the very objects (executor -> ItemMemo.keepPack), so the
// next save's prepare needs not read and parse its whole item pack again.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ActionCache } from '../src/cache/action-cache.js';
import { Cas } from '../src/cache/cas.js';
import { ItemMemo } from '../src/cache/item-memo.js';
import { CacheLayout } from '../src/cache/layout.js';
import { execute } from '../src/engine/executor.js';
import { openProject } from '../src/engine/project.js';
import { StatMemo } from '../src/engine/stat-memo.js';
import { stageRegistry } from '../src/stages/index.js';
import { makeTempDir } from './helpers/cli.js';
import { writeLabProject } from './helpers/lab-folder.js';

const tmp = makeTempDir('lorabuild-watch-undo-');
const savedCacheEnv = process.env.LORABUILD_CACHE;
afterAll(() => {
  if (savedCacheEnv === undefined) delete process.env.LORABUILD_CACHE;
  else process.env.LORABUILD_CACHE = savedCacheEnv;
  tmp.cleanup();
});

const ITEMS = 300; // more than INLINE_LIST_MAX: the action entries keep their records as item packs

describe('watch: an undo restores stages from the cache', { timeout: 120_000 }, () => {
  it('keeps the restored entry\'s item pack and records held for the next save', async () => {
    const project = join(tmp.dir, 'p');
    writeLabProject(project, ITEMS);
    const cacheDir = join(project, 'cache');
    process.env.LORABUILD_CACHE = cacheDir;
    const cas = new Cas(cacheDir, { rememberPresence: true });
    const items = new ItemMemo(cacheDir, cas, { remember: true });
    const statMemo = StatMemo.load(new CacheLayout(cacheDir).statMemo);
    const build = async () => {
      const p = await openProject(join(project, 'lorafile.yaml'), []);
      const result = await execute({ config: p.config, plan: p.plan, registry: stageRegistry, cacheDir, lockFile: p.lockFile, mode: 'run', items, cas, statMemo });
      const outcomes = Object.fromEntries([...result.reports].map(([id, r]) => [id, r.outcome]));
      const packOf = (id: string) => new ActionCache(cacheDir).get(result.reports.get(id)!.fingerprint!)?.itemPack?.root;
      return { outcomes, packs: { prepare: packOf('prepare:d'), validate: packOf('validate:d') } };
    };
    const caption = join(project, 'd', 'text', '5.txt');
    const first = await build();
    expect(first.packs.prepare).toBeDefined();
    writeFileSync(caption, 'one-line-art, shape five\n');
    expect((await build()).outcomes['prepare:d']).toBe('ran');
    // the undo: both dataset stages come back from the action cache, as the first build made them
    writeFileSync(caption, 'one-line-art, shape 5\n');
    const undo = await build();
    expect(undo.outcomes).toMatchObject({ 'prepare:d': 'cached', 'validate:d': 'cached' });
    expect(undo.packs).toEqual(first.packs);
    // what the next save's prepare finds: the restored entries' packs, held (no read of their trees)
    expect(items.hasPreloaded(first.packs.prepare!)).toBe(true);
    expect(items.hasPreloaded(first.packs.validate!)).toBe(true);
  });
});
