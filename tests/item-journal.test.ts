// The item memo's journals (cache/item-journal.ts): records appended a line each, found again by a
// fresh process; a line that a crash, a full disk or bit rot damaged is never used, and the record
// is computed and appended again; gc and verify compact; kill -9 mid-append leaves lines that are
// whole or rejected.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { canonicalHash } from '../src/engine/canonical.js';
import { compactJournals, ItemJournal, journalLine, journalPath, journalsOf, readJournal } from '../src/cache/item-journal.js';
import { ItemMemo } from '../src/cache/item-memo.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const hash = (i: number) => canonicalHash({ item: i });
const json = (i: number, extra = '') => JSON.stringify({ label: `item ${i}${extra}`, value: { n: i }, refs: [] });

let tmp: { dir: string; cleanup: () => void } | undefined;
afterEach(() => tmp?.cleanup());
const root = () => (tmp = makeTempDir('lorabuild-journal-')).dir;

describe('item journals', () => {
  it('a record appended is found by a fresh reader; the last line of a key wins', () => {
    const dir = root();
    const writer = new ItemJournal(dir);
    // looked up before they exist: the writer then finds its own lines by where it appended them
    expect(writer.read('prepare', hash(0))).toBeUndefined();
    expect(writer.read('prepare', hash(7))).toBeUndefined();
    for (let i = 0; i < 300; i++) writer.append('prepare', hash(i), json(i));
    writer.append('prepare', hash(7), json(7, ' again'));
    expect(writer.read('prepare', hash(0))).toBe(json(0));
    expect(writer.read('prepare', hash(7))).toBe(json(7, ' again'));
    expect(writer.read('prepare', hash(299))).toBe(json(299));
    const reader = new ItemJournal(dir);
    for (let i = 0; i < 300; i++) expect(reader.read('prepare', hash(i))).toBe(i === 7 ? json(7, ' again') : json(i));
    expect(reader.read('prepare', hash(300))).toBeUndefined();
    expect(reader.read('validate', hash(1))).toBeUndefined();
    // one journal per key-hash prefix, each line in the journal of its key
    const journals = journalsOf(dir, 'prepare');
    expect(journals.length).toBeGreaterThan(150);
    for (const j of journals) for (const key of readJournal(j.path, j.prefix).records.keys()) expect(key.startsWith(j.prefix)).toBe(true);
  });

  it('a line with any byte changed, torn, or of a malformed key is never used', () => {
    const dir = root();
    const writer = new ItemJournal(dir);
    const [a, b, c] = [hash(1), hash(2), hash(3)];
    for (const [i, key] of [a, b, c].entries()) writer.append('prepare', key, json(i));
    const flip = (key: string, at: (line: string) => number) => {
      const path = journalPath(dir, 'prepare', key);
      const text = readFileSync(path, 'utf8');
      const start = text.indexOf(key);
      const pos = start + at(text.slice(start));
      writeFileSync(path, text.slice(0, pos) + String.fromCharCode(text.charCodeAt(pos) ^ 1) + text.slice(pos + 1));
    };
    flip(a, (line) => line.indexOf('"n":') + 4); // the value: {"n":0} -> {"n":1}, still valid JSON
    flip(b, (line) => 70); // the checksum
    const reader = new ItemJournal(dir);
    expect(reader.read('prepare', a)).toBeUndefined();
    expect(reader.read('prepare', b)).toBeUndefined();
    expect(reader.read('prepare', c)).toBe(json(2));
    // a torn line (a crash mid-write): rejected, and the next process's line starts on a line of its own
    const path = journalPath(dir, 'prepare', c);
    truncateSync(path, readFileSync(path).length - 5);
    expect(new ItemJournal(dir).read('prepare', c)).toBeUndefined();
    new ItemJournal(dir).append('prepare', c, json(2, ' again'));
    expect(new ItemJournal(dir).read('prepare', c)).toBe(json(2, ' again'));
    // a line whose key is not the journal's prefix, or not hex: skipped
    const other = hash(4);
    appendFileSync(path, journalLine(other, json(4)).replace(other, `${c.slice(0, 2)}${other.slice(2)}`));
    appendFileSync(path, `${'z'.repeat(64)} 00000000 {}\n\u0000\u0001garbage\n`);
    expect(new ItemJournal(dir).read('prepare', `${c.slice(0, 2)}${other.slice(2)}`)).toBeUndefined();
    expect(new ItemJournal(dir).read('prepare', c)).toBe(json(2, ' again'));
  });

  it('a folder, a FIFO or a link where a journal belongs is replaced, never written through or waited on', () => {
    const dir = root();
    const outside = join(dir, 'outside.txt');
    writeFileSync(outside, 'keep me');
    const keys = [hash(1), hash(2), hash(3)];
    mkdirSync(journalPath(dir, 'prepare', keys[0]), { recursive: true });
    execFileSync('mkfifo', [journalPath(dir, 'prepare', keys[1])]);
    symlinkSync(outside, journalPath(dir, 'prepare', keys[2]));
    const journal = new ItemJournal(dir);
    for (const key of keys) {
      expect(journal.read('prepare', key)).toBeUndefined();
      journal.append('prepare', key, json(1));
      expect(lstatSync(journalPath(dir, 'prepare', key)).isFile()).toBe(true);
      expect(new ItemJournal(dir).read('prepare', key)).toBe(json(1));
    }
    expect(readFileSync(outside, 'utf8')).toBe('keep me');
    // the kind's folder is a file: replaced too
    writeFileSync(join(dir, 'items', 'validate'), 'x');
    journal.append('validate', keys[0], json(0));
    expect(new ItemJournal(dir).read('validate', keys[0])).toBe(json(0));
  });

  it('through the item memo: a damaged record is computed again and put back, never served', () => {
    const dir = root();
    const cas = new Cas(dir);
    const blob = cas.putBuffer(Buffer.from('an image'));
    const memo = new ItemMemo(dir, cas);
    const key = memo.keyHash({ image: blob.sha256 });
    memo.put('prepare', key, 'one', { image: blob.sha256, width: 512 });
    expect(new ItemMemo(dir, cas).get('prepare', key)?.value).toEqual({ image: blob.sha256, width: 512 });
    const path = journalPath(dir, 'prepare', key);
    writeFileSync(path, readFileSync(path, 'utf8').replace('512', '513'));
    const next = new ItemMemo(dir, cas);
    expect(next.get('prepare', key)).toBeUndefined();
    next.put('prepare', key, 'one', { image: blob.sha256, width: 512 });
    expect(new ItemMemo(dir, cas).get('prepare', key)?.value).toEqual({ image: blob.sha256, width: 512 });
    // verify-style compaction keeps the whole line and drops the damaged one
    const { dropped } = compactJournals(dir, () => true);
    expect(dropped).toBe(1);
    expect(readJournal(path, key.slice(0, 2))).toMatchObject({ damaged: 0, lines: 1 });
  });

  it('compaction keeps what is asked for, the last line of each key, and clears what is no journal', () => {
    const dir = root();
    const journal = new ItemJournal(dir);
    for (let i = 0; i < 50; i++) journal.append('prepare', hash(i), json(i));
    for (let i = 0; i < 10; i++) journal.append('prepare', hash(i), json(i, ' v2'));
    const legacy = join(dir, 'items', 'prepare', 'ab');
    mkdirSync(legacy, { recursive: true });
    writeFileSync(join(legacy, `ab${'0'.repeat(62)}.json`), json(1));
    writeFileSync(join(dir, 'items', 'prepare', '.00.log.123.abcd.tmp'), 'left by a killed compaction');
    const { dropped, repaired } = compactJournals(dir, (id) => {
      const key = id.slice('prepare/'.length);
      return Array.from({ length: 20 }, (_, i) => hash(i)).includes(key);
    });
    // 30 records let go, and the older record's file
    expect(dropped).toBe(31);
    expect(repaired).toEqual(['removed items/prepare/.00.log.123.abcd.tmp: not a journal']);
    expect(existsSync(legacy)).toBe(false);
    const reader = new ItemJournal(dir);
    for (let i = 0; i < 50; i++) expect(reader.read('prepare', hash(i))).toBe(i < 10 ? json(i, ' v2') : i < 20 ? json(i) : undefined);
    let lines = 0;
    for (const j of journalsOf(dir, 'prepare')) lines += readJournal(j.path, j.prefix).lines;
    expect(lines).toBe(20);
    // a journal left with nothing is removed
    expect(readdirSync(join(dir, 'items', 'prepare')).length).toBe(journalsOf(dir, 'prepare').length);
    compactJournals(dir, () => false);
    expect(journalsOf(dir, 'prepare')).toEqual([]);
  });

  it('kill -9 while appending: every line read back is whole or rejected, and appending goes on', async () => {
    const dir = root();
    // a child appends records as fast as it can (big ones: more chances to be cut mid-line)
    const script = `
      import { ItemJournal } from ${JSON.stringify(join(REPO_ROOT, 'dist/cache/item-journal.js'))};
      import { canonicalHash } from ${JSON.stringify(join(REPO_ROOT, 'dist/engine/canonical.js'))};
      const j = new ItemJournal(process.argv[1]);
      for (let i = 0; ; i++) {
        j.append('prepare', canonicalHash({ item: i % 64 }), JSON.stringify({ label: 'item ' + i, value: { n: i, pad: 'x'.repeat(20000) }, refs: [] }));
        if (i === 200) process.stdout.write('going\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => resolve());
      child.on('exit', (code) => reject(new Error(`the appending child exited early (${code})`)));
    });
    await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const reader = new ItemJournal(dir);
    let found = 0;
    for (let k = 0; k < 64; k++) {
      const got = reader.read('prepare', canonicalHash({ item: k }));
      if (got === undefined) continue;
      const record = JSON.parse(got) as { value: { n: number; pad: string } };
      expect(record.value.n % 64).toBe(k);
      expect(record.value.pad).toHaveLength(20000);
      found++;
    }
    expect(found).toBeGreaterThan(32);
    const writer = new ItemJournal(dir);
    for (let k = 0; k < 64; k++) writer.append('prepare', canonicalHash({ item: k }), json(k));
    const after = new ItemJournal(dir);
    for (let k = 0; k < 64; k++) expect(after.read('prepare', canonicalHash({ item: k }))).toBe(json(k));
  });
});
