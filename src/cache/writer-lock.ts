// One writer per cache at a time, across processes: `writer.lock` names the writer, created with
// O_EXCL. A lock whose holder is gone (kill -9, a crash, a reboot) is stale and gets broken. A pid
// alone cannot tell: after a reboot, or in a cache restored from elsewhere, the recorded pid may
// belong to some other live process. So the holder also records the boot it ran in and its own
// start time (Linux: /proc), and refreshes the file's mtime while it holds the lock; a lock of
// another host (a shared folder) is stale when that heartbeat stops. Readers (status, cache ls)
// never take it. Waiting says who holds it and how to break it by hand.
import { openSync, closeSync, writeSync, readFileSync, rmSync, mkdirSync, statSync, renameSync, utimesSync } from 'node:fs';
import { hostname } from 'node:os';
import { CacheLayout } from './layout.js';
import { readRegularFileSync } from './safe-fs.js';
import { pidAlive } from './pid-alive.js';

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  since: string;
  /** Linux boot id of the holder's boot (absent elsewhere and in older locks) */
  boot?: string;
  /** the holder's start time in clock ticks since boot (Linux /proc/PID/stat), to tell a reused pid */
  start?: number;
}

export interface WriterLock {
  release(): void;
}

const POLL_MS = 150;
/** a breaker file older than this was left by a process killed while breaking a stale lock */
const BREAKER_STALE_MS = 10_000;
/** the holder touches the lock file this often ... */
const HEARTBEAT_MS = 15_000;
/** ... so a lock untouched for this long has no live holder (used where the pid cannot be probed) */
const HEARTBEAT_STALE_MS = 120_000;
/** how often a waiting process says again that it is still waiting */
const REMIND_MS = 60_000;

/** What to print while waiting: who holds the lock, since when, and how to break it by hand. */
export function waitingMessage(holder: LockHolder, cacheRoot: string, waitedMs = 0): string {
  const file = new CacheLayout(cacheRoot).writerLock;
  const where = holder.host === hostname() ? `pid ${holder.pid}` : `pid ${holder.pid} on ${holder.host}`;
  const waited = waitedMs >= 1000 ? `, waited ${Math.round(waitedMs / 1000)} s` : '';
  return `lorabuild: waiting for ${holder.command} (${where}, since ${holder.since || 'an unknown time'}${waited}) to finish with the cache ${cacheRoot}; if no lorabuild is running, delete ${file}`;
}

export async function acquireWriterLock(
  cacheRoot: string,
  command: string,
  options: { signal?: AbortSignal; onWait?: (holder: LockHolder, waitedMs: number) => void } = {},
): Promise<WriterLock> {
  const layout = new CacheLayout(cacheRoot);
  mkdirSync(cacheRoot, { recursive: true });
  const file = layout.writerLock;
  const me: LockHolder = { pid: process.pid, host: hostname(), command, since: new Date().toISOString(), ...processIdentity(process.pid) };
  const started = Date.now();
  let toldAt = 0;
  for (;;) {
    if (tryCreate(file, me)) {
      let released = false;
      const heartbeat = setInterval(() => {
        try {
          const now = new Date();
          if (isMine(readHolder(file), me)) utimesSync(file, now, now);
        } catch {
          // removed meanwhile: nothing to keep alive
        }
      }, HEARTBEAT_MS).unref();
      const release = () => {
        if (released) return;
        released = true;
        clearInterval(heartbeat);
        if (isMine(readHolder(file), me)) rmSync(file, { force: true });
        process.off('exit', release);
      };
      process.on('exit', release);
      return { release };
    }
    const holder = readHolder(file);
    if (holder && isStale(holder, lockAge(file))) {
      breakStaleLock(file, holder);
      continue;
    }
    if (holder && (toldAt === 0 || Date.now() - toldAt >= REMIND_MS)) {
      toldAt = Date.now();
      options.onWait?.(holder, toldAt - started);
    }
    if (options.signal?.aborted) throw new Error('interrupted while waiting for the cache lock');
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** who holds the writer lock now, if anyone (stale holders count as nobody) */
export function currentWriter(cacheRoot: string): LockHolder | undefined {
  const file = new CacheLayout(cacheRoot).writerLock;
  const holder = readHolder(file);
  return holder && !isStale(holder, lockAge(file)) ? holder : undefined;
}

const isMine = (holder: LockHolder | undefined, me: LockHolder) => holder !== undefined && holder.pid === me.pid && holder.since === me.since;

function lockAge(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** This boot's id and a process's start time, where the system tells (Linux /proc). */
function processIdentity(pid: number): { boot?: string; start?: number } {
  const boot = bootId();
  const start = processStart(pid);
  return { ...(boot ? { boot } : {}), ...(start !== undefined ? { start } : {}) };
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** field 22 of /proc/PID/stat: start time in clock ticks after boot (the command name may hold spaces) */
function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[19]);
    return Number.isSafeInteger(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

/** wall-clock ms at which a process started (Linux), from its start ticks and the boot time */
function processStartedAt(start: number): number | undefined {
  try {
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    // USER_HZ is 100 on every Linux platform Node runs on
    return Number.isFinite(btime) ? btime * 1000 + start * 10 : undefined;
  } catch {
    return undefined;
  }
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
    const holder = JSON.parse(readRegularFileSync(file, 'utf8')) as LockHolder;
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

/**
 * Whether the holder of a lock is gone. `ageMs`: time since the lock file was last touched (the
 * holder's heartbeat). On this host: a different boot, a dead pid, or a pid now owned by a process
 * that started later than the holder (or after the lock was last touched) mean gone. On another
 * host, or where processes cannot be inspected, a heartbeat silent for HEARTBEAT_STALE_MS does.
 */
function isStale(holder: LockHolder, ageMs: number): boolean {
  if (holder.pid === -1) return true;
  if (holder.pid === 0) return false;
  if (holder.host !== hostname()) return ageMs > HEARTBEAT_STALE_MS;
  const boot = bootId();
  if (holder.boot && boot && holder.boot !== boot) return true;
  if (!pidAlive(holder.pid)) return true;
  const start = processStart(holder.pid);
  if (start === undefined) return ageMs > HEARTBEAT_STALE_MS;
  if (holder.start !== undefined) return start !== holder.start;
  // an older lock without a start time: a process that started after the lock was last touched cannot hold it
  const startedAt = processStartedAt(start);
  return startedAt !== undefined && startedAt > Date.now() - ageMs + 2_000;
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
