// lstat of a big folder on two threads. Every file of a dataset is lstat-ed on every run (a content
// edit does not touch its folder); at 100,000 images that is 200,000 calls, most of a no-op run.
// Synchronous calls stay the fastest way to make them (see walk.ts), so a folder of PARALLEL_MIN
// names or more is a job in shared memory (stat-share.ts): this thread (from the front) and one
// helper thread (from the back; started on first need, then kept) claim chunks of names until none
// is left, and this thread
// waits (Atomics.wait) for the helper's last chunk. A helper still starting up takes fewer chunks,
// or none. Without the helper script (tests run from src/ without a build), or if it does not
// answer in time, this thread stats everything itself.
//
// A head start: a run or status hands the helper the big folders of the last walk (stat-hint.ts)
// as soon as it starts, and the helper stats them while the command's code loads. The walk takes
// over such a prestarted job only when it lists the very same names in that folder; its stats are
// then older than the walk (FolderWalk.statsFrom: the racy rule counts from the older instant).
import { resolve } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { ACTIVE, chunksOf, CHUNK, claimChunk, FRONT, jobBytes, jobViews, TICKETS, type StatJob } from './stat-share.js';
import { readStatHint, writeStatHint, type HintedFolder } from './stat-hint.js';
import { startStatThreadIfHinted, statThread } from './stat-thread.js';

/** below this many names a folder is stat-ed on this thread alone */
export const PARALLEL_MIN = 4_096;
/** the most the walk waits for the helper's last chunk (a chunk takes ~1 ms) */
const WAIT_MS = 5_000;

/** names the helper stat-ed (tests check that it did some of the work) */
export const helperCounts = { names: 0, prestartedUsed: 0 };

/** the cache the helper was prestarted from */
let prestartedFrom: string | undefined;
/** the cache whose hint was read, and that hint's folders */
let hintFrom: string | undefined;
let hinted: HintedFolder[] = [];
/** jobs handed to the helper from the hint, by prefix, until the walk takes them */
const prestarted = new Map<string, { names: string; job: StatJobHandle }>();
/** per cache, the big folders walked by this process, in order, by prefix: its next hint */
const walkedBig = new Map<string, Map<string, BigFolder>>();

/** a folder the walk stat-ed as a job (see FolderWalk.bigFolders): what a hint holds */
export type BigFolder = HintedFolder;

/**
 * Hands the helper the big folders of the last walk under `cacheDir` (none without a hint), so
 * that their lstats start now: a thread takes ~30 ms to start, and a command ~50 more to load its
 * code and read its lock before the first walk. Called again with the project's real cache; a
 * different one than guessed at start drops the guessed jobs.
 */
export function prestartStatHelper(cacheDir: string): void {
  const from = resolve(cacheDir);
  if (prestartedFrom === from) return;
  for (const { job } of prestarted.values()) job.abandon();
  prestarted.clear();
  prestartedFrom = hintFrom = from;
  // the thread starts first: it boots while the hint is read
  startStatThreadIfHinted(from);
  hinted = readStatHint(from);
  const worker = hinted.length ? statThread() : null;
  if (!worker) return;
  for (const folder of hinted) prestarted.set(folder.prefix, { names: folder.names, job: newJob(worker, folder.prefix, folder.names, folder.count) });
}

/**
 * After a walk: rewrites the hint under `cacheDir` when the big folders walked so far are not the
 * head of the one read (so a project of several datasets writes it once, not once per dataset).
 */
export function rememberBigFolders(cacheDir: string, folders: readonly BigFolder[]): void {
  if (!folders.length) return;
  const from = resolve(cacheDir);
  let walkedHere = walkedBig.get(from);
  if (!walkedHere) walkedBig.set(from, (walkedHere = new Map()));
  for (const folder of folders) {
    walkedHere.delete(folder.prefix);
    walkedHere.set(folder.prefix, folder);
  }
  if (hintFrom !== from) {
    hintFrom = from;
    hinted = readStatHint(from);
  }
  const walked = [...walkedHere.values()];
  if (walked.length <= hinted.length && walked.every((f, i) => hinted[i].prefix === f.prefix && hinted[i].names === f.names)) return;
  writeStatHint(from, walked);
  hinted = walked;
}

export interface StatJobHandle {
  /** when the job was handed out (Date.now()): no stat in it is older */
  startedAt: number;
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

/** a shared job for this folder's names (`joined`: by '\n'; prestarted if the hint had them), or undefined (no helper) */
export function startStatJob(prefix: string, joined: string, count: number): StatJobHandle | undefined {
  const pre = prestarted.get(prefix);
  if (pre) {
    prestarted.delete(prefix);
    if (pre.names === joined) {
      helperCounts.prestartedUsed++;
      return pre.job;
    }
    pre.job.abandon();
  }
  const worker = statThread();
  if (!worker) return undefined;
  return newJob(worker, prefix, joined, count);
}

function newJob(worker: Worker, prefix: string, names: string, count: number): StatJobHandle {
  const chunks = chunksOf(count);
  const buffer = new SharedArrayBuffer(jobBytes(count));
  const { numbers, kinds, control } = jobViews(buffer, count);
  const job: StatJob = { prefix, names, count, buffer };
  const startedAt = Date.now();
  worker.postMessage(job);
  return {
    startedAt,
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
