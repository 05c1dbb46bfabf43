// Starting the worker for a lorafile: the interpreter from the lorafile / environment / model
// location (python.ts), then the client (client.ts). The engine builds one SharedWorker per run:
//   const worker = sharedWorkerFor(config, { cacheDir }); ctx.worker = () => worker.get(); ... await worker.close();
// With cacheDir, a remembered hello (hello-memo.ts) lets fingerprinting go without starting Python.
import type { Config } from '../config/schema.js';
import type { StageContext } from '../engine/types.js';
import { SharedWorker, WorkerClient, type HelloResult } from './client.js';
import { findPython, pythonNotice } from './python.js';
import { HelloMemo } from './hello-memo.js';
import { selectionOf } from './selection.js';

export { expandUserPath, modelPathsOf, rememberedHello } from './selection.js';

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** the run's cache: with it, the worker's hello is remembered and Python starts only when needed */
  cacheDir?: string;
  log?: (line: string) => void;
  cancelGraceMs?: number;
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
