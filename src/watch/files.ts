// What watch listens to for a plan: the lorafile, the folder of every local dataset the plan
// reads (the whole folder, so that a new image or caption counts) and every local model file.
// Hub datasets and builtin models have nothing on disk to watch. Paths lorabuild itself writes
// (cache, out/, the lock) are ignored even when they sit inside a watched folder.
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { Config } from '../config/schema.js';
import { resolveDatasetFolder } from '../datasets/local/folder.js';
import type { Plan } from '../engine/types.js';
import { expandUserPath } from '../worker/start.js';

export interface WatchSet {
  lorafile: string;
  /** dataset name -> absolute folder */
  datasets: Map<string, string>;
  /** model name -> absolute file */
  models: Map<string, string>;
  /** absolute folders and files never reported as changes */
  ignored: string[];
}

/** What a changed path means for the build. */
export type ChangeKind = { kind: 'lorafile' } | { kind: 'dataset'; names: string[] } | { kind: 'model'; names: string[] } | { kind: 'other' };

export function watchSetFor(config: Config, plan: Plan, cacheDir: string, lockFile: string): WatchSet {
  const datasets = new Map<string, string>();
  const models = new Map<string, string>();
  for (const id of plan.order) {
    const node = plan.stages.get(id)!;
    if (node.kind === 'fetch') {
      const spec = config.datasets[node.target];
      if (spec?.folder) datasets.set(node.target, resolveDatasetFolder(config.root, spec.folder));
    } else if (node.kind === 'train' || node.kind === 'render') {
      const loraName = node.kind === 'train' ? node.target : config.renders[node.target]?.lora;
      const modelName = loraName ? config.loras[loraName]?.model : undefined;
      const checkpoint = modelName ? config.models[modelName]?.checkpoint : undefined;
      if (modelName && checkpoint) models.set(modelName, expandUserPath(config.root, checkpoint));
    }
  }
  const ignored = [cacheDir, resolve(config.root, config.out), lockFile].map((p) => resolve(p));
  return { lorafile: resolve(config.file), datasets, models, ignored };
}

/** every path chokidar should watch */
export function watchedPaths(set: WatchSet): string[] {
  return [...new Set([set.lorafile, ...set.datasets.values(), ...set.models.values()])];
}

export function isInside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Called by chokidar for every entry each time it re-reads a directory (on every save inside it):
 * plain string prefix tests, not path.relative, which costs milliseconds per thousand files.
 */
export function isIgnored(set: WatchSet, abs: string): boolean {
  for (const p of set.ignored) {
    if (abs === p || abs.startsWith(p.endsWith(sep) ? p : p + sep)) return true;
  }
  return abs.endsWith(`${sep}.git`) || abs.includes(`${sep}.git${sep}`);
}

export function classifyChange(set: WatchSet, abs: string): ChangeKind {
  const path = resolve(abs);
  if (path === set.lorafile) return { kind: 'lorafile' };
  const datasets = [...set.datasets].filter(([, folder]) => isInside(folder, path)).map(([name]) => name);
  if (datasets.length) return { kind: 'dataset', names: datasets };
  const models = [...set.models].filter(([, file]) => file === path).map(([name]) => name);
  if (models.length) return { kind: 'model', names: models };
  return { kind: 'other' };
}
