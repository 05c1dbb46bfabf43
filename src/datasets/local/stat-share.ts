// What the walk (walk.ts, through parallel-lstat.ts) and its stat thread (stat-worker.ts) share:
// the kinds of entry, and the layout of the shared buffer of one job.

/** a socket, FIFO or device: skipped */
export const SKIP = 0;
export const FILE = 1;
/** a folder or a symbolic link (the walk stats those itself: it needs their Stats) */
export const OTHER = 2;
/** not there (a name remembered by the folder memo that is gone) */
export const GONE = 3;
/** lstat failed otherwise: the walk stats it again and reports the error */
export const ERROR = 4;

export interface StatJob {
  prefix: string;
  /** names joined by '\n' (the walk refuses names with control characters) */
  names: string;
  buffer: SharedArrayBuffer;
}

/** numbers (size, mtimeMs, ino per name), then kinds, then the Int32 the walk waits on */
export function jobBytes(count: number): number {
  return count * 24 + Math.ceil(count / 8) * 8 + 8;
}

export function jobViews(buffer: SharedArrayBuffer, count: number): { numbers: Float64Array; kinds: Uint8Array; done: Int32Array } {
  const kindsAt = count * 24;
  const doneAt = kindsAt + Math.ceil(count / 8) * 8;
  return { numbers: new Float64Array(buffer, 0, count * 3), kinds: new Uint8Array(buffer, kindsAt, count), done: new Int32Array(buffer, doneAt, 1) };
}
