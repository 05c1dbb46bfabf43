// Starting the worker for a lorafile: the interpreter from the lorafile / environment / model
// location (python.ts), then the client (client.ts). The engine builds one SharedWorker per run:
//   const worker = sharedWorkerFor(config); ... ctx.worker = () => worker.get(); ... await worker.close();
import { isAbsolute, resolve } from 'node:path';
import { homedir } from 'node:os';
import type { Config } from '../config/schema.js';
import { SharedWorker, WorkerClient } from './client.js';
import { findPython } from './python.js';

/** `~` and relative paths (against the lorafile folder); Windows drive paths kept as written. */
export function expandUserPath(root: string, path: string): string {
  const home = path === '~' || path.startsWith('~/') || path.startsWith('~\\') ? homedir() + path.slice(1) : path;
  return isAbsolute(home) || /^[A-Za-z]:[\\/]/.test(home) ? home : resolve(root, home);
}

/** Model files named by the lorafile (where a ComfyUI install, and its python, may be found). */
export function modelPathsOf(config: Config): string[] {
  return Object.values(config.models)
    .map((m) => m.checkpoint)
    .filter((p): p is string => typeof p === 'string')
    .map((p) => expandUserPath(config.root, p));
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  cancelGraceMs?: number;
}

export async function startWorker(config: Config, options: StartOptions = {}): Promise<WorkerClient> {
  const python = await findPython({
    configured: config.python ? expandUserPath(config.root, config.python) : undefined,
    modelPaths: modelPathsOf(config),
    env: options.env ?? process.env,
  });
  return WorkerClient.start({ python: python.path, env: options.env, log: options.log, cancelGraceMs: options.cancelGraceMs });
}

export function sharedWorkerFor(config: Config, options: StartOptions = {}): SharedWorker {
  return new SharedWorker(() => startWorker(config, options));
}
