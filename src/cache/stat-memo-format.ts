// The stat memo's bytes on disk: a base file (a snapshot) and a journal of batches appended since.
// Everything read back is bounded and checksummed; a part that fails any check is reported as
// damage and never used (the memo is only a cache: a lost entry is hashed again).
//
//   base:    "LBSMEMOB" u32 version, u32 count, u32 slots, u32 bodyLength, u32 crc32(every other
//            byte of the file), u32 0; body = slots x u32 (1 + an entry's offset in the entries, or
//            0 for none: an open-addressing table on FNV-1a of the path), then the entries
//   journal: "LBSMEMOJ" u32 version, u32 crc32(bytes 0..12), then batches:
//            u32 payloadLength, u32 crc32(length bytes + payload), payload = u32 count, entries
//   entry:   u16 pathLength, path (utf8), f64 size, f64 mtimeMs, f64 ino, 32 bytes sha256
// All integers little-endian.
import { crc32 } from 'node:zlib';
import { fmix32 } from './hash32.js';

export const FORMAT_VERSION = 1;
const BASE_MAGIC = Buffer.from('LBSMEMOB', 'latin1');
const JOURNAL_MAGIC = Buffer.from('LBSMEMOJ', 'latin1');
export const BASE_HEADER_BYTES = 32;
const HEADER_CRC_AT = 24;
export const JOURNAL_HEADER_BYTES = 16;
const BATCH_HEADER_BYTES = 8;
export const MAX_PATH_BYTES = 4096;
const NUMS = 3;
const SHA_BYTES = 32;
const FIXED_ENTRY_BYTES = 2 + NUMS * 8 + SHA_BYTES;
const SHA_HEX_RE = /^[0-9a-f]{64}$/;

/** One entry as it is saved: the file's stat and the sha256 (hex) of its content. */
export interface MemoEntry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

/**
 * Entries by path, kept in flat arrays rather than one object per entry: loading 100,000 of them
 * then costs one Map insert and one string decode each.
 */
export class EntryTable {
  private readonly index = new Map<string, number>();
  private nums: Float64Array;
  private shas: Buffer;
  private count = 0;

  constructor(capacity = 64) {
    this.nums = new Float64Array(Math.max(1, capacity) * NUMS);
    this.shas = Buffer.allocUnsafe(Math.max(1, capacity) * SHA_BYTES);
  }

  get size(): number {
    return this.index.size;
  }

  /** the slot of `path`, or -1 */
  slot(path: string): number {
    return this.index.get(path) ?? -1;
  }

  matches(slot: number, size: number, mtimeMs: number, ino: number): boolean {
    const n = this.nums;
    const o = slot * NUMS;
    return n[o] === size && n[o + 1] === mtimeMs && n[o + 2] === ino;
  }

  sha256(slot: number): string {
    return this.shas.toString('hex', slot * SHA_BYTES, (slot + 1) * SHA_BYTES);
  }

  entry(slot: number): MemoEntry {
    const o = slot * NUMS;
    return { size: this.nums[o], mtimeMs: this.nums[o + 1], ino: this.nums[o + 2], sha256: this.sha256(slot) };
  }

  /** adds or replaces the entry of `path`; the sha256 is copied from `sha` at `shaAt` */
  setRaw(path: string, size: number, mtimeMs: number, ino: number, sha: Uint8Array, shaAt: number): void {
    let slot = this.index.get(path);
    if (slot === undefined) {
      slot = this.count++;
      if (slot * NUMS >= this.nums.length) this.grow();
      this.index.set(path, slot);
    }
    const o = slot * NUMS;
    this.nums[o] = size;
    this.nums[o + 1] = mtimeMs;
    this.nums[o + 2] = ino;
    this.shas.set(sha.subarray(shaAt, shaAt + SHA_BYTES), slot * SHA_BYTES);
  }

  set(path: string, e: MemoEntry): void {
    this.setRaw(path, e.size, e.mtimeMs, e.ino, Buffer.from(e.sha256, 'hex'), 0);
  }

  delete(path: string): void {
    // the slot is left unused; tables are rebuilt by every load
    this.index.delete(path);
  }

  paths(): IterableIterator<string> {
    return this.index.keys();
  }

  *entries(): IterableIterator<[string, MemoEntry]> {
    for (const [path, slot] of this.index) yield [path, this.entry(slot)];
  }

  private grow(): void {
    const nums = new Float64Array(this.nums.length * 2);
    nums.set(this.nums);
    this.nums = nums;
    const shas = Buffer.allocUnsafe(this.shas.length * 2);
    this.shas.copy(shas);
    this.shas = shas;
  }
}

/** An entry that can be written: a sane path and stat, and a sha256 in lowercase hex. */
export function savable(path: string, e: MemoEntry): boolean {
  const pathBytes = Buffer.byteLength(path);
  return pathBytes > 0 && pathBytes <= MAX_PATH_BYTES && sane(e.size, e.mtimeMs, e.ino) && SHA_HEX_RE.test(e.sha256);
}

function sane(size: number, mtimeMs: number, ino: number): boolean {
  return Number.isFinite(size) && size >= 0 && Number.isFinite(mtimeMs) && Number.isFinite(ino) && ino >= 0;
}

/** entries back to back, in one allocation (callers pass only savable ones) */
export function encodeEntries(entries: readonly [string, MemoEntry][]): Buffer {
  let total = 0;
  for (const [path] of entries) total += FIXED_ENTRY_BYTES + Buffer.byteLength(path);
  const out = Buffer.allocUnsafe(total);
  let o = 0;
  for (const [path, e] of entries) {
    const n = out.write(path, o + 2, 'utf8');
    out.writeUInt16LE(n, o);
    o = out.writeDoubleLE(e.size, o + 2 + n);
    o = out.writeDoubleLE(e.mtimeMs, o);
    o = out.writeDoubleLE(e.ino, o);
    o += out.write(e.sha256, o, 'hex');
  }
  return out;
}

/**
 * Walks `count` entries in buf[start, end) without decoding them; calls `each` with every entry's
 * start and path length. False if they do not fill the range exactly or one is out of bounds.
 */
function walkEntries(buf: Buffer, start: number, end: number, count: number, each: (at: number, pathLen: number) => boolean | void): boolean {
  let o = start;
  for (let i = 0; i < count; i++) {
    if (end - o < FIXED_ENTRY_BYTES) return false;
    const pathLen = buf.readUInt16LE(o);
    if (pathLen === 0 || pathLen > MAX_PATH_BYTES || end - o < FIXED_ENTRY_BYTES + pathLen) return false;
    if (each(o, pathLen) === false) return false;
    o += FIXED_ENTRY_BYTES + pathLen;
  }
  return o === end;
}

/** numbers of the entry at `at` (whose path is `pathLen` bytes) are sane */
function saneAt(buf: Buffer, at: number, pathLen: number): boolean {
  const o = at + 2 + pathLen;
  return sane(buf.readDoubleLE(o), buf.readDoubleLE(o + 8), buf.readDoubleLE(o + 16));
}

/** Reads `count` entries from buf[start, end) into `table`; false if they do not fill it exactly or one is insane. */
function decodeEntries(buf: Buffer, start: number, end: number, count: number, table: EntryTable): boolean {
  return walkEntries(buf, start, end, count, (at, pathLen) => {
    if (!saneAt(buf, at, pathLen)) return false;
    const o = at + 2 + pathLen;
    table.setRaw(buf.toString('utf8', at + 2, o), buf.readDoubleLE(o), buf.readDoubleLE(o + 8), buf.readDoubleLE(o + 16), buf, o + NUMS * 8);
  });
}

const HASHED_TAIL = 48;

/**
 * 32-bit FNV-1a of a path's length and last HASHED_TAIL UTF-16 code units (paths of one dataset
 * differ in their ends; sharing a tail only costs probes).
 */
function hashPath(path: string): number {
  let h = Math.imul(0x811c9dc5 ^ path.length, 0x01000193);
  for (let i = Math.max(0, path.length - HASHED_TAIL); i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

function isAscii(path: string): boolean {
  for (let i = 0; i < path.length; i++) if (path.charCodeAt(i) >= 0x80) return false;
  return true;
}


/**
 * A base file kept as loaded: entries are found through the open-addressing table written into it
 * (FNV-1a of the path's bytes, linear probing), so a load decodes no path and builds no Map.
 */
export class MemoBase {
  /** for encoding looked-up paths without an allocation per lookup */
  private static scratch = Buffer.allocUnsafe(4 * MAX_PATH_BYTES);

  private constructor(
    private readonly buf: Buffer,
    readonly count: number,
    private readonly slots: number,
  ) {}

  private get entriesStart(): number {
    return BASE_HEADER_BYTES + this.slots * 4;
  }

  /** the entry of `path`: its offset in the file, or -1 */
  find(path: string): number {
    if (path.length === 0 || path.length > MAX_PATH_BYTES) return -1;
    const hash = hashPath(path);
    // first as ASCII, as nearly every path is: no encoding, and no scan before the compare
    const at = this.probe(hash, path, path.length, true);
    if (at >= 0 || isAscii(path)) return at;
    const n = MemoBase.scratch.write(path, 0, 'utf8');
    return n > MAX_PATH_BYTES ? -1 : this.probe(hash, path, n, false);
  }

  /** the entry whose path is `path` (ascii: compared as code units; else: its n utf8 bytes in scratch) */
  private probe(hash: number, path: string, n: number, ascii: boolean): number {
    const buf = this.buf;
    const mask = this.slots - 1;
    const start = this.entriesStart;
    let slot = hash & mask;
    for (let probes = 0; probes < this.slots; probes++) {
      const ref = buf.readUInt32LE(BASE_HEADER_BYTES + slot * 4);
      if (ref === 0) return -1;
      const at = start + ref - 1;
      // bounds were checked at load; checked again here so that no offset is ever trusted blindly
      if (at + FIXED_ENTRY_BYTES > buf.length) return -1;
      if (buf.readUInt16LE(at) === n && at + FIXED_ENTRY_BYTES + n <= buf.length && (ascii ? sameAscii(buf, at + 2, path) : MemoBase.scratch.compare(buf, at + 2, at + 2 + n, 0, n) === 0)) return at;
      slot = (slot + 1) & mask;
    }
    return -1;
  }

  matches(at: number, size: number, mtimeMs: number, ino: number): boolean {
    const o = at + 2 + this.buf.readUInt16LE(at);
    return this.buf.readDoubleLE(o) === size && this.buf.readDoubleLE(o + 8) === mtimeMs && this.buf.readDoubleLE(o + 16) === ino;
  }

  sha256(at: number): string {
    const o = at + 2 + this.buf.readUInt16LE(at) + NUMS * 8;
    return this.buf.toString('hex', o, o + SHA_BYTES);
  }

  entry(at: number): MemoEntry {
    const o = at + 2 + this.buf.readUInt16LE(at);
    return { size: this.buf.readDoubleLE(o), mtimeMs: this.buf.readDoubleLE(o + 8), ino: this.buf.readDoubleLE(o + 16), sha256: this.sha256(at) };
  }

  /** every entry's offset, raw bytes (a compaction copies them as they are) and, if asked for, path */
  raw(withPaths: true): IterableIterator<{ path: string; at: number; bytes: Buffer }>;
  raw(withPaths?: boolean): IterableIterator<{ path?: string; at: number; bytes: Buffer }>;
  *raw(withPaths = false): IterableIterator<{ path?: string; at: number; bytes: Buffer }> {
    const buf = this.buf;
    for (let o = this.entriesStart; o < buf.length; ) {
      const pathLen = buf.readUInt16LE(o);
      const end = o + FIXED_ENTRY_BYTES + pathLen;
      yield { path: withPaths ? buf.toString('utf8', o + 2, o + 2 + pathLen) : undefined, at: o, bytes: buf.subarray(o, end) };
      o = end;
    }
  }

  /**
   * A base file's entries, or why it cannot be used. `checkEntries` false (lookups only): the
   * entries are not walked one by one at load (most of a cold load at 200,000 entries); the
   * checksum and the table are still checked, and every lookup is bounds-checked on its own
   * (probe), so a base that is not whole can only miss. Compaction and verify read it checked.
   */
  static decode(buf: Buffer, checkEntries = true): { base: MemoBase; problem?: undefined } | { base?: undefined; problem: string } {
    if (buf.length < BASE_HEADER_BYTES || !buf.subarray(0, 8).equals(BASE_MAGIC)) return { problem: 'not a stat memo (bad header)' };
    if (buf.readUInt32LE(8) !== FORMAT_VERSION) return { problem: `an unknown format version (${buf.readUInt32LE(8)})` };
    const count = buf.readUInt32LE(12);
    const slots = buf.readUInt32LE(16);
    const bodyLength = buf.readUInt32LE(20);
    if (bodyLength !== buf.length - BASE_HEADER_BYTES) return { problem: `a length field (${bodyLength}) that does not match the file (${buf.length - BASE_HEADER_BYTES} bytes)` };
    if (slots === 0 || (slots & (slots - 1)) !== 0 || slots <= count || slots * 4 > bodyLength) return { problem: `a table size (${slots} slots) that does not fit` };
    const entriesLength = bodyLength - slots * 4;
    if (count > entriesLength / FIXED_ENTRY_BYTES) return { problem: `an entry count (${count}) too large for its size` };
    if (crc32(buf.subarray(HEADER_CRC_AT + 4), crc32(buf.subarray(0, HEADER_CRC_AT))) !== buf.readUInt32LE(HEADER_CRC_AT)) return { problem: 'a checksum mismatch' };
    const start = BASE_HEADER_BYTES + slots * 4;
    if (checkEntries && !walkEntries(buf, start, buf.length, count, (at, pathLen) => saneAt(buf, at, pathLen))) return { problem: 'malformed entries' };
    const used = usedSlots(buf, slots, entriesLength);
    if (used < 0) return { problem: 'a table entry out of bounds' };
    if (used !== count) return { problem: `a table of ${used} entries for ${count}` };
    return { base: new MemoBase(buf, count, slots) };
  }
}

/**
 * How many of the table's slots are taken, or -1 if one points past the entries. Read as 32-bit
 * words (the platform is little-endian, as the format: checked below): a slot at a time through
 * readUInt32LE is most of a cold load at 65,536 slots.
 */
function usedSlots(buf: Buffer, slots: number, entriesLength: number): number {
  const at = buf.byteOffset + BASE_HEADER_BYTES;
  const table = at % 4 === 0 && LITTLE_ENDIAN ? new Uint32Array(buf.buffer, at, slots) : new Uint32Array(Array.from({ length: slots }, (_, s) => buf.readUInt32LE(BASE_HEADER_BYTES + s * 4)));
  let used = 0;
  for (let s = 0; s < slots; s++) {
    const ref = table[s];
    if (ref === 0) continue;
    if (ref > entriesLength) return -1;
    used++;
  }
  return used;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** `raw`: entries of an older base, copied as they are */
/** hashPath of the path stored in buf[start, end): ASCII bytes are their own code units, others are decoded */
function hashStored(buf: Buffer, start: number, end: number): number {
  const length = end - start;
  let h = Math.imul(0x811c9dc5 ^ length, 0x01000193);
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c >= 0x80) return hashPath(buf.toString('utf8', start, end));
    if (i >= end - HASHED_TAIL) h = Math.imul(h ^ c, 0x01000193);
  }
  return fmix32(h);
}

/** the bytes at `at` are `path`'s code units, all ASCII (so they are its utf8 bytes); exported for tests */
export function sameAscii(buf: Buffer, at: number, path: string): boolean {
  for (let i = path.length - 1; i >= 0; i--) {
    const c = path.charCodeAt(i);
    // a code unit >= 0x80 equal to a byte does not mean the same path ("Ã©" is not "é")
    if (c >= 0x80 || buf[at + i] !== c) return false;
  }
  return true;
}

export function encodeBase(entries: readonly [string, MemoEntry][], raw: readonly Buffer[] = []): Buffer {
  const body = Buffer.concat([encodeEntries(entries), ...raw]);
  const count = entries.length + raw.length;
  // at most half full, so that probes stay short
  let slots = 16;
  while (slots < count * 2) slots *= 2;
  const out = Buffer.alloc(BASE_HEADER_BYTES + slots * 4 + body.length);
  const start = BASE_HEADER_BYTES + slots * 4;
  body.copy(out, start);
  const mask = slots - 1;
  for (let i = 0, o = 0; i < count; i++, o += FIXED_ENTRY_BYTES + body.readUInt16LE(o)) {
    // the path as its bytes decode: what a lookup of that path hashes
    let slot = hashStored(body, o + 2, o + 2 + body.readUInt16LE(o)) & mask;
    while (out.readUInt32LE(BASE_HEADER_BYTES + slot * 4) !== 0) slot = (slot + 1) & mask;
    out.writeUInt32LE(o + 1, BASE_HEADER_BYTES + slot * 4);
  }
  BASE_MAGIC.copy(out, 0);
  out.writeUInt32LE(FORMAT_VERSION, 8);
  out.writeUInt32LE(count, 12);
  out.writeUInt32LE(slots, 16);
  out.writeUInt32LE(out.length - BASE_HEADER_BYTES, 20);
  out.writeUInt32LE(crc32(out.subarray(HEADER_CRC_AT + 4), crc32(out.subarray(0, HEADER_CRC_AT))), HEADER_CRC_AT);
  return out;
}

export function journalHeader(): Buffer {
  const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
  JOURNAL_MAGIC.copy(header, 0);
  header.writeUInt32LE(FORMAT_VERSION, 8);
  header.writeUInt32LE(crc32(header.subarray(0, 12)), 12);
  return header;
}

/** the bytes encodeBatch would give (without encoding anything) */
export function batchBytes(entries: readonly [string, MemoEntry][]): number {
  let total = BATCH_HEADER_BYTES + 4;
  for (const [path] of entries) total += FIXED_ENTRY_BYTES + Buffer.byteLength(path);
  return total;
}

/** one journal batch: its own length and checksum, so a torn or damaged one is never read */
export function encodeBatch(entries: readonly [string, MemoEntry][]): Buffer {
  const body = encodeEntries(entries);
  const count = entries.length;
  const out = Buffer.allocUnsafe(BATCH_HEADER_BYTES + 4 + body.length);
  out.writeUInt32LE(4 + body.length, 0);
  out.writeUInt32LE(count, BATCH_HEADER_BYTES);
  body.copy(out, BATCH_HEADER_BYTES + 4);
  out.writeUInt32LE(crc32(out.subarray(BATCH_HEADER_BYTES), crc32(out.subarray(0, 4))), 4);
  return out;
}

export interface JournalRead {
  /** bytes of the journal that are whole, checked batches (the header included) */
  goodBytes: number;
  batches: number;
  /** why reading stopped before the end (a torn tail, a checksum mismatch, ...) */
  problem?: string;
}

/** Applies every whole, checked batch of a journal to `table`, in order, up to the first bad one. */
export function decodeJournal(buf: Buffer, table: EntryTable): JournalRead {
  if (buf.length < JOURNAL_HEADER_BYTES || !buf.subarray(0, 8).equals(JOURNAL_MAGIC) || crc32(buf.subarray(0, 12)) !== buf.readUInt32LE(12)) {
    return { goodBytes: 0, batches: 0, problem: 'not a stat memo journal (bad header)' };
  }
  if (buf.readUInt32LE(8) !== FORMAT_VERSION) return { goodBytes: 0, batches: 0, problem: `an unknown format version (${buf.readUInt32LE(8)})` };
  let o = JOURNAL_HEADER_BYTES;
  let batches = 0;
  while (o < buf.length) {
    const left = buf.length - o;
    if (left < BATCH_HEADER_BYTES) return { goodBytes: o, batches, problem: `a torn tail (${left} bytes of a batch header)` };
    const length = buf.readUInt32LE(o);
    if (length > left - BATCH_HEADER_BYTES) return { goodBytes: o, batches, problem: `a torn tail (a batch of ${length} bytes, ${left - BATCH_HEADER_BYTES} there)` };
    const start = o + BATCH_HEADER_BYTES;
    const end = start + length;
    if (length < 4 || crc32(buf.subarray(start, end), crc32(buf.subarray(o, o + 4))) !== buf.readUInt32LE(o + 4)) return { goodBytes: o, batches, problem: `a checksum mismatch at byte ${o}` };
    const count = buf.readUInt32LE(start);
    if (count > (length - 4) / FIXED_ENTRY_BYTES) return { goodBytes: o, batches, problem: `an entry count (${count}) too large for its batch at byte ${o}` };
    // checked whole before any of it is applied: a batch is used entirely or not at all
    if (!walkEntries(buf, start + 4, end, count, (at, pathLen) => saneAt(buf, at, pathLen))) return { goodBytes: o, batches, problem: `malformed entries at byte ${o}` };
    decodeEntries(buf, start + 4, end, count, table);
    o = end;
    batches++;
  }
  return { goodBytes: o, batches };
}
