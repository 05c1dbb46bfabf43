// The item memo's records on disk: one append-only journal per stage kind and key-hash prefix,
// items/<kind>/<ab>.log, a line per record:
//
//   <keyhash> <crc32 of "<keyhash> <json>", 8 hex> <json of the record>\n
//
// A file per record cost a cold prepare of 10,000 images a second in creating, renaming and
// writing back 20,000 small files; an append is one write to a file that exists. Later lines win.
// A line that fails any check (torn by a crash, a full disk, bit rot, a hand edit) is never used:
// its record is computed again and appended. gc and verify rewrite a journal with only the lines
// worth keeping (compact), atomically. One writer at a time (the cache's writer lock); a reader
// that sees a line being appended sees a line that fails its check.
import { closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import { writeCacheFileAtomic } from './atomic.js';
import { listOrEmpty } from './inventory.js';
import { clearOwnedPath, readRegularFileSync } from './safe-fs.js';

const KEY_HEX = 64;
const KEY_RE = /^[0-9a-f]{64}$/;
const SHARD_RE = /^[0-9a-f]{2}\.log$/;
/** a journal bigger than this is not read (a hundred times what 100,000 items write): verify or gc compacts it */
export const MAX_JOURNAL_BYTES = 256 * 1024 * 1024;
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | constants.O_NOFOLLOW;

export function journalPath(root: string, kind: string, keyHash: string): string {
  return join(root, 'items', kind, `${keyHash.slice(0, 2)}.log`);
}

/** the line that records `json` for `keyHash` */
export function journalLine(keyHash: string, json: string): string {
  return `${keyHash} ${crc32(`${keyHash} ${json}`).toString(16).padStart(8, '0')} ${json}\n`;
}

/** the record's JSON text of a line, if the line is whole and its checksum holds */
export function checkedJson(line: string, keyHash: string): string | undefined {
  if (line.length < KEY_HEX + 11 || line.charCodeAt(KEY_HEX) !== 32 || line.charCodeAt(KEY_HEX + 9) !== 32 || !line.startsWith(keyHash)) return undefined;
  const crc = Number.parseInt(line.slice(KEY_HEX + 1, KEY_HEX + 9), 16);
  const json = line.slice(KEY_HEX + 10);
  return crc32(`${keyHash} ${json}`) === crc ? json : undefined;
}

/**
 * The last line of each key in a journal's text (not yet checked: see checkedJson). Lines whose key
 * is malformed or belongs to another journal are skipped.
 */
export function indexJournal(text: string, prefix: string): Map<string, string> {
  const lines = new Map<string, string>();
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length; // a torn last line: indexed, then fails its check
    if (end - start > KEY_HEX + 10 && text.startsWith(prefix, start)) {
      const key = text.slice(start, start + KEY_HEX);
      if (KEY_RE.test(key)) lines.set(key, text.slice(start, end));
    }
    start = end + 1;
  }
  return lines;
}

/** the kind's journals and the key-hash prefix each holds */
export function journalsOf(root: string, kind: string): { path: string; prefix: string }[] {
  return listOrEmpty(join(root, 'items', kind))
    .filter((n) => SHARD_RE.test(n))
    .map((n) => ({ path: join(root, 'items', kind, n), prefix: n.slice(0, 2) }));
}

/** what `read` makes of the journal opened for reading; empty when it cannot be opened or read (a miss) */
function readOpened(path: string, read: (fd: number) => string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return '';
  }
  try {
    return read(fd);
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/** a journal's text; empty when there is none, or no file, or one too big to read (verify compacts it) */
function readJournalText(path: string): string {
  return readOpened(path, (fd) => {
    const st = fstatSync(fd);
    return st.isFile() && st.size <= MAX_JOURNAL_BYTES ? readFileSync(fd, 'utf8') : '';
  });
}

/** A journal's records, checked: key hash -> record JSON text (the last whole line of each key). */
export function readJournal(path: string, prefix: string): { records: Map<string, string>; damaged: number; lines: number } {
  const text = readRegularFileSync(path, 'utf8');
  const records = new Map<string, string>();
  let damaged = 0;
  let lines = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    lines++;
    const key = line.slice(0, KEY_HEX);
    const json = line.startsWith(prefix) && KEY_RE.test(key) ? checkedJson(line, key) : undefined;
    if (json === undefined || !isRecordJson(json)) damaged++;
    else records.set(key, json);
  }
  return { records, damaged, lines };
}

function isRecordJson(json: string): boolean {
  try {
    const r = JSON.parse(json) as { refs?: unknown };
    return r !== null && typeof r === 'object' && Array.isArray(r.refs) && 'value' in r;
  } catch {
    return false;
  }
}

/** Replaces a journal by one with only `records` (atomically); with none, the journal is removed. */
export function rewriteJournal(path: string, records: ReadonlyMap<string, string>): void {
  if (records.size === 0) {
    rmSync(path, { force: true });
    return;
  }
  let text = '';
  for (const [key, json] of records) text += journalLine(key, json);
  writeCacheFileAtomic(path, text);
}

function filesUnder(dir: string): number {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
  } catch {
    return 0;
  }
}

/**
 * Rewrites every journal of the cache with only the records `keep` accepts (by id "kind/keyhash"
 * and record JSON), the last whole line of each, and removes what is no journal: damaged lines,
 * temp files of a killed compaction, anything not a file where a journal belongs, and the folders of
 * one file per record an older lorabuild wrote (never read now). Call holding the writer lock.
 * `dropped`: records and damaged lines let go; `repaired`: a line per thing removed that was no record.
 */
export function compactJournals(root: string, keep: (id: string, json: string) => boolean): { dropped: number; repaired: string[] } {
  const items = join(root, 'items');
  let dropped = 0;
  const repaired: string[] = [];
  const top = lstatSync(items, { throwIfNoEntry: false });
  if (top && !top.isDirectory()) {
    rmSync(items, { force: true });
    return { dropped, repaired: ['removed items: a file where the folder of item journals belongs'] };
  }
  for (const kind of listOrEmpty(items)) {
    const kindDir = join(items, kind);
    let st = lstatSync(kindDir, { throwIfNoEntry: false });
    if (!st?.isDirectory()) {
      rmSync(kindDir, { recursive: true, force: true });
      repaired.push(`removed items/${kind}: not a folder of journals`);
      continue;
    }
    for (const name of listOrEmpty(kindDir)) {
      const path = join(kindDir, name);
      st = lstatSync(path, { throwIfNoEntry: false });
      if (!st) continue;
      if (/^[0-9a-f]{2}$/.test(name) && st.isDirectory()) {
        // one file per record: lorabuild's format before the journals
        dropped += filesUnder(path);
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      if (!SHARD_RE.test(name) || !st.isFile()) {
        rmSync(path, { recursive: true, force: true });
        repaired.push(`removed items/${kind}/${name}: ${SHARD_RE.test(name) ? 'not a file where a journal belongs' : 'not a journal'}`);
        continue;
      }
      if (st.size > MAX_JOURNAL_BYTES) {
        rmSync(path, { force: true });
        repaired.push(`removed items/${kind}/${name}: over ${MAX_JOURNAL_BYTES} bytes`);
        continue;
      }
      let journal: ReturnType<typeof readJournal>;
      try {
        journal = readJournal(path, name.slice(0, 2));
      } catch (err) {
        rmSync(path, { force: true });
        repaired.push(`removed items/${kind}/${name}: unreadable (${(err as Error).message})`);
        continue;
      }
      const { records, damaged, lines } = journal;
      const kept = new Map<string, string>();
      for (const [key, json] of records) if (keep(`${kind}/${key}`, json)) kept.set(key, json);
      dropped += records.size - kept.size + damaged;
      // rewritten when it loses a line: a record let go, a damaged line or an older line of a key
      if (kept.size !== lines) rewriteJournal(path, kept);
    }
  }
  return { dropped, repaired };
}

/** where this process appended a line (its bytes are read back when asked for: not kept in memory) */
interface Appended {
  at: number;
  bytes: number;
}

/**
 * Appends to and looks up in the journals of one cache. What a lookup read stays in memory until
 * `forget` (a process that lives for one run never calls it); a record this process appends after
 * that is found again by one read of its line.
 */
export class ItemJournal {
  /** "kind/ab" -> key hash -> its line (from disk, unchecked) or where this process appended it */
  private readonly loaded = new Map<string, Map<string, string | Appended>>();
  /** journals this process appended to: the first append starts on a line of its own */
  private readonly opened = new Set<string>();

  constructor(readonly root: string) {}

  /** the record JSON last appended for the key, or undefined (none, or its line failed a check) */
  read(kind: string, keyHash: string): string | undefined {
    const shard = this.shard(kind, keyHash);
    const line = shard.get(keyHash);
    if (line === undefined) return undefined;
    return checkedJson(typeof line === 'string' ? line : this.readBack(journalPath(this.root, kind, keyHash), line), keyHash);
  }

  /** a line this process appended (a compaction since then makes it fail its check: a miss) */
  private readBack(path: string, where: Appended): string {
    return readOpened(path, (fd) => {
      const bytes = Buffer.alloc(where.bytes);
      return bytes.toString('utf8', 0, readSync(fd, bytes, 0, where.bytes, where.at));
    });
  }

  append(kind: string, keyHash: string, json: string): void {
    const path = journalPath(this.root, kind, keyHash);
    const line = journalLine(keyHash, json);
    // after a crash the file may end in half a line: this process's first line starts a new one
    const text = Buffer.from(this.opened.has(path) ? line : `\n${line}`);
    const { fd, size } = this.openForAppend(path);
    try {
      // a full disk can cut a write short: the rest, or the error (and this journal's next line starts afresh)
      for (let done = 0; done < text.length; ) done += writeSync(fd, text, done);
      this.opened.add(path);
    } catch (err) {
      this.opened.delete(path);
      throw err;
    } finally {
      closeSync(fd);
    }
    // one writer per cache: the line starts where the file ended (without its newline)
    const bytes = Buffer.byteLength(line) - 1;
    this.loaded.get(`${kind}/${keyHash.slice(0, 2)}`)?.set(keyHash, { at: size + text.length - bytes - 1, bytes });
  }

  /** lets go of what lookups read (a long-lived memo, between runs) */
  forget(): void {
    this.loaded.clear();
  }

  private shard(kind: string, keyHash: string): Map<string, string | Appended> {
    const prefix = keyHash.slice(0, 2);
    const id = `${kind}/${prefix}`;
    let shard = this.loaded.get(id);
    if (shard === undefined) {
      shard = indexJournal(readJournalText(journalPath(this.root, kind, keyHash)), prefix);
      this.loaded.set(id, shard);
    }
    return shard;
  }

  /** the journal opened for appending; anything else at its path (a folder, a FIFO, a link) is damage and is replaced */
  private openForAppend(path: string): { fd: number; size: number } {
    for (let attempt = 0; ; attempt++) {
      let fd: number | undefined;
      try {
        fd = openSync(path, APPEND_FLAGS, 0o644);
        const st = fstatSync(fd);
        if (st.isFile()) return { fd, size: st.size };
        closeSync(fd);
        fd = undefined;
        if (attempt > 0) throw new Error(`${path} is not a file`);
      } catch (err) {
        if (fd !== undefined) closeSync(fd);
        if (attempt > 0) throw err;
      }
      clearOwnedPath(this.root, path);
      mkdirSync(dirname(path), { recursive: true });
    }
  }
}
