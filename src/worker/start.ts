// Starting the worker for a lorafile: the interpreter from the lorafile / environment / model
// location (python.ts), then the client (client.ts). The engine builds one SharedWorker per run:
//   const worker = sharedWorkerFor(config, { cacheDir }); ctx.worker = () => worker.get(); ... await worker.close();
// With cacheDir, a remembered hello (hello-memo.ts) lets fingerprinting go without starting Python.
import { resolveUserPath } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import type { StageContext } from '../engine/types.js';
import { SharedWorker, WorkerClient, type HelloResult } from './client.js';
import { findPython, pythonNotice } from './python.js';
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

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** the run's cache: with it, the worker's hello is remembered and Python starts only when needed */
  cacheDir?: string;
  log?: (line: string) => void;
  cancelGraceMs?: number;
}

function selectionOf(config: Config, env: NodeJS.ProcessEnv): InterpreterSelection {
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

export async function startWorker(config: Config, options: StartOptions = {}): Promise<WorkerClient> {
  const env = options.env ?? process.env;
  const selection = selectionOf(config, env);
  const clientOptions = { env: options.env, log: options.log, cancelGraceMs: options.cancelGraceMs };
  const memo = options.cacheDir ? new HelloMemo(options.cacheDir) : null;
  const known = memo?.lookup(selection);
  if (known) return WorkerClient.deferred({ python: known.python, ...clientOptions }, known.hello);
  const python = await findPython({ configured: selection.configured ?? undefined, modelPaths: selection.modelPaths, env });
  pythonNotice(`lorabuild: starting the worker on ${python.path} (imports torch; lorabuild remembers it for the next runs)…`);
  const client = await WorkerClient.start({ python: python.path, ...clientOptions });
  memo?.remember(selection, python.path, python.torchFile, await client.hello());
  return client;
}

/**
 * The worker's hello for fingerprints: remembered in the stage's cache, so that `status` and no-op
 * runs start no Python. On a miss it asks the run's worker and remembers the answer.
 */
export async function workerHello(ctx: StageContext): Promise<HelloResult> {
  // on a cluster the nodes' versions and device key the results, not this machine's
  if (ctx.options.executor === 'slurm') return (await ctx.worker()).hello();
  const selection = selectionOf(ctx.config, process.env);
  const memo = new HelloMemo(ctx.cacheDir);
  const known = memo.lookup(selection);
  if (known) return known.hello;
  const hello = await (await ctx.worker()).hello();
  const python = await findPython({ configured: selection.configured ?? undefined, modelPaths: selection.modelPaths });
  memo.remember(selection, python.path, python.torchFile, hello);
  return hello;
}

export function sharedWorkerFor(config: Config, options: StartOptions = {}): SharedWorker {
  return new SharedWorker(() => startWorker(config, options));
}
