// The stat memo's bytes on disk: a base file (a snapshot) and a journal of batches appended since.
// Everything read back is bounded and checksummed; a part that fails any check is reported as
// damage and never used (the memo is only a cache: a lost entry is hashed again).
//
//   base:    "LBSMEMOB" u32 version, u32 count, u32 bodyLength, u32 crc32(bytes 0..20 + body), body
//   journal: "LBSMEMOJ" u32 version, u32 crc32(bytes 0..12), then batches:
//            u32 payloadLength, u32 crc32(length bytes + payload), payload = u32 count, entries
//   entry:   u16 pathLength, path (utf8), f64 size, f64 mtimeMs, f64 ino, 32 bytes sha256
// All integers little-endian.
import { crc32 } from 'node:zlib';

export const FORMAT_VERSION = 1;
const BASE_MAGIC = Buffer.from('LBSMEMOB', 'latin1');
const JOURNAL_MAGIC = Buffer.from('LBSMEMOJ', 'latin1');
export const BASE_HEADER_BYTES = 24;
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

/** entries back to back (callers pass only savable ones) */
function encodeEntries(entries: Iterable<[string, MemoEntry]>): { body: Buffer; count: number } {
  const parts: Buffer[] = [];
  let count = 0;
  for (const [path, e] of entries) {
    const pathBytes = Buffer.from(path, 'utf8');
    const rec = Buffer.allocUnsafe(FIXED_ENTRY_BYTES + pathBytes.length);
    let o = rec.writeUInt16LE(pathBytes.length, 0);
    o += pathBytes.copy(rec, o);
    o = rec.writeDoubleLE(e.size, o);
    o = rec.writeDoubleLE(e.mtimeMs, o);
    o = rec.writeDoubleLE(e.ino, o);
    rec.write(e.sha256, o, 'hex');
    parts.push(rec);
    count++;
  }
  return { body: Buffer.concat(parts), count };
}

/** Reads `count` entries from buf[start, end) into `table`; false if they do not fill it exactly or one is insane. */
function decodeEntries(buf: Buffer, start: number, end: number, count: number, table: EntryTable): boolean {
  let o = start;
  for (let i = 0; i < count; i++) {
    if (end - o < FIXED_ENTRY_BYTES) return false;
    const pathLen = buf.readUInt16LE(o);
    o += 2;
    if (pathLen === 0 || pathLen > MAX_PATH_BYTES || end - o < pathLen + NUMS * 8 + SHA_BYTES) return false;
    const path = buf.toString('utf8', o, o + pathLen);
    o += pathLen;
    const size = buf.readDoubleLE(o);
    const mtimeMs = buf.readDoubleLE(o + 8);
    const ino = buf.readDoubleLE(o + 16);
    o += NUMS * 8;
    if (!sane(size, mtimeMs, ino)) return false;
    table.setRaw(path, size, mtimeMs, ino, buf, o);
    o += SHA_BYTES;
  }
  return o === end;
}

export function encodeBase(entries: Iterable<[string, MemoEntry]>): Buffer {
  const { body, count } = encodeEntries(entries);
  const header = Buffer.alloc(BASE_HEADER_BYTES);
  BASE_MAGIC.copy(header, 0);
  header.writeUInt32LE(FORMAT_VERSION, 8);
  header.writeUInt32LE(count, 12);
  header.writeUInt32LE(body.length, 16);
  header.writeUInt32LE(crc32(body, crc32(header.subarray(0, 20))), 20);
  return Buffer.concat([header, body]);
}

/** A base file's entries, or why it cannot be used (then the table is empty). */
export function decodeBase(buf: Buffer): { table: EntryTable; problem?: string } {
  const problem = checkBaseHeader(buf);
  if (problem) return { table: new EntryTable(), problem };
  const count = buf.readUInt32LE(12);
  const table = new EntryTable(count);
  if (!decodeEntries(buf, BASE_HEADER_BYTES, buf.length, count, table)) return { table: new EntryTable(), problem: 'malformed entries' };
  return { table };
}

function checkBaseHeader(buf: Buffer): string | undefined {
  if (buf.length < BASE_HEADER_BYTES || !buf.subarray(0, 8).equals(BASE_MAGIC)) return 'not a stat memo (bad header)';
  if (buf.readUInt32LE(8) !== FORMAT_VERSION) return `an unknown format version (${buf.readUInt32LE(8)})`;
  const count = buf.readUInt32LE(12);
  const bodyLength = buf.readUInt32LE(16);
  if (bodyLength !== buf.length - BASE_HEADER_BYTES) return `a length field (${bodyLength}) that does not match the file (${buf.length - BASE_HEADER_BYTES} bytes)`;
  if (count > bodyLength / FIXED_ENTRY_BYTES) return `an entry count (${count}) too large for its size`;
  if (crc32(buf.subarray(BASE_HEADER_BYTES), crc32(buf.subarray(0, 20))) !== buf.readUInt32LE(20)) return 'a checksum mismatch';
  return undefined;
}

export function journalHeader(): Buffer {
  const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
  JOURNAL_MAGIC.copy(header, 0);
  header.writeUInt32LE(FORMAT_VERSION, 8);
  header.writeUInt32LE(crc32(header.subarray(0, 12)), 12);
  return header;
}

/** one journal batch: its own length and checksum, so a torn or damaged one is never read */
export function encodeBatch(entries: Iterable<[string, MemoEntry]>): Buffer {
  const { body, count } = encodeEntries(entries);
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
    // decoded apart first: a batch is applied whole or not at all
    const batch = new EntryTable(count);
    if (!decodeEntries(buf, start + 4, end, count, batch)) return { goodBytes: o, batches, problem: `malformed entries at byte ${o}` };
    for (const [path, e] of batch.entries()) table.set(path, e);
    o = end;
    batches++;
  }
  return { goodBytes: o, batches };
}
