// The other thread of parallel-lstat.ts: lstat of a share of one folder's names, written as kinds
// and numbers into memory shared with the walk, which waits on the last Int32 of the buffer.
// Only node builtins: the thread must boot in a few milliseconds.
import { lstatSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { ERROR, FILE, GONE, jobViews, OTHER, SKIP, type StatJob } from './stat-share.js';

parentPort!.on('message', (job: StatJob) => {
  const names = job.names.split('\n');
  const { kinds, numbers, done } = jobViews(job.buffer, names.length);
  for (let i = 0; i < names.length; i++) {
    try {
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
  Atomics.store(done, 0, 1);
  Atomics.notify(done, 0);
});
