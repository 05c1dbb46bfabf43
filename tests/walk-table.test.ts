// The walk's files as columns (src/datasets/local/walk.ts WalkTable) and as objects made from them
// on first read: sorted by path even where a name sorts between a folder and its contents
// ('a.txt' < 'a/b.txt', visited after it), each path with its own size, mtime and inode.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { walkDatasetFolderSync } from '../src/datasets/local/walk.js';
import { makeTempDir, writeFiles } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-walk-table-');
afterAll(tmp.cleanup);

describe('walk table', () => {
  it('lists files in path order with their own stats, as columns and as objects', () => {
    const root = join(tmp.dir, 'data');
    // sizes all differ, so a stat moved to another path shows
    writeFiles(root, { 'a/b.txt': 'xx', 'a/c/d.txt': 'xxx', 'a.txt': 'x', 'a-z.txt': 'xxxx', 'b.txt': 'xxxxx', 'a/.hidden': 'no' });
    const walk = walkDatasetFolderSync(root, 'data');
    const expected = ['a-z.txt', 'a.txt', 'a/b.txt', 'a/c/d.txt', 'b.txt'];
    expect(walk.table.rels).toEqual(expected);
    expect(walk.files.map((f) => f.rel)).toEqual(expected);
    walk.files.forEach((f, i) => {
      const st = fs.lstatSync(join(root, f.rel));
      expect(f.abs).toBe(join(root, f.rel));
      expect([f.size, f.mtimeMs, f.ino]).toEqual([st.size, st.mtimeMs, st.ino]);
      expect([...walk.table.numbers.subarray(3 * i, 3 * i + 3)]).toEqual([st.size, st.mtimeMs, st.ino]);
    });
    // made once
    expect(walk.files).toBe(walk.files);
  });
});
