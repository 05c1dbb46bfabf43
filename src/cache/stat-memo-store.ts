// The stat memo's two files: reading them (damage is reported and skipped, never thrown), appending
// a batch to the journal, and compacting (a new base, atomically, then an empty journal).
//
// Writers are not serialized: `lorabuild status` saves without the writer lock, beside a `run` that
// holds it. That is safe because every entry is a fact about one exact stat (an old entry never
// wins a lookup for a newer stat) and every batch is checksummed: the worst a race can do is lose
// entries (an append into a journal that a compaction is replacing, two compactions at once), and
// a lost entry only costs hashing that file again.
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { journalPathOf } from './layout.js';
import { NotRegularFileError, readRegularFileSync, writeOwnedFileAtomic } from './safe-fs.js';
import { batchBytes, decodeJournal, encodeBase, encodeBatch, EntryTable, JOURNAL_HEADER_BYTES, journalHeader, MemoBase, savable, type MemoEntry } from './stat-memo-format.js';
import { pidAlive } from './pid-alive.js';

/** a compaction's temp file this old, of a process that is gone, was left by a kill -9 */
const DEAD_TEMP_MS = 60_000;
/** compact once the journal is past this size ... */
const COMPACT_MIN_BYTES = 64 * 1024;
/** ... and past this fraction of the base (so compaction's O(dataset) write is amortized over many appends) */
const COMPACT_FRACTION = 0.1;

export interface StoreState {
  baseBytes: number;
  journalBytes: number;
  /** the journal was read to its end with no damage, so a batch appended to it will be read back */
  appendable: boolean;
}

export interface MemoProblem {
  path: string;
  why: string;
}

export interface StoreRead extends StoreState {
  /** the base, when there is a sound one */
  base?: MemoBase;
  /** the journal's entries (newer than the base's) */
  table: EntryTable;
  problems: MemoProblem[];
}

type Part = { buf: Buffer } | { missing: true } | { problem: MemoProblem };

function readPart(path: string): Part {
  try {
    return { buf: readRegularFileSync(path) };
  } catch (err) {
    if (err instanceof NotRegularFileError) return { problem: { path, why: `${err.kind} where a file belongs` } };
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true };
    // a FIFO opened for reading never blocks (O_NONBLOCK); anything else unreadable (EACCES, ENOTDIR, too big) is damage
    return { problem: { path, why: `unreadable (${code ?? (err as Error).message})` } };
  }
}

/** The entries of the base, then of every whole, checked journal batch; what was skipped is in `problems`. */
/** `checkEntries` false: for lookups only (see MemoBase.decode) */
export function readStatMemo(base: string, checkEntries = true): StoreRead {
  const problems: MemoProblem[] = [];
  let sound: MemoBase | undefined;
  let baseBytes = 0;
  const b = readPart(base);
  if ('buf' in b) {
    const decoded = MemoBase.decode(b.buf, checkEntries);
    if (decoded.problem !== undefined) problems.push({ path: base, why: decoded.problem });
    else {
      sound = decoded.base;
      baseBytes = b.buf.length;
    }
  } else if ('problem' in b) problems.push(b.problem);
  const table = new EntryTable();

  const journal = journalPathOf(base);
  let journalBytes = 0;
  let appendable = false;
  const j = readPart(journal);
  if ('buf' in j) {
    const read = decodeJournal(j.buf, table);
    journalBytes = j.buf.length;
    appendable = read.problem === undefined;
    if (read.problem) problems.push({ path: journal, why: read.problem });
  } else if ('problem' in j) problems.push(j.problem);
  return { base: sound, table, problems, baseBytes, journalBytes, appendable };
}

/**
 * Saves `added`: one batch appended to the journal (O(added) bytes), or, when the journal is
 * missing, damaged or due, a compaction. Returns the files' state after it.
 */
export function saveStatMemo(base: string, added: Iterable<[string, MemoEntry]>, state: StoreState): StoreState {
  const entries = [...added].filter(([path, e]) => savable(path, e));
  if (entries.length === 0) return state;
  const journalAfter = state.journalBytes + batchBytes(entries);
  const due = journalAfter > COMPACT_MIN_BYTES && journalAfter > state.baseBytes * COMPACT_FRACTION;
  if (state.appendable && !due && appendTo(journalPathOf(base), encodeBatch(entries))) return { ...state, journalBytes: journalAfter };
  return compactStatMemo(base, entries);
}

/**
 * Rewrites the base from what is on disk now plus `added` (savable entries only: saveStatMemo
 * checked them) minus what `keep` rejects, then
 * starts an empty journal. Both writes are tmp + rename: a reader, or a kill -9, sees old or new
 * files, never half of one (an old journal beside a new base only repeats entries the base has).
 */
export function compactStatMemo(base: string, added: readonly [string, MemoEntry][] = [], keep?: (path: string) => boolean): StoreState & { removed: number } {
  const now = readStatMemo(base);
  // unique paths, newest entry each (`added` comes from a Map: unique already)
  let newer: readonly [string, MemoEntry][] = added;
  if (now.table.size > 0) {
    const merged = new Map(now.table.entries());
    for (const [path, e] of added) merged.set(path, e);
    newer = [...merged];
  }
  let removed = 0;
  const fresh = keep ? newer.filter(([path]) => keep(path)) : newer;
  removed += newer.length - fresh.length;
  // the base's entries that nothing newer replaces are copied as they are
  const replaced = new Set<number>();
  if (now.base) for (const [path] of newer) replaced.add(now.base.find(path));
  const copied: Buffer[] = [];
  for (const { at, bytes, path } of now.base?.raw(keep !== undefined) ?? []) {
    if (replaced.has(at)) continue;
    if (!keep || keep(path!)) copied.push(bytes);
    else removed++;
  }
  const bytes = encodeBase(fresh, copied);
  const root = dirname(base);
  writeOwnedFileAtomic(root, base, bytes);
  writeOwnedFileAtomic(root, journalPathOf(base), journalHeader());
  for (const path of deadCompactionTemps(base)) rmSync(path, { force: true });
  return { baseBytes: bytes.length, journalBytes: JOURNAL_HEADER_BYTES, appendable: true, removed };
}

/** one write with O_APPEND to an existing journal that is a regular file; false if that could not be done */
function appendTo(journal: string, batch: Buffer): boolean {
  let fd: number;
  try {
    fd = openSync(journal, constants.O_WRONLY | constants.O_APPEND | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    const st = fstatSync(fd);
    // replaced meanwhile by something else, or by an empty file: let a compaction sort it out
    if (!st.isFile() || st.size < JOURNAL_HEADER_BYTES) return false;
    let done = 0;
    while (done < batch.length) done += writeSync(fd, batch, done, batch.length - done);
    return true;
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}

/** Every entry the memo's files hold now (newest per path); what is damaged is skipped. */
export function statMemoEntries(base: string): Map<string, MemoEntry> {
  const read = readStatMemo(base);
  const all = new Map<string, MemoEntry>();
  for (const { path, at } of read.base?.raw(true) ?? []) all.set(path, read.base!.entry(at));
  for (const [path, e] of read.table.entries()) all.set(path, e);
  return all;
}

/** Temp files of compactions killed between their write and their rename (see atomic.ts's tempName). */
export function deadCompactionTemps(base: string): string[] {
  const dir = dirname(base);
  const ours = new Set([basename(base), basename(journalPathOf(base))]);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const dead: string[] = [];
  for (const name of names) {
    const m = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name);
    if (!m || !ours.has(m[1]) || pidAlive(Number(m[2]))) continue;
    try {
      // the age guards against a pid of another host sharing this cache folder
      if (Date.now() - lstatSync(join(dir, name)).mtimeMs > DEAD_TEMP_MS) dead.push(join(dir, name));
    } catch {
      // gone meanwhile
    }
  }
  return dead;
}


/** For `cache verify`: what is wrong with the memo's files (nothing for files that are absent). */
export function statMemoProblems(base: string): MemoProblem[] {
  return readStatMemo(base).problems;
}
