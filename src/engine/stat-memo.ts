// The stat memo: (path, size, mtime, inode) -> sha256, persisted in the cache, so that a run over
// unchanged files reads no file contents (only stats). A changed mtime, size or inode means the
// file is read and hashed again; content is never assumed from a name alone. On disk: a base file
// and an append-only journal (src/cache/stat-memo-store.ts); a save appends only this process's
// new entries.
import { statSync, type Stats } from 'node:fs';
import { EntryTable, JOURNAL_HEADER_BYTES, MemoBase, type MemoEntry } from '../cache/stat-memo-format.js';
import { compactStatMemo, readStatMemo, saveStatMemo, statMemoEntries, type StoreState } from '../cache/stat-memo-store.js';
import { sha256File } from './file-hash.js';
import { racy } from './racy.js';

type Entry = MemoEntry;


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
function entryMatches(entry: Entry | null | undefined, st: FileStat): entry is Entry {
  return entry !== undefined && entry !== null && sameStat(entry, st);
}

export interface HashStats {
  /** files whose hash came from the memo (no read) */
  memoHits: number;
  /** files read and hashed */
  filesHashed: number;
  bytesHashed: number;
}

export class StatMemo {
  /** as loaded from disk (never changed after the load): the base, and the journal's newer entries */
  private loadedBase: MemoBase | undefined;
  private loadedJournal = new EntryTable();
  /** the file is read on first use: a no-op run over big folders may never look a file up */
  private pending = false;
  /** what this process recorded or forgot since (null: forgotten), ahead of `disk` */
  private readonly local = new Map<string, Entry | null>();
  /** recorded and not yet saved */
  private readonly added = new Map<string, Entry>();
  private state: StoreState = { baseBytes: 0, journalBytes: 0, appendable: false };
  /** entries used by this run but never saved: hashed while racy (engine/racy.ts) */
  private readonly racy = new Set<string>();
  /** racy entries of past runs of a kept memo: never trusted, only compared against (recordedHash) */
  private readonly pastRacy = new Map<string, Entry>();
  readonly stats: HashStats = { memoHits: 0, filesHashed: 0, bytesHashed: 0 };

  private constructor(private readonly file: string | null) {}

  static load(file: string): StatMemo {
    const memo = new StatMemo(file);
    memo.pending = true;
    return memo;
  }

  private readDisk(): void {
    if (!this.pending) return;
    this.pending = false;
    // never throws: a damaged part is skipped (and replaced by the next save's compaction)
    const read = readStatMemo(this.file!, false);
    this.loadedBase = read.base;
    this.loadedJournal = read.table;
    this.state = { baseBytes: read.baseBytes, journalBytes: read.journalBytes, appendable: read.appendable };
  }

  private get base(): MemoBase | undefined {
    this.readDisk();
    return this.loadedBase;
  }

  private get journal(): EntryTable {
    this.readDisk();
    return this.loadedJournal;
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
    // (empty Maps are skipped: a Map lookup hashes the path string, a cost per file on no-op runs)
    const mine = this.local.size > 0 ? this.local.get(absPath) : undefined;
    if (mine !== undefined) {
      if (!entryMatches(mine, st)) return undefined;
      this.stats.memoHits++;
      return mine.sha256;
    }
    const slot = this.journal.size > 0 ? this.journal.slot(absPath) : -1;
    if (slot >= 0) {
      if (!this.journal.matches(slot, st.size, st.mtimeMs, st.ino)) return undefined;
      this.stats.memoHits++;
      return this.journal.sha256(slot);
    }
    const at = this.base?.find(absPath) ?? -1;
    if (at < 0 || !this.base!.matches(at, st.size, st.mtimeMs, st.ino)) return undefined;
    this.stats.memoHits++;
    return this.base!.sha256(at);
  }

  /** this process's entry for the path, else the loaded one */
  private current(absPath: string): Entry | undefined {
    const mine = this.local.get(absPath);
    if (mine !== undefined) return mine ?? undefined;
    const slot = this.journal.slot(absPath);
    if (slot >= 0) return this.journal.entry(slot);
    const at = this.base?.find(absPath) ?? -1;
    return at < 0 ? undefined : this.base!.entry(at);
  }

  /** remember a hash we already know (e.g. a file we just copied out of the CAS) */
  record(absPath: string, st: FileStat, sha256: string, ownWrite = false): void {
    const entry: Entry = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 };
    this.local.set(absPath, entry);
    this.pastRacy.delete(absPath);
    if (ownWrite || !racy(st.mtimeMs, Date.now())) {
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
      const entry = this.current(path);
      if (entry) this.pastRacy.set(path, entry);
      this.local.set(path, null);
    }
    this.racy.clear();
  }

  /**
   * The hash recorded for a file with exactly this stat, and whether that record was racy (then
   * only reading the file again can tell whether it is still the same content).
   */
  recordedHash(absPath: string, st: FileStat): { sha256: string; racy: boolean } | undefined {
    const entry = this.current(absPath);
    if (entryMatches(entry, st)) return { sha256: entry.sha256, racy: this.racy.has(absPath) };
    const past = this.pastRacy.get(absPath);
    if (entryMatches(past, st)) return { sha256: past.sha256, racy: true };
    return undefined;
  }

  forget(absPath: string): void {
    this.local.set(absPath, null);
    this.added.delete(absPath);
    this.racy.delete(absPath);
    this.pastRacy.delete(absPath);
  }

  get dirty(): boolean {
    return this.added.size > 0;
  }

  /**
   * Saves this process's new entries: appended to the journal (O(new entries) bytes), or now and
   * then a compaction that merges what is on disk now (another process may have saved meanwhile).
   */
  save(): void {
    if (!this.file || this.added.size === 0) return;
    this.readDisk();
    this.state = saveStatMemo(this.file, this.added, this.state);
    this.added.clear();
  }

  /** drops entries whose file is gone (cache gc); rewrites the memo compacted */
  static prune(file: string, exists: (path: string) => boolean): number {
    const now = readStatMemo(file);
    const gone = [...statMemoEntries(file).keys()].filter((path) => !exists(path)).length;
    // nothing to drop and nothing to fold in: leave the files as they are
    if (gone === 0 && now.problems.length === 0 && now.journalBytes <= JOURNAL_HEADER_BYTES) return 0;
    return compactStatMemo(file, [], exists).removed;
  }
}
