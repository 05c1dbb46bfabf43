// The other thread of parallel-lstat.ts: claims chunks of a folder's names from the back and lstats them into
// memory shared with the walk (stat-share.ts). Only node builtins (file-numbers.ts uses nothing
// else): it must start in milliseconds.
import { lstatSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { regularFileNumbers } from './file-numbers.js';
import { ACTIVE, BACK, chunksOf, CHUNK, claimChunk, ERROR, FILE, GONE, jobViews, OTHER, SKIP, type StatJob } from './stat-share.js';

parentPort!.on('message', (job: StatJob) => {
  const { numbers, kinds, control } = jobViews(job.buffer, job.count);
  const chunks = chunksOf(job.count);
  // announced before the first claim: the walk, done with its own claims, waits while this is 1
  Atomics.store(control, ACTIVE, 1);
  let names: string[] | undefined;
  for (let k = claimChunk(control, chunks, BACK); k >= 0; k = claimChunk(control, chunks, BACK)) {
    names ??= job.names.split('\n');
    const end = Math.min(job.count, (k + 1) * CHUNK);
    for (let i = k * CHUNK; i < end; i++) {
      try {
        if (regularFileNumbers(job.prefix + names[i], numbers, i * 3)) {
          kinds[i] = FILE;
          continue;
        }
        const st = lstatSync(job.prefix + names[i], { throwIfNoEntry: false });
        if (!st) kinds[i] = GONE;
        else if (st.isFile()) {
          kinds[i] = FILE;
          numbers[i * 3] = st.size;
          numbers[i * 3 + 1] = st.mtimeMs;
          numbers[i * 3 + 2] = st.ino;
        } else kinds[i] = st.isDirectory() || st.isSymbolicLink() ? OTHER : SKIP;
      } catch {
        // the walk stats it again itself, and reports the error as it would have
        kinds[i] = ERROR;
      }
    }
  }
  Atomics.store(control, ACTIVE, 0);
  Atomics.notify(control, ACTIVE);
});
