// lstat of a big folder on two threads. Every file of a dataset is lstat-ed on every run (a content
// edit does not touch its folder); at 100,000 images that is 200,000 calls, most of a no-op run.
// Synchronous calls on this thread stay the fastest way to make them (see walk.ts), so a folder of
// more than PARALLEL_MIN names gives a share to one helper thread, started on first need and kept,
// and this thread waits for it (Atomics.wait) after doing its own share. Without the helper script
// (tests run from src/ without a build), or if it does not answer, this thread does it all.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { jobBytes, jobViews, type StatJob } from './stat-share.js';

/** below this many names a folder is stat-ed here: a thread costs ~30 ms to start */
export const PARALLEL_MIN = 32_768;
/** the most a walk waits for the helper's share before doing it itself (a share takes ~3 us a name) */
const waitMs = (count: number) => 5_000 + count * 0.05;

let helper: Worker | null | undefined;
let helperReady = false;
/** names the helper answered for (tests check that it did the work) */
export const helperCounts = { names: 0 };

function helperScript(): URL | undefined {
  const beside = new URL('./stat-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL('../../../dist/datasets/local/stat-worker.js', import.meta.url);
  return existsSync(fileURLToPath(built)) ? built : undefined;
}

function theHelper(): Worker | null {
  if (helper !== undefined) return helper;
  const script = helperScript();
  if (!script) return (helper = null);
  const worker = new Worker(script);
  // it never keeps the process alive, and a failure only costs this thread the helper's shares
  worker.unref();
  worker.on('online', () => (helperReady = true));
  worker.on('error', () => (helper = null));
  worker.on('exit', () => (helper = null));
  return (helper = worker);
}

export interface HelperShare {
  /** where the helper's share starts: this thread stats names[0, from) */
  from: number;
  /** the helper's kinds and numbers for names[from...], or undefined when it did not answer */
  wait(): { kinds: Uint8Array; numbers: Float64Array } | undefined;
}

/** hands the tail of `names` to the helper thread, or undefined (a small folder, no helper) */
export function shareWithHelper(prefix: string, names: readonly string[]): HelperShare | undefined {
  if (names.length < PARALLEL_MIN) return undefined;
  const worker = theHelper();
  if (!worker) return undefined;
  // a helper still starting up gets the smaller share
  const from = Math.floor(names.length * (helperReady ? 0.5 : 0.6));
  const count = names.length - from;
  const buffer = new SharedArrayBuffer(jobBytes(count));
  const job: StatJob = { prefix, names: names.slice(from).join('\n'), buffer };
  worker.postMessage(job);
  return {
    from,
    wait() {
      const { kinds, numbers, done } = jobViews(buffer, count);
      if (Atomics.wait(done, 0, 0, waitMs(count)) === 'timed-out') return undefined;
      helperReady = true;
      helperCounts.names += count;
      return { kinds, numbers };
    },
  };
}
