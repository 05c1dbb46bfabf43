// The stat helper thread of parallel-lstat.ts, in a module of its own so that a command can start
// it first thing: a thread takes 30-50 ms to boot, and this module loads in ~2 ms where
// parallel-lstat.ts with the hint's reading takes ~9. Started at most once, then kept.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { workerScript } from '../../engine/worker-script.js';

let helper: Worker | null | undefined;

/** the big folders of the last walk under a cache (stat-hint.ts) */
export function statHintPath(cacheDir: string): string {
  return join(cacheDir, 'folders', 'stat-hint');
}

/** the helper thread, started on first need; null without its script (tests run from src/ without a build) or after it failed */
export function statThread(): Worker | null {
  if (helper !== undefined) return helper;
  const script = workerScript('datasets/local/stat-worker.js');
  if (!script) return (helper = null);
  const worker = new Worker(script);
  // it never keeps the process alive, and a failure only costs the walk the helper's chunks
  worker.unref();
  worker.on('error', () => (helper = null));
  worker.on('exit', () => (helper = null));
  return (helper = worker);
}

/** starts the thread now if the cache has a stat hint: a big folder is about to be walked */
export function startStatThreadIfHinted(cacheDir: string): void {
  if (existsSync(statHintPath(cacheDir))) statThread();
}
