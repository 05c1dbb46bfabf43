// What `lorabuild watch` keeps between builds, in the test's own process: a remembering item memo,
// a Cas that remembers presence, the stat memo, and the leaf cache on; builds run through execute()
// as the watch's do (mode 'run' for a save, 'warm' for the warm-up after the first build).
import { join } from 'node:path';
import { Cas } from '../../src/cache/cas.js';
import { keepLeavesInMemory } from '../../src/cache/chunk-tree.js';
import { ItemMemo } from '../../src/cache/item-memo.js';
import { CacheLayout } from '../../src/cache/layout.js';
import { execute } from '../../src/engine/executor.js';
import { openProject } from '../../src/engine/project.js';
import { StatMemo } from '../../src/engine/stat-memo.js';
import { stageRegistry } from '../../src/stages/index.js';
import { warmStageIds } from '../../src/watch/warm.js';

/** undoes what inProcessWatch sets for the process (call in afterAll) */
export function restoreWatchGlobals(): () => void {
  const saved = process.env.LORABUILD_CACHE;
  return () => {
    keepLeavesInMemory(false);
    if (saved === undefined) delete process.env.LORABUILD_CACHE;
    else process.env.LORABUILD_CACHE = saved;
  };
}

/** a watch's memos over the cache of the project in `project` (its lorafile.yaml) */
export function inProcessWatch(project: string, cacheDir: string) {
  process.env.LORABUILD_CACHE = cacheDir;
  keepLeavesInMemory(true);
  const cas = new Cas(cacheDir, { rememberPresence: true });
  const items = new ItemMemo(cacheDir, cas, { remember: true });
  const statMemo = StatMemo.load(new CacheLayout(cacheDir).statMemo);
  const build = async (mode: 'run' | 'warm') => {
    const p = await openProject(join(project, 'lorafile.yaml'), []);
    const warm = mode === 'warm' ? warmStageIds(p.config, p.plan) : undefined;
    return execute({ config: p.config, plan: p.plan, registry: stageRegistry, cacheDir, lockFile: p.lockFile, mode, ...(warm ? { warm } : {}), items, cas, statMemo });
  };
  return { cas, items, build };
}
