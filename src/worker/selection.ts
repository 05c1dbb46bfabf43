// Which interpreter a lorafile selects, and the worker hello remembered for it: what preflight,
// tokenizer lookup and fingerprints need without loading the worker client (child_process,
// readline), which start.ts loads only when a worker really starts.
import { resolveUserPath } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import type { HelloResult } from './client.js';
import { HelloMemo, type InterpreterSelection } from './hello-memo.js';

/** A path written in the lorafile, made absolute (config/paths.ts rules: `~`, relative, Windows). */
export function expandUserPath(root: string, path: string): string {
  return resolveUserPath({ root }, path);
}

/** Model files named by the lorafile (where a ComfyUI install, and its python, may be found). */
export function modelPathsOf(config: Config): string[] {
  return Object.values(config.models)
    .map((m) => m.checkpoint)
    .filter((p): p is string => typeof p === 'string')
    .map((p) => expandUserPath(config.root, p));
}

export function selectionOf(config: Config, env: NodeJS.ProcessEnv): InterpreterSelection {
  return {
    configured: config.python ? expandUserPath(config.root, config.python) : null,
    envPython: env.LORABUILD_PYTHON || null,
    modelPaths: modelPathsOf(config),
    path: env.PATH ?? null,
  };
}

/** The worker's hello remembered for this lorafile's interpreter selection, or null (Python would be probed). */
export function rememberedHello(config: Config, cacheDir: string, env: NodeJS.ProcessEnv = process.env): HelloResult | null {
  return new HelloMemo(cacheDir).lookup(selectionOf(config, env))?.hello ?? null;
}
