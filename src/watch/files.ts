// What watch listens to for a plan: the lorafile, the folder of every local dataset the plan
// reads (the whole folder, so that a new image or caption counts), every local model file and every
// LoRA file a render applies.
// Hub datasets and builtin models have nothing on disk to watch. Paths lorabuild itself writes
// (cache, out/, the lock) are ignored even when they sit inside a watched folder.
import { isAbsolute, relative, resolve, sep } from 'node:path';
import type { Config } from '../config/schema.js';
import { resolveDatasetFolder } from '../datasets/local/folder.js';
import type { Plan, StageNode } from '../engine/types.js';
import { renderLoraEntries, renderModelName, trainedLoraNames } from '../config/render-loras.js';
import { expandUserPath } from '../worker/start.js';

export interface WatchSet {
  lorafile: string;
  /** dataset name -> absolute folder */
  datasets: Map<string, string>;
  /** model name (or "lora file PATH" for a render's LoRA file) -> absolute file */
  models: Map<string, string>;
  /** absolute folders and files never reported as changes */
  ignored: string[];
}

/** What a changed path means for the build. */
export type ChangeKind = { kind: 'lorafile' } | { kind: 'dataset'; names: string[] } | { kind: 'model'; names: string[] } | { kind: 'other' };

/**
 * The files a train or render stage reads besides datasets, under the names changes report: its
 * model's checkpoint (the model name) and, for a render, each LoRA file ("lora file PATH").
 */
export function stageInputFiles(config: Config, node: Pick<StageNode, 'kind' | 'target'>): Map<string, string> {
  const files = new Map<string, string>();
  const render = node.kind === 'render' ? config.renders[node.target] : undefined;
  const modelName = node.kind === 'train' ? config.loras[node.target]?.model : render ? renderModelName(config, render) : undefined;
  const checkpoint = modelName ? config.models[modelName]?.checkpoint : undefined;
  if (modelName && checkpoint) files.set(modelName, expandUserPath(config.root, checkpoint));
  for (const entry of render ? renderLoraEntries(render) : []) {
    if (entry.kind === 'file') files.set(`lora file ${entry.file}`, expandUserPath(config.root, entry.file));
  }
  return files;
}

/** The datasets whose edits re-train what a train or render stage uses. */
export function stageDatasets(config: Config, node: Pick<StageNode, 'kind' | 'target'>): string[] {
  const loras = node.kind === 'train' ? [node.target] : node.kind === 'render' && config.renders[node.target] ? trainedLoraNames(config.renders[node.target]) : [];
  return loras.flatMap((l) => (config.loras[l] ? [config.loras[l].dataset] : []));
}

export function watchSetFor(config: Config, plan: Plan, cacheDir: string, lockFile: string): WatchSet {
  const datasets = new Map<string, string>();
  const models = new Map<string, string>();
  for (const id of plan.order) {
    const node = plan.stages.get(id)!;
    if (node.kind === 'fetch') {
      const spec = config.datasets[node.target];
      if (spec?.folder) datasets.set(node.target, resolveDatasetFolder(config.root, spec.folder));
    } else if (node.kind === 'train' || node.kind === 'render') {
      for (const [name, file] of stageInputFiles(config, node)) models.set(name, file);
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
