// lstat of a big folder on two threads. Every file of a dataset is lstat-ed on every run (a content
// edit does not touch its folder); at 100,000 images that is 200,000 calls, most of a no-op run.
// Synchronous calls stay the fastest way to make them (see walk.ts), so a folder of PARALLEL_MIN
// names or more is a job in shared memory (stat-share.ts): this thread (from the front) and one
// helper thread (from the back; started on first need, then kept) claim chunks of names until none
// is left, and this thread
// waits (Atomics.wait) for the helper's last chunk. A helper still starting up takes fewer chunks,
// or none. Without the helper script (tests run from src/ without a build), or if it does not
// answer in time, this thread stats everything itself.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { workerScript } from '../../engine/worker-script.js';
import { ACTIVE, chunksOf, CHUNK, claimChunk, FRONT, jobBytes, jobViews, TICKETS, type StatJob } from './stat-share.js';

/** below this many names a folder is stat-ed on this thread alone */
export const PARALLEL_MIN = 4_096;
/** the most the walk waits for the helper's last chunk (a chunk takes ~1 ms) */
const WAIT_MS = 5_000;

let helper: Worker | null | undefined;
/** names the helper stat-ed (tests check that it did some of the work) */
export const helperCounts = { names: 0 };

function theHelper(): Worker | null {
  if (helper !== undefined) return helper;
  const script = workerScript(new URL('./stat-worker.js', import.meta.url), new URL('../../../dist/datasets/local/stat-worker.js', import.meta.url));
  if (!script) return (helper = null);
  const worker = new Worker(script);
  // it never keeps the process alive, and a failure only costs the walk the helper's chunks
  worker.unref();
  worker.on('error', () => (helper = null));
  worker.on('exit', () => (helper = null));
  return (helper = worker);
}

/**
 * Starts the helper now when the cache has a listing snapshot (folders/*.snap: a folder of more
 * than 4,096 files was listed before), so that it has started by the time the walk needs it: a
 * thread takes ~30 ms to start, about what a command does before its first walk.
 */
export function prestartStatHelper(cacheDir: string): void {
  if (helper !== undefined) return;
  try {
    if (readdirSync(join(cacheDir, 'folders')).some((name) => name.endsWith('.snap'))) theHelper();
  } catch {
    // no folders/ yet: nothing big was listed
  }
}

export interface StatJobHandle {
  numbers: Float64Array;
  kinds: Uint8Array;
  /**
   * The next chunk for this thread, [start, end), or undefined when none is left. Chunks come from
   * the front in order, so this thread's share is always the names before the end of its last one.
   */
  claim(): [number, number] | undefined;
  /** stops handing out chunks (the walk gave up on this folder) */
  abandon(): void;
  /**
   * Once claim() has run out: waits for the helper's share, the rest of the names. False when the
   * helper did not finish in time: its entries are not to be trusted (it may still be writing
   * them), so the caller stats them itself into arrays of its own.
   */
  helperDone(): boolean;
}

/** a shared job for this folder's names, or undefined (a small folder, no helper) */
export function startStatJob(prefix: string, names: readonly string[]): StatJobHandle | undefined {
  if (names.length < PARALLEL_MIN) return undefined;
  const worker = theHelper();
  if (!worker) return undefined;
  const count = names.length;
  const chunks = chunksOf(count);
  const buffer = new SharedArrayBuffer(jobBytes(count));
  const { numbers, kinds, control } = jobViews(buffer, count);
  const job: StatJob = { prefix, names: names.join('\n'), count, buffer };
  worker.postMessage(job);
  return {
    numbers,
    kinds,
    claim() {
      const k = claimChunk(control, chunks, FRONT);
      return k < 0 ? undefined : [k * CHUNK, Math.min(count, (k + 1) * CHUNK)];
    },
    abandon() {
      Atomics.store(control, TICKETS, chunks);
    },
    helperDone() {
      // a helper that announced itself before this thread's last claim finishes its chunks
      if (Atomics.load(control, ACTIVE) === 1 && Atomics.wait(control, ACTIVE, 1, WAIT_MS) === 'timed-out') return false;
      helperCounts.names += count - Math.min(count, Atomics.load(control, FRONT) * CHUNK);
      return true;
    },
  };
}
