// The stat memo: (path, size, mtime, inode) -> sha256, persisted in the cache, so that a run over
// unchanged files reads no file contents (only stats). A changed mtime, size or inode means the
// file is read and hashed again; content is never assumed from a name alone.
import { statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { readRegularFileSync, writeOwnedFileAtomic } from '../cache/safe-fs.js';
import { sha256File } from './file-hash.js';

type Entry = [size: number, mtimeMs: number, ino: number, sha256: string];

/**
 * A file modified within this many ms of being hashed could be modified again within the same
 * mtime tick without changing its stat; such "racy" entries are used for this run but not saved.
 */
const RACY_MS = 100;

/** the fields of fs.Stats the memo keys on */
export interface FileStat {
  size: number;
  mtimeMs: number;
  ino: number;
}

/** the same file, unchanged, as far as a stat can tell (size, mtime, inode) */
export function sameStat(a: FileStat, b: FileStat): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** a memo entry recorded for exactly this stat */
function entryMatches(entry: Entry | undefined, st: FileStat): entry is Entry {
  return entry !== undefined && Array.isArray(entry) && typeof entry[3] === 'string' && sameStat({ size: entry[0], mtimeMs: entry[1], ino: entry[2] }, st);
}

export interface HashStats {
  /** files whose hash came from the memo (no read) */
  memoHits: number;
  /** files read and hashed */
  filesHashed: number;
  bytesHashed: number;
}

export class StatMemo {
  /** as parsed from disk: using JSON.parse's object directly is much cheaper than building a Map of 20,000 entries */
  private entries: Record<string, Entry> = {};
  private added = new Map<string, Entry>();
  /** entries used by this run but never saved (see RACY_MS) */
  private readonly racy = new Set<string>();
  /** racy entries of past runs of a kept memo: never trusted, only compared against (recordedHash) */
  private readonly pastRacy = new Map<string, Entry>();
  readonly stats: HashStats = { memoHits: 0, filesHashed: 0, bytesHashed: 0 };

  private constructor(private readonly file: string | null) {}

  static load(file: string): StatMemo {
    const memo = new StatMemo(file);
    memo.entries = readEntries(file);
    return memo;
  }

  /** a memo that is never saved (tests, read-only tools) */
  static inMemory(): StatMemo {
    return new StatMemo(null);
  }

  /**
   * `stat`: the caller's own fresh stat of the file (a folder walk already has one), saving a
   * second stat syscall per file on no-op runs. `ownWrite`: a file lorabuild wrote itself (CAS
   * blob, materialized output, the lock), never racy.
   */
  async hashFile(absPath: string, opts: { stat?: FileStat; ownWrite?: boolean } | boolean = {}): Promise<string> {
    const options = typeof opts === 'boolean' ? { ownWrite: opts } : opts;
    const st = options.stat ?? statSync(absPath);
    if (options.stat === undefined && !(st as Stats).isFile()) throw new Error(`${absPath} is not a regular file`);
    const known = this.lookup(absPath, st);
    if (known) return known;
    const sha256 = await sha256File(absPath, st.size);
    this.stats.filesHashed++;
    this.stats.bytesHashed += st.size;
    this.record(absPath, st, sha256, options.ownWrite);
    return sha256;
  }

  /** the memoised hash of a file whose stat still matches, else undefined (never reads the file) */
  knownHash(absPath: string): string | undefined {
    try {
      return this.lookup(absPath, statSync(absPath));
    } catch {
      return undefined;
    }
  }

  /** the memoised hash if the file's stat still matches, without reading it */
  lookup(absPath: string, st: FileStat): string | undefined {
    const entry = this.added.get(absPath) ?? (Object.hasOwn(this.entries, absPath) ? this.entries[absPath] : undefined);
    if (entryMatches(entry, st)) {
      this.stats.memoHits++;
      return entry[3];
    }
    return undefined;
  }

  /** remember a hash we already know (e.g. a file we just copied out of the CAS) */
  record(absPath: string, st: FileStat, sha256: string, ownWrite = false): void {
    const entry: Entry = [st.size, st.mtimeMs, st.ino, sha256];
    this.entries[absPath] = entry;
    this.pastRacy.delete(absPath);
    if (ownWrite || !isRacy(st)) {
      this.added.set(absPath, entry);
      this.racy.delete(absPath);
    } else {
      this.added.delete(absPath);
      this.racy.add(absPath);
    }
  }

  /**
   * For a memo kept across runs (`lorabuild watch`): forget the racy entries, as a new load would,
   * so that the next run hashes those files again.
   */
  dropRacy(): void {
    for (const path of this.racy) {
      this.pastRacy.set(path, this.entries[path]);
      delete this.entries[path];
    }
    this.racy.clear();
  }

  /**
   * The hash recorded for a file with exactly this stat, and whether that record was racy (then
   * only reading the file again can tell whether it is still the same content).
   */
  recordedHash(absPath: string, st: FileStat): { sha256: string; racy: boolean } | undefined {
    const entry = this.added.get(absPath) ?? (Object.hasOwn(this.entries, absPath) ? this.entries[absPath] : undefined);
    if (entryMatches(entry, st)) return { sha256: entry[3], racy: this.racy.has(absPath) };
    const past = this.pastRacy.get(absPath);
    if (entryMatches(past, st)) return { sha256: past[3], racy: true };
    return undefined;
  }

  forget(absPath: string): void {
    delete this.entries[absPath];
    this.added.delete(absPath);
    this.racy.delete(absPath);
    this.pastRacy.delete(absPath);
  }

  get dirty(): boolean {
    return this.added.size > 0;
  }

  /** Saves new entries, merged into what is on disk now (another process may have saved meanwhile). */
  save(): void {
    if (!this.file || this.added.size === 0) return;
    const merged = readEntries(this.file);
    for (const [path, entry] of this.added) merged[path] = entry;
    writeOwnedFileAtomic(dirname(this.file), this.file, JSON.stringify({ version: 1, entries: merged }));
    this.added.clear();
  }

  /** drops entries whose file is gone (cache gc) */
  static prune(file: string, exists: (path: string) => boolean): number {
    const entries = readEntries(file);
    let removed = 0;
    for (const path of Object.keys(entries)) {
      if (!exists(path)) {
        delete entries[path];
        removed++;
      }
    }
    if (removed > 0) writeOwnedFileAtomic(dirname(file), file, JSON.stringify({ version: 1, entries }));
    return removed;
  }
}

function isRacy(st: FileStat): boolean {
  const age = Date.now() - st.mtimeMs;
  if (age < RACY_MS) return true;
  // file systems with whole-second (FAT: two-second) mtimes
  return Number.isInteger(st.mtimeMs / 1000) && age < 2000;
}

function readEntries(file: string): Record<string, Entry> {
  const empty = (): Record<string, Entry> => ({});
  let text: string;
  try {
    text = readRegularFileSync(file, 'utf8');
  } catch {
    return empty();
  }
  try {
    const parsed = JSON.parse(text) as { version?: number; entries?: Record<string, Entry> };
    if (parsed.version !== 1 || !parsed.entries || typeof parsed.entries !== 'object' || Array.isArray(parsed.entries)) return empty();
    // entries are checked when used (lookup compares all four fields), not one by one here
    return parsed.entries;
  } catch {
    // a memo is only a cache: a damaged one is rebuilt by hashing
    return empty();
  }
}
