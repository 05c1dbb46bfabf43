// What the walk (walk.ts, through parallel-lstat.ts) and its stat thread (stat-worker.ts) share:
// the kinds of entry, and the layout of one job's shared buffer. A job is one folder's names in
// chunks; each claim takes a ticket (an atomic add) and, while tickets last, the walk takes the next
// chunk from the front and the helper from the back: a helper still starting up, or busy, simply
// takes fewer, and the two never meet. Once every chunk is claimed, the walk's share is the names
// before the end of its last chunk and the helper's all the rest.

/** a socket, FIFO or device: skipped */
export const SKIP = 0;
export const FILE = 1;
/** a folder or a symbolic link (the walk stats those itself: it needs their Stats) */
export const OTHER = 2;
/** not there (a name remembered by the folder memo that is gone) */
export const GONE = 3;
/** lstat failed otherwise: the walk stats it again and reports the error */
export const ERROR = 4;

/** names per claim */
export const CHUNK = 256;
/** control[TICKETS]: claims made; [FRONT], [BACK]: chunks taken from each end; [ACTIVE]: 1 while the helper claims or works */
export const TICKETS = 0;
export const FRONT = 1;
export const BACK = 2;
export const ACTIVE = 3;

export interface StatJob {
  prefix: string;
  /** names joined by '\n' (the walk refuses names with control characters) */
  names: string;
  count: number;
  buffer: SharedArrayBuffer;
}

export interface JobViews {
  /** size, mtimeMs, ino per name */
  numbers: Float64Array;
  kinds: Uint8Array;
  control: Int32Array;
}

const pad8 = (n: number) => Math.ceil(n / 8) * 8;
export const chunksOf = (count: number) => Math.ceil(count / CHUNK);

export function jobBytes(count: number): number {
  return count * 24 + pad8(count) + 16;
}

export function jobViews(buffer: SharedArrayBuffer, count: number): JobViews {
  const kindsAt = count * 24;
  const controlAt = kindsAt + pad8(count);
  return {
    numbers: new Float64Array(buffer, 0, count * 3),
    kinds: new Uint8Array(buffer, kindsAt, count),
    control: new Int32Array(buffer, controlAt, 4),
  };
}

/** the next chunk for one side (the walk: front, the helper: back), or -1 when every chunk is taken */
export function claimChunk(control: Int32Array, chunks: number, side: typeof FRONT | typeof BACK): number {
  if (Atomics.add(control, TICKETS, 1) >= chunks) return -1;
  const taken = Atomics.add(control, side, 1);
  return side === FRONT ? taken : chunks - 1 - taken;
}
