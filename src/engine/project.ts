// What every engine command needs first: the loaded lorafile, its stage plan, the cache root and
// the lock path. LORABUILD_CACHE overrides the cache root (<lorafile dir>/cache by default).
import { dirname, join, resolve } from 'node:path';
import { loadConfigCached } from '../config/memo.js';
import type { Config } from '../config/schema.js';
import { planStages } from '../graph/plan.js';
import type { Plan } from './types.js';

export interface Project {
  config: Config;
  plan: Plan;
  /** ids of every stage of the whole lorafile (the lock keeps only these) */
  allStageIds: Set<string>;
  cacheDir: string;
  lockFile: string;
}

export function cacheDirFor(lorafileDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.LORABUILD_CACHE;
  return fromEnv ? resolve(fromEnv) : resolve(lorafileDir, 'cache');
}

/** The lorafile, through the memo in its cache: an unchanged one is not parsed again (yaml + zod are most of a no-op run's start-up). */
export async function loadProjectConfig(file: string | undefined): Promise<Config> {
  const lorafile = resolve(file ?? 'lorafile.yaml');
  return loadConfigCached(lorafile, join(cacheDirFor(dirname(lorafile)), 'config'));
}

/** Throws ConfigError (exit 2) for an invalid lorafile, an `out:` that is not a folder of its own, or an unknown target. */
export async function openProject(file: string | undefined, targets: string[]): Promise<Project> {
  const config = await loadProjectConfig(file);
  // loaded here, not at the top: `plan` needs only the lorafile and would pay for the lock's code
  const [{ checkOutFolder }, { lockPathFor }] = await Promise.all([import('../config/out-folder.js'), import('./lockfile.js')]);
  const cacheDir = cacheDirFor(config.root);
  await checkOutFolder(config, cacheDir);
  const plan = planStages(config, targets);
  const all = targets.length === 0 ? plan : planStages(config);
  return { config, plan, allStageIds: new Set(all.order), cacheDir, lockFile: lockPathFor(config.file) };
}
