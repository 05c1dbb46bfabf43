// One writer per cache at a time, across processes: `writer.lock` holds the pid of the writer,
// created with O_EXCL. A lock whose process is gone (kill -9, crash) is stale and gets broken.
// Readers (status, cache ls) never take it.
import { openSync, closeSync, writeSync, readFileSync, rmSync, mkdirSync, statSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { CacheLayout } from './layout.js';

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  since: string;
}

export interface WriterLock {
  release(): void;
}

const POLL_MS = 150;
/** a breaker file older than this was left by a process killed while breaking a stale lock */
const BREAKER_STALE_MS = 10_000;

export async function acquireWriterLock(
  cacheRoot: string,
  command: string,
  options: { signal?: AbortSignal; onWait?: (holder: LockHolder) => void } = {},
): Promise<WriterLock> {
  const layout = new CacheLayout(cacheRoot);
  mkdirSync(cacheRoot, { recursive: true });
  const file = layout.writerLock;
  const me: LockHolder = { pid: process.pid, host: hostname(), command, since: new Date().toISOString() };
  let told = false;
  for (;;) {
    if (tryCreate(file, me)) {
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        const holder = readHolder(file);
        if (holder && holder.pid === me.pid && holder.since === me.since) rmSync(file, { force: true });
        process.off('exit', release);
      };
      process.on('exit', release);
      return { release };
    }
    const holder = readHolder(file);
    if (holder && isStale(holder)) {
      breakStaleLock(file, holder);
      continue;
    }
    if (holder && !told) {
      told = true;
      options.onWait?.(holder);
    }
    if (options.signal?.aborted) throw new Error('interrupted while waiting for the cache lock');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** who holds the writer lock now, if anyone (stale holders count as nobody) */
export function currentWriter(cacheRoot: string): LockHolder | undefined {
  const holder = readHolder(new CacheLayout(cacheRoot).writerLock);
  return holder && !isStale(holder) ? holder : undefined;
}

function tryCreate(file: string, me: LockHolder): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, JSON.stringify(me));
  } finally {
    closeSync(fd);
  }
  return true;
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    return typeof holder.pid === 'number' ? holder : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    // created but not written yet, or garbage: treat as held by an unknown process until it is old
    try {
      const age = Date.now() - statSync(file).mtimeMs;
      return { pid: age > BREAKER_STALE_MS ? -1 : 0, host: hostname(), command: '?', since: '' };
    } catch {
      return undefined;
    }
  }
}

function isStale(holder: LockHolder): boolean {
  if (holder.pid === -1) return true;
  if (holder.pid === 0 || holder.host !== hostname()) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Two waiters may both see the same stale lock; only one may remove it, or the second would
 * delete the lock the first just took. The breaker file serialises that.
 */
function breakStaleLock(file: string, stale: LockHolder): void {
  const breaker = `${file}.break`;
  try {
    const fd = openSync(breaker, 'wx');
    closeSync(fd);
  } catch {
    try {
      if (Date.now() - statSync(breaker).mtimeMs > BREAKER_STALE_MS) rmSync(breaker, { force: true });
    } catch {
      // gone meanwhile
    }
    return;
  }
  try {
    const holder = readHolder(file);
    if (holder && holder.pid === stale.pid && holder.since === stale.since) {
      renameSync(file, `${file}.stale-${process.pid}`);
      rmSync(`${file}.stale-${process.pid}`, { force: true });
    }
  } finally {
    rmSync(breaker, { force: true });
  }
}
