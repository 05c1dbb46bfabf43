// The size, mtime and inode of a regular file, without the Stats object fs.lstatSync makes: on a
// no-op run the walk lstats every file of every dataset (20,000 at 10,000 images), and building
// a Stats with its four Dates cost more than the system call itself (10,000 regular files on this
// 2-core VM, code not yet warm: ~50 ms through fs.lstatSync, ~38 ms without the objects, and
// fewer young-generation collections after the walk).
//
// Node has no public call for this, so the fast path calls fs.lstatSync's own native binding
// (process.binding('fs').lstat, which returns its numbers as an array) and trusts it only after
// one check per thread: the first path asked for is answered both ways and must give the same
// numbers. Anything else goes through fs.lstatSync as before: a name that is not a regular file
// (the walk needs the Stats of folders and links), a missing one, an error (so it is thrown as
// fs.lstatSync throws it), a Node whose fs.lstatSync calls its binding otherwise (read from its
// source), the permission model (which the binding would bypass), --pending-deprecation (which
// would print a warning), or LORABUILD_PLAIN_LSTAT=1.
import { lstatSync } from 'node:fs';

/** the native call behind fs.lstatSync: stat numbers in fs's shared Float64Array, or undefined for a missing path */
type LstatBinding = (path: string, bigint: false, req: undefined, throwIfNoEntry: false) => Float64Array | undefined;

// positions in the binding's array (node's src/node_file.h FsStatsOffset)
const MODE = 1;
const INO = 7;
const SIZE = 8;
const MTIME_SEC = 12;
const MTIME_NSEC = 13;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

/** undefined: not decided yet; null: fs.lstatSync only */
let fast: LstatBinding | null | undefined;

/** whether the fast path is in use in this thread (tests; undefined until the first call decides) */
export function fastLstatState(): 'fast' | 'plain' | 'undecided' {
  return fast === undefined ? 'undecided' : fast ? 'fast' : 'plain';
}

function pendingDeprecation(): boolean {
  return (
    process.execArgv.includes('--pending-deprecation') ||
    /(^|\s)--pending-deprecation\b/.test(process.env.NODE_OPTIONS ?? '') ||
    process.env.NODE_PENDING_DEPRECATION === '1'
  );
}

/**
 * Whether this Node's own fs.lstatSync calls the binding as we do: (path, bigint, undefined,
 * throwIfNoEntry). Older ones passed a context object fourth, which the native side would read as
 * one whatever it is given: called our way there, it could take the process down, not throw.
 */
function callsBindingOurWay(): boolean {
  return /binding\.lstat\(\s*[^,]+,\s*options\.bigint,\s*undefined,\s*options\.throwIfNoEntry,?\s*\)/.test(lstatSync.toString());
}

/** the binding where this Node and these settings allow it: looked up once per thread (undefined: not yet) */
let allowed: LstatBinding | null | undefined;

function candidate(): LstatBinding | null {
  if (allowed === undefined) allowed = lookUpBinding();
  return allowed;
}

function lookUpBinding(): LstatBinding | null {
  if (process.env.LORABUILD_PLAIN_LSTAT === '1' || pendingDeprecation()) return null;
  if ((process as { permission?: unknown }).permission !== undefined || !callsBindingOurWay()) return null;
  try {
    const binding = (process as unknown as { binding?: (name: string) => { lstat?: unknown } }).binding?.('fs');
    const lstat = binding?.lstat;
    return typeof lstat === 'function' ? (lstat.bind(binding) as LstatBinding) : null;
  } catch {
    return null;
  }
}

/** writes the binding's size, mtimeMs, ino for `path` at numbers[at]; false when it is not a regular file */
function viaBinding(lstat: LstatBinding, path: string, numbers: Float64Array, at: number): boolean {
  const a = lstat(path, false, undefined, false);
  if (!(a instanceof Float64Array) || a.length <= MTIME_NSEC || (a[MODE] & S_IFMT) !== S_IFREG) return false;
  numbers[at] = a[SIZE];
  // the formula of fs.Stats' mtimeMs, so the two agree to the last bit
  numbers[at + 1] = a[MTIME_SEC] * 1e3 + a[MTIME_NSEC] / 1e6;
  numbers[at + 2] = a[INO];
  return true;
}

/** decides on the first regular file: the binding is used only if it agrees with fs.lstatSync there */
function decide(path: string): void {
  const lstat = candidate();
  if (!lstat) {
    fast = null;
    return;
  }
  const ours = new Float64Array(3);
  try {
    // not a regular file (or gone): nothing to compare yet, decided on a later path (a walk stats
    // a folder's subfolders before any file in them: each costs this one call, no more)
    if (!viaBinding(lstat, path, ours, 0)) return;
  } catch {
    fast = null;
    return;
  }
  const theirs = lstatSync(path, { throwIfNoEntry: false });
  if (!theirs?.isFile()) return;
  fast = ours[0] === theirs.size && ours[1] === theirs.mtimeMs && ours[2] === theirs.ino ? lstat : null;
}

/**
 * Writes size, mtimeMs and ino of `path` into numbers[at, at + 3) and returns true when it is a
 * regular file; otherwise returns false, having written nothing the caller may use (it then asks
 * fs.lstatSync, which also throws any error). Symbolic links are not followed.
 */
export function regularFileNumbers(path: string, numbers: Float64Array, at: number): boolean {
  if (fast === undefined) decide(path);
  if (!fast) return false;
  try {
    return viaBinding(fast, path, numbers, at);
  } catch {
    return false;
  }
}
