// The stage registry: one module per stage kind (src/stages/<kind>.ts exporting `stage`), loaded
// on first use so that a run touching only datasets never loads the training code.
import type { StageImpl, StageKind } from '../engine/types.js';
import type { StageRegistry } from '../engine/executor.js';

// one literal import() per stage (not a template): tsc checks each path, and a bundler can follow them
const MODULES: Record<StageKind, () => Promise<{ stage?: StageImpl }>> = {
  fetch: () => import('./fetch.js'),
  prepare: () => import('./prepare.js'),
  validate: () => import('./validate.js'),
  train: () => import('./train.js'),
  render: () => import('./render.js'),
  score: () => import('./score.js'),
  report: () => import('./report.js'),
};
const loaded = new Map<StageKind, Promise<StageImpl>>();

async function load(kind: StageKind): Promise<StageImpl> {
  if (!Object.hasOwn(MODULES, kind)) throw new Error(`unknown stage kind '${kind}'`);
  let mod: { stage?: StageImpl };
  try {
    mod = await MODULES[kind]();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(`stages/${kind}.js`)) {
      throw new Error(`the '${kind}' stage is not available in this build (src/stages/${kind}.ts is missing)`);
    }
    throw err;
  }
  if (!mod.stage || mod.stage.kind !== kind) throw new Error(`src/stages/${kind}.ts does not export a '${kind}' stage as \`stage\``);
  return mod.stage;
}

export const stageRegistry: StageRegistry = (kind) => {
  let impl = loaded.get(kind);
  if (!impl) {
    impl = load(kind);
    loaded.set(kind, impl);
  }
  return impl;
};
