// The stat memo's files on disk (src/cache/stat-memo-format.ts, stat-memo-store.ts): a round trip,
// saves that append O(new entries) bytes, kill -9 of a real process in the middle of saving, and
// every kind of damage: a damaged part is dropped (never trusted) and the files it covered are
// hashed again. The kill test runs the built dist/ (npx tsc -p tsconfig.json first).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { crc32 } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { gcCache } from '../src/cache/gc.js';
import { journalPathOf } from '../src/cache/layout.js';
import { decodeJournal, EntryTable, JOURNAL_HEADER_BYTES, journalHeader, MAX_PATH_BYTES, sameAscii } from '../src/cache/stat-memo-format.js';
import { readStatMemo, statMemoEntries } from '../src/cache/stat-memo-store.js';
import { verifyCache } from '../src/cache/verify.js';
import { StatMemo } from '../src/engine/stat-memo.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

let tmp: { dir: string; cleanup: () => void };
beforeEach(() => {
  tmp = makeTempDir('lorabuild-statmemo-');
});
afterEach(() => tmp.cleanup());

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const LONG_AGO = new Date('2024-01-01T00:00:00Z');

/** synthetic entries: path i with stat (size i, mtime T + v, ino i) has hash sha(`${i}:${v}`) */
const T = 1_700_000_000_000;
const pathOf = (i: number) => `/data/set/images/${String(i).padStart(6, '0')}.png`;
const statOf = (i: number, v = 0) => ({ size: i, mtimeMs: T + v, ino: 1_000_000 + i });
const hashOf = (i: number, v = 0) => sha(`${i}:${v}`);

/** a memo file holding entries 0..n-1 (the first save of a fresh memo writes a base) */
function memoWith(file: string, n: number): void {
  const memo = StatMemo.load(file);
  for (let i = 0; i < n; i++) memo.record(pathOf(i), statOf(i), hashOf(i), true);
  memo.save();
}

/** real files, written long ago (not racy), and their true hashes */
function realFiles(dir: string, n: number, tag = ''): { path: string; sha256: string }[] {
  mkdirSync(dir, { recursive: true });
  const files = [];
  for (let i = 0; i < n; i++) {
    const path = join(dir, `f${tag}${i}.txt`);
    writeFileSync(path, `content ${tag} ${i}\n`);
    utimesSync(path, LONG_AGO, LONG_AGO);
    files.push({ path, sha256: sha(`content ${tag} ${i}\n`) });
  }
  return files;
}

describe('stat memo files: round trip and size of a save', () => {
  it('what is saved loads back, with unicode paths; a different stat is never a hit', () => {
    const file = join(tmp.dir, 'statmemo.bin');
    const memo = StatMemo.load(file);
    const paths = [pathOf(1), '/data/café/图像 01.png', '/data/a\u{1F600}b.png', `/${'x'.repeat(MAX_PATH_BYTES - 1)}`];
    paths.forEach((p, i) => memo.record(p, statOf(i), hashOf(i), true));
    // too long to save: used by this process only
    memo.record(`/${'y'.repeat(MAX_PATH_BYTES)}`, statOf(9), hashOf(9), true);
    memo.save();
    expect(existsSync(file)).toBe(true);
    const again = StatMemo.load(file);
    paths.forEach((p, i) => expect(again.lookup(p, statOf(i))).toBe(hashOf(i)));
    expect(again.lookup(`/${'y'.repeat(MAX_PATH_BYTES)}`, statOf(9))).toBeUndefined();
    expect(again.lookup(pathOf(1), { ...statOf(0), mtimeMs: T + 1 })).toBeUndefined();
    expect(again.lookup(pathOf(1), { ...statOf(0), ino: 7 })).toBeUndefined();
    expect(again.lookup(pathOf(1), { ...statOf(0), size: 8 })).toBeUndefined();
    expect(again.lookup('/data/not-there.png', statOf(0))).toBeUndefined();
    // the utf8 bytes of "café" read as code units are "cafÃ©": another path, never a hit
    expect(again.lookup('/data/cafÃ©/图像 01.png', statOf(1))).toBeUndefined();
    const latin = StatMemo.load(join(tmp.dir, 'latin.bin'));
    latin.record('/d/é', statOf(1), hashOf(1), true);
    latin.save();
    expect(StatMemo.load(join(tmp.dir, 'latin.bin')).lookup('/d/Ã©', statOf(1))).toBeUndefined();
    expect(StatMemo.load(join(tmp.dir, 'latin.bin')).lookup('/d/é', statOf(1))).toBe(hashOf(1));
    // (the two hash apart, so the compare itself is checked directly: a collision must not match either)
    expect(sameAscii(Buffer.from('/d/é'), 0, '/d/Ã©')).toBe(false);
    expect(sameAscii(Buffer.from('/d/e'), 0, '/d/e')).toBe(true);
    // a later save of a newer stat of the same path wins, through the journal
    again.record(pathOf(1), statOf(0, 5), hashOf(0, 5), true);
    again.save();
    const third = StatMemo.load(file);
    expect(third.lookup(pathOf(1), statOf(0, 5))).toBe(hashOf(0, 5));
    expect(third.lookup(pathOf(1), statOf(0))).toBeUndefined();
    expect(readStatMemo(file).problems).toEqual([]);
  });

  it('a one-entry save appends the same few bytes to a memo of 1,000 and of 10,000 entries', () => {
    const appended: number[] = [];
    for (const n of [1_000, 10_000]) {
      const file = join(tmp.dir, `memo-${n}.bin`);
      memoWith(file, n);
      const baseSize = statSync(file).size;
      const journalSize = statSync(journalPathOf(file)).size;
      const memo = StatMemo.load(file);
      memo.record(pathOf(n + 1), statOf(n + 1), hashOf(n + 1), true);
      memo.save();
      expect(statSync(file).size).toBe(baseSize);
      appended.push(statSync(journalPathOf(file)).size - journalSize);
      expect(StatMemo.load(file).lookup(pathOf(n + 1), statOf(n + 1))).toBe(hashOf(n + 1));
      expect(StatMemo.load(file).lookup(pathOf(n - 1), statOf(n - 1))).toBe(hashOf(n - 1));
    }
    expect(appended[0]).toBe(appended[1]);
    expect(appended[0]).toBeLessThan(200);
  });

  it('many small saves compact the journal into the base; nothing is lost', () => {
    const file = join(tmp.dir, 'statmemo.bin');
    memoWith(file, 2_000);
    let compactions = 0;
    for (let round = 0; round < 40; round++) {
      const before = statSync(journalPathOf(file)).size;
      const memo = StatMemo.load(file);
      for (let i = 0; i < 50; i++) memo.record(pathOf(2_000 + round * 50 + i), statOf(2_000 + round * 50 + i), hashOf(2_000 + round * 50 + i), true);
      memo.save();
      if (statSync(journalPathOf(file)).size < before) compactions++;
    }
    expect(compactions).toBeGreaterThan(0);
    const all = statMemoEntries(file);
    expect(all.size).toBe(4_000);
    const memo = StatMemo.load(file);
    for (let i = 0; i < 4_000; i++) expect(memo.lookup(pathOf(i), statOf(i))).toBe(hashOf(i));
  });

  it('prune drops the entries of files that are gone and compacts', () => {
    const file = join(tmp.dir, 'statmemo.bin');
    memoWith(file, 100);
    const memo = StatMemo.load(file);
    memo.record(pathOf(500), statOf(500), hashOf(500), true);
    memo.save();
    expect(StatMemo.prune(file, (p) => p !== pathOf(3) && p !== pathOf(500))).toBe(2);
    const all = statMemoEntries(file);
    expect(all.size).toBe(99);
    expect(all.has(pathOf(3))).toBe(false);
    expect(statSync(journalPathOf(file)).size).toBe(JOURNAL_HEADER_BYTES);
    // nothing to do: the files are left alone
    const mtime = statSync(file).mtimeMs;
    expect(StatMemo.prune(file, () => true)).toBe(0);
    expect(statSync(file).mtimeMs).toBe(mtime);
  });
});

describe('stat memo files: kill -9 while saving', () => {
  it('a process killed at random moments of its saves leaves only entries it really saved, with their hashes', async () => {
    const dist = join(REPO_ROOT, 'dist', 'engine', 'stat-memo.js');
    expect(existsSync(dist), 'build first: npx tsc -p tsconfig.json').toBe(true);
    const file = join(tmp.dir, 'cache', 'statmemo.bin');
    mkdirSync(join(tmp.dir, 'cache'));
    const script = join(tmp.dir, 'saver.mjs');
    // every save records a few hundred entries of a universe of 3,000 paths, each at a new version
    // v (mtime T + v, hash sha(`${i}:${v}`)), so both appends and compactions happen
    writeFileSync(
      script,
      `import { createHash } from 'node:crypto';
const { StatMemo } = await import(${JSON.stringify(pathToFileURL(dist).href)});
const [file, seed] = process.argv.slice(2);
const sha = (t) => createHash('sha256').update(t).digest('hex');
let v = Number(seed) * 1_000_000;
process.stdout.write('ready\\n');
for (;;) {
  const memo = StatMemo.load(file);
  const n = 50 + Math.floor(Math.random() * 400);
  for (let k = 0; k < n; k++) {
    const i = Math.floor(Math.random() * 3000);
    v++;
    memo.record('/data/set/images/' + String(i).padStart(6, '0') + '.png', { size: i, mtimeMs: ${T} + v, ino: 1_000_000 + i }, sha(i + ':' + v), true);
  }
  memo.save();
}
`,
    );
    let sawEntries = 0;
    for (let round = 1; round <= 8; round++) {
      const child = spawn(process.execPath, [script, file, String(round)], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 500));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      // everything that loads is an entry some save really wrote: its hash is the one for its stat
      const all = statMemoEntries(file);
      for (const [path, e] of all) {
        const i = Number(/(\d+)\.png$/.exec(path)?.[1]);
        expect(path).toBe(pathOf(i));
        expect(e.size).toBe(i);
        expect(e.ino).toBe(1_000_000 + i);
        expect(e.sha256).toBe(sha(`${i}:${e.mtimeMs - T}`));
      }
      sawEntries = Math.max(sawEntries, all.size);
      expect(() => StatMemo.load(file)).not.toThrow();
    }
    expect(sawEntries).toBeGreaterThan(0);
  }, 60_000);
});

describe('stat memo files: damage is dropped, never trusted', () => {
  /**
   * A memo over real files: `base` of them compacted into the base file, then `batches` journal
   * batches of `perBatch` files each.
   */
  function builtMemo(base = 20, batches = 3, perBatch = 5) {
    const dir = join(tmp.dir, 'files');
    const file = join(tmp.dir, 'cache', 'statmemo.bin');
    const baseFiles = realFiles(dir, base, 'b');
    const first = StatMemo.load(file);
    for (const f of baseFiles) first.record(f.path, statSync(f.path), f.sha256);
    first.save();
    const batchFiles: { path: string; sha256: string }[][] = [];
    const batchEnds: number[] = [];
    for (let b = 0; b < batches; b++) {
      const files = realFiles(dir, perBatch, `j${b}-`);
      const memo = StatMemo.load(file);
      for (const f of files) memo.record(f.path, statSync(f.path), f.sha256);
      memo.save();
      batchFiles.push(files);
      batchEnds.push(statSync(journalPathOf(file)).size);
    }
    expect(statSync(file).size).toBeGreaterThan(0);
    expect(readStatMemo(file).problems).toEqual([]);
    return { file, journal: journalPathOf(file), baseFiles, batchFiles, batchEnds, all: [...baseFiles, ...batchFiles.flat()] };
  }

  /** loads the memo and hashes every file: each hash must be the true one; returns how many were read */
  async function hashAll(file: string, files: { path: string; sha256: string }[]): Promise<number> {
    const memo = StatMemo.load(file);
    for (const f of files) expect(await memo.hashFile(f.path), f.path).toBe(f.sha256);
    return memo.stats.filesHashed;
  }

  /** makes the file's sha256 of `sha256` (hex) wrong wherever it is stored */
  function flipHash(path: string, sha256: string): void {
    const bytes = readFileSync(path);
    const at = bytes.indexOf(Buffer.from(sha256, 'hex'));
    expect(at).toBeGreaterThan(0);
    bytes[at + 5] ^= 0x01;
    writeFileSync(path, bytes);
  }

  it('undamaged: every file is a memo hit', async () => {
    const m = builtMemo();
    expect(await hashAll(m.file, m.all)).toBe(0);
  });

  it('a flipped byte in the base: the base is dropped and its files hashed again', async () => {
    const m = builtMemo();
    flipHash(m.file, m.baseFiles[7].sha256);
    expect(readStatMemo(m.file).problems.map((p) => p.why)).toEqual(['a checksum mismatch']);
    expect(await hashAll(m.file, m.all)).toBe(m.baseFiles.length);
  });

  it('a flipped byte in the middle of the journal: that batch and the ones after it are dropped', async () => {
    const m = builtMemo();
    flipHash(m.journal, m.batchFiles[1][2].sha256);
    expect(await hashAll(m.file, m.all)).toBe(m.batchFiles[1].length + m.batchFiles[2].length);
  });

  it('a torn tail (kill -9 during an append) drops only the incomplete batch', async () => {
    const m = builtMemo();
    const last = m.batchFiles[2].length;
    for (const cut of [m.batchEnds[2] - 1, m.batchEnds[1] + 1, m.batchEnds[1] + 9, Math.floor((m.batchEnds[1] + m.batchEnds[2]) / 2)]) {
      const copy = builtMemoCopy(m.file);
      truncateSync(journalPathOf(copy), cut);
      expect(readStatMemo(copy).problems[0].why).toMatch(/torn tail/);
      expect(await hashAll(copy, m.all), `cut at ${cut}`).toBe(last);
    }
    // cut exactly at the end of a batch: nothing lost, nothing damaged
    const copy = builtMemoCopy(m.file);
    truncateSync(journalPathOf(copy), m.batchEnds[1]);
    expect(readStatMemo(copy).problems).toEqual([]);
    expect(await hashAll(copy, m.all)).toBe(last);
  });

  let copies = 0;
  function builtMemoCopy(file: string): string {
    const dir = join(tmp.dir, `copy-${copies++}`);
    mkdirSync(dir);
    const copy = join(dir, 'statmemo.bin');
    writeFileSync(copy, readFileSync(file));
    writeFileSync(journalPathOf(copy), readFileSync(journalPathOf(file)));
    return copy;
  }

  it('a truncated base, a garbage header, absurd length and count fields: the base is dropped', async () => {
    const m = builtMemo();
    const damages: [string, (b: Buffer) => Buffer][] = [
      ['truncated', (b) => b.subarray(0, b.length - 10)],
      ['truncated into its header', (b) => b.subarray(0, 20)],
      ['empty', () => Buffer.alloc(0)],
      ['garbage header', (b) => Buffer.concat([Buffer.from('garbage!'), b.subarray(8)])],
      ['a huge count', (b) => (b.writeUInt32LE(0xfffffff0, 12), b)],
      ['a huge table size', (b) => (b.writeUInt32LE(0x80000000, 16), b)],
      ['a huge body length', (b) => (b.writeUInt32LE(0xfffffff0, 20), b)],
      ['another format version', (b) => (b.writeUInt32LE(2, 8), b)],
    ];
    for (const [name, damage] of damages) {
      const copy = builtMemoCopy(m.file);
      writeFileSync(copy, damage(Buffer.from(readFileSync(copy))));
      expect(readStatMemo(copy).problems.length, name).toBe(1);
      expect(await hashAll(copy, m.all), name).toBe(m.baseFiles.length);
    }
  });

  it('a garbage journal header or a huge batch length: the journal (from there) is dropped', async () => {
    const m = builtMemo();
    const journalFiles = m.batchFiles.flat().length;
    const header = builtMemoCopy(m.file);
    writeFileSync(journalPathOf(header), Buffer.concat([Buffer.from('garbage!'), readFileSync(journalPathOf(header)).subarray(8)]));
    expect(await hashAll(header, m.all)).toBe(journalFiles);
    const huge = builtMemoCopy(m.file);
    const bytes = readFileSync(journalPathOf(huge));
    bytes.writeUInt32LE(0xfffffff0, m.batchEnds[0]);
    writeFileSync(journalPathOf(huge), bytes);
    expect(await hashAll(huge, m.all)).toBe(m.batchFiles[1].length + m.batchFiles[2].length);
  });

  it('a batch with a correct checksum but a path longer than 4096 bytes is refused', () => {
    const path = `/${'p'.repeat(MAX_PATH_BYTES + 10)}`;
    const entry = Buffer.alloc(2 + path.length + 24 + 32);
    entry.writeUInt16LE(path.length, 0);
    entry.write(path, 2, 'latin1');
    entry.writeDoubleLE(1, 2 + path.length);
    const payload = Buffer.concat([Buffer.from([1, 0, 0, 0]), entry]);
    const head = Buffer.alloc(8);
    head.writeUInt32LE(payload.length, 0);
    head.writeUInt32LE(crc32(payload, crc32(head.subarray(0, 4))), 4);
    const table = new EntryTable();
    const read = decodeJournal(Buffer.concat([journalHeader(), head, payload]), table);
    expect(read.problem).toMatch(/malformed/);
    expect(table.size).toBe(0);
  });

  it('a base with a correct checksum but a table that does not match its entries is refused', () => {
    const file = join(tmp.dir, 'statmemo.bin');
    memoWith(file, 10);
    const good = readFileSync(file);
    const firstSlot = (b: Buffer) => {
      for (let at = 32; ; at += 4) if (b.readUInt32LE(at) !== 0) return at;
    };
    const resealed = (b: Buffer) => (b.writeUInt32LE(crc32(b.subarray(28), crc32(b.subarray(0, 24))), 24), b);
    const emptied = Buffer.from(good);
    emptied.writeUInt32LE(0, firstSlot(emptied));
    const outside = Buffer.from(good);
    outside.writeUInt32LE(good.length, firstSlot(outside));
    for (const [name, bytes] of [['a slot emptied', resealed(emptied)], ['a slot pointing past the end', resealed(outside)]] as const) {
      writeFileSync(file, bytes);
      expect(readStatMemo(file).problems.map((p) => p.why), name).toEqual([expect.stringMatching(/^a table/)]);
      expect(StatMemo.load(file).lookup(pathOf(1), statOf(1)), name).toBeUndefined();
    }
    // the same resealing of an unchanged base is accepted (the test's checksum is the real one)
    writeFileSync(file, resealed(Buffer.from(good)));
    expect(readStatMemo(file).problems).toEqual([]);
  });

  it('a folder or a FIFO where a memo file belongs: dropped, files hashed again, and the next save repairs it', async () => {
    const m = builtMemo();
    rmSync(m.file);
    mkdirSync(m.file);
    rmSync(m.journal);
    execFileSync('mkfifo', [m.journal]);
    expect(
      readStatMemo(m.file)
        .problems.map((p) => p.why)
        .sort(),
    ).toEqual(['a FIFO where a file belongs', 'a folder where a file belongs']);
    const memo = StatMemo.load(m.file);
    for (const f of m.all) expect(await memo.hashFile(f.path)).toBe(f.sha256);
    expect(memo.stats.filesHashed).toBe(m.all.length);
    memo.save();
    expect(readStatMemo(m.file).problems).toEqual([]);
    expect(await hashAll(m.file, m.all)).toBe(0);
  });

  it('after any damage, the next save compacts and the memo is whole again', async () => {
    const m = builtMemo();
    truncateSync(m.journal, m.batchEnds[2] - 3);
    const memo = StatMemo.load(m.file);
    for (const f of m.all) await memo.hashFile(f.path);
    memo.save();
    expect(readStatMemo(m.file).problems).toEqual([]);
    expect(await hashAll(m.file, m.all)).toBe(0);
  });
});

describe('cache verify and the stat memo', () => {
  it('removes a damaged base or journal and an old statmemo.json, and says so; a second verify is clean', async () => {
    const root = join(tmp.dir, 'cache');
    const file = join(root, 'statmemo.bin');
    memoWith(file, 50);
    const memo = StatMemo.load(file);
    memo.record(pathOf(70), statOf(70), hashOf(70), true);
    memo.save();
    expect((await verifyCache(root)).repaired).toEqual([]);

    flipHash(file, hashOf(3));
    truncateSync(journalPathOf(file), statSync(journalPathOf(file)).size - 1);
    writeFileSync(join(root, 'statmemo.json'), '{"version":1,"entries":{}}');
    const report = await verifyCache(root);
    expect(report.repaired).toEqual([
      'removed statmemo.bin: a checksum mismatch',
      expect.stringMatching(/^removed statmemo\.bin\.journal: a torn tail/),
      'removed statmemo.json: a stat memo of an older format',
    ]);
    expect(existsSync(file)).toBe(false);
    expect((await verifyCache(root)).repaired).toEqual([]);

    mkdirSync(file);
    // a compaction killed between its write and its rename (pid 2^22 + 1 is above Linux's pid_max)
    const leftover = join(root, '.statmemo.bin.4194305.0123abcd.tmp');
    writeFileSync(leftover, 'x');
    utimesSync(leftover, LONG_AGO, LONG_AGO);
    const mine = join(root, `.statmemo.bin.${process.pid}.0123abcd.tmp`);
    writeFileSync(mine, 'x');
    utimesSync(mine, LONG_AGO, LONG_AGO);
    expect((await verifyCache(root)).repaired).toEqual([
      'removed statmemo.bin: a folder where a file belongs',
      'removed .statmemo.bin.4194305.0123abcd.tmp: left by a stat memo compaction that was killed',
    ]);
    expect(existsSync(mine)).toBe(true);
  });

  function flipHash(path: string, sha256: string): void {
    const bytes = readFileSync(path);
    const at = bytes.indexOf(Buffer.from(sha256, 'hex'));
    expect(at).toBeGreaterThan(0);
    bytes[at] ^= 0x80;
    writeFileSync(path, bytes);
  }

  it('cache gc removes an old statmemo.json and leaves the new files to prune', () => {
    const root = join(tmp.dir, 'cache');
    memoWith(join(root, 'statmemo.bin'), 10);
    writeFileSync(join(root, 'statmemo.json'), '{"version":1,"entries":{}}');
    gcCache(root, { keepLast: 1 }, new Set());
    expect(existsSync(join(root, 'statmemo.json'))).toBe(false);
    expect(statMemoEntries(join(root, 'statmemo.bin')).size).toBe(10);
  });
});
