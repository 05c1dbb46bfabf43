// Local dataset folders in the three layouts, on real files in temp folders.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listLocalDataset } from '../src/datasets/local/list.js';
import { DatasetError } from '../src/datasets/local/errors.js';
import { parseCsv } from '../src/datasets/local/csv.js';
import { naturalCompare } from '../src/datasets/local/draft.js';
import { resolveDatasetFolder } from '../src/datasets/local/folder.js';
import { makeTempDir, writeFiles } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
let hashed: string[];

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-datasets-'));
  hashed = [];
});
afterEach(() => cleanup());

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

async function hashFile(abs: string): Promise<string> {
  hashed.push(abs);
  return sha(readFileSync(abs));
}

function list(folder: string, opts: { layout?: 'auto' | 'lab' | 'kohya' | 'imagefolder'; captionColumn?: string } = {}) {
  return listLocalDataset({ abs: resolveDatasetFolder(dir, folder), folder, layout: opts.layout ?? 'auto', captionColumn: opts.captionColumn ?? 'text', hashFile });
}

async function failure(promise: Promise<unknown>): Promise<DatasetError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(DatasetError);
    return err as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

describe('lab layout (image/N.ext + text/N.txt)', () => {
  it('pairs by number, keeps orphans on one side, lists stray files and hashes every file', async () => {
    writeFiles(dir, {
      'ds/image/0.jpeg': 'jpeg 0',
      'ds/image/1.png': 'png 1',
      'ds/image/2.PNG': 'png 2',
      'ds/image/10.webp': 'webp 10',
      'ds/image/notes.gif': 'gif',
      'ds/text/0.txt': 'one-line-art, a face, side view',
      'ds/text/1.txt': 'one-line-art, a cat',
      'ds/text/3.txt': 'one-line-art, caption without image',
      'ds/text/10.txt': 'ten',
      'ds/README.md': 'readme',
      'ds/.DS_Store': 'finder junk',
    });
    const { listing, files } = await list('ds');
    expect(listing.layout).toBe('lab');
    expect(listing.root).toBe('ds');
    expect(listing.entries.map((e) => e.id)).toEqual(['0', '1', '2', '3', '10']);
    const [e0, , e2, e3] = listing.entries;
    expect(e0.image).toEqual({ path: 'ds/image/0.jpeg', abs: join(dir, 'ds/image/0.jpeg'), sha256: sha('jpeg 0'), size: 6 });
    expect(e0.captionFile?.path).toBe('ds/text/0.txt');
    expect(e0.captionFile?.sha256).toBe(sha('one-line-art, a face, side view'));
    expect(e2.image?.path).toBe('ds/image/2.PNG');
    expect(e2.captionFile).toBeUndefined();
    expect(e3.image).toBeUndefined();
    expect(e3.captionFile?.path).toBe('ds/text/3.txt');
    expect(listing.stray).toEqual(['ds/README.md', 'ds/image/notes.gif']);
    expect(Object.keys(files).sort()).toEqual(
      ['ds/README.md', 'ds/image/0.jpeg', 'ds/image/1.png', 'ds/image/10.webp', 'ds/image/2.PNG', 'ds/image/notes.gif', 'ds/text/0.txt', 'ds/text/1.txt', 'ds/text/10.txt', 'ds/text/3.txt'].sort(),
    );
    expect(files['ds/README.md']).toBe(sha('readme'));
    expect(hashed).toHaveLength(10);
  });

  it('keeps two images with one number as two entries', async () => {
    writeFiles(dir, { 'ds/image/3.png': 'a', 'ds/image/3.jpeg': 'b', 'ds/text/3.txt': 'c' });
    const { listing } = await list('ds');
    expect(listing.entries.map((e) => [e.id, e.image?.path, e.captionFile?.path])).toEqual([
      ['3', 'ds/image/3.jpeg', 'ds/text/3.txt'],
      ['image/3.png', 'ds/image/3.png', undefined],
    ]);
  });

  it('resolves ~ and Windows separators in the folder', async () => {
    expect(resolveDatasetFolder('/proj', 'datasets\\one-line-art')).toBe('/proj/datasets/one-line-art');
    expect(resolveDatasetFolder('/proj', '/abs/ds')).toBe('/abs/ds');
    expect(resolveDatasetFolder('/proj', '~/ds')).not.toContain('~');
  });
});

describe('kohya layout (sidecar captions)', () => {
  it('pairs img.png with img.txt or img.caption across repeat folders', async () => {
    writeFiles(dir, {
      'k/10_cat/a.png': 'a',
      'k/10_cat/a.txt': 'cat a',
      'k/10_cat/a.caption': 'cat a again',
      'k/10_cat/b.jpg': 'b',
      'k/10_cat/b.caption': 'cat b',
      'k/5_dog/a.webp': 'dog a',
      'k/5_dog/z.txt': 'no image',
      'k/5_dog/a.npz': 'latents',
    });
    const { listing } = await list('k');
    expect(listing.layout).toBe('kohya');
    expect(listing.entries.map((e) => [e.id, e.image?.path ?? null, e.captionFile?.path ?? null])).toEqual([
      ['5_dog/a', 'k/5_dog/a.webp', null],
      ['5_dog/z', null, 'k/5_dog/z.txt'],
      ['10_cat/a', 'k/10_cat/a.png', 'k/10_cat/a.txt'],
      ['10_cat/b', 'k/10_cat/b.jpg', 'k/10_cat/b.caption'],
    ]);
    expect(listing.stray).toEqual(['k/10_cat/a.caption', 'k/5_dog/a.npz']);
  });
});

describe('imagefolder layout (metadata.jsonl / metadata.csv)', () => {
  it('reads metadata.jsonl with line numbers, unlisted images and rows whose image is missing', async () => {
    writeFiles(dir, {
      'hf/metadata.jsonl': ['{"file_name": "images/0.png", "text": "a red square"}', '', '{"file_name": "images\\\\1.png", "text": "a blue circle"}', '{"file_name": "gone.png", "text": "lost"}', '{"file_name": "images/2.png", "text": null}'].join('\n'),
      'hf/images/0.png': 'zero',
      'hf/images/1.png': 'one',
      'hf/images/2.png': 'two',
      'hf/extra.jpg': 'unlisted',
      'hf/LICENSE': 'mit',
    });
    const { listing, files } = await list('hf');
    expect(listing.layout).toBe('imagefolder');
    expect(listing.entries.map((e) => e.id)).toEqual(['images/0.png', 'images/1.png', 'gone.png', 'images/2.png', 'extra.jpg']);
    const [e0, e1, gone, e2, extra] = listing.entries;
    expect(e0.captionText).toEqual({ text: 'a red square', path: 'hf/metadata.jsonl', line: 1, column: 'text' });
    expect(e0.image?.sha256).toBe(sha('zero'));
    expect(e1.captionText?.line).toBe(3);
    expect(e1.image?.path).toBe('hf/images/1.png');
    expect(gone.image).toBeUndefined();
    expect(gone.captionText?.text).toBe('lost');
    expect(e2.captionText).toBeUndefined();
    expect(extra.captionText).toBeUndefined();
    expect(listing.stray).toEqual(['hf/LICENSE']);
    expect(files['hf/metadata.jsonl']).toBeDefined();
  });

  it('reads metadata.csv with quoted commas, quotes and newlines in captions', async () => {
    writeFiles(dir, {
      'hf/metadata.csv': 'file_name,en_text,zh_text\r\n0.png,"a cat, sitting","猫"\r\n1.png,"a ""quoted""\nword",狗\r\n',
      'hf/0.png': 'p0',
      'hf/1.png': 'p1',
    });
    const { listing } = await list('hf', { captionColumn: 'en_text' });
    expect(listing.entries.map((e) => [e.id, e.captionText?.text, e.captionText?.line])).toEqual([
      ['0.png', 'a cat, sitting', 2],
      ['1.png', 'a "quoted"\nword', 3],
    ]);
  });

  it('names the file, line and a suggestion for a wrong caption column', async () => {
    writeFiles(dir, { 'hf/metadata.jsonl': '{"file_name": "0.png", "en_text": "x", "zh_text": "y"}\n', 'hf/0.png': 'p' });
    const err = await failure(list('hf'));
    expect(err.message).toContain("hf/metadata.jsonl:1:1: has no caption column 'text'");
    expect(err.message).toContain('did you mean `caption_column: en_text`?');
    expect(err.diagnostic).toMatchObject({ severity: 'error', code: 'caption-column', file: 'hf/metadata.jsonl', line: 1 });
    writeFiles(dir, { 'hf2/metadata.csv': 'file_name,en_text\n0.png,x\n', 'hf2/0.png': 'p' });
    expect((await failure(list('hf2'))).message).toMatch(/hf2\/metadata.csv:1:1: has no caption column 'text'[\s\S]*did you mean `caption_column: en_text`/);
  });

  it('rejects bad JSON lines, duplicate rows, ragged CSV rows and unclosed quotes with their line', async () => {
    writeFiles(dir, { 'a/metadata.jsonl': '{"file_name": "0.png", "text": "x"}\n{"file_name": "1.png", text: y}\n', 'a/0.png': 'p' });
    expect((await failure(list('a'))).message).toMatch(/^a\/metadata.jsonl:2:1: is not valid JSON/);
    writeFiles(dir, { 'b/metadata.jsonl': '{"file_name": "0.png", "text": "x"}\n{"file_name": "./0.png", "text": "y"}\n', 'b/0.png': 'p' });
    expect((await failure(list('b'))).message).toMatch(/^b\/metadata.jsonl:2:1: file_name "\.\/0\.png" is already listed on line 1/);
    writeFiles(dir, { 'c/metadata.csv': 'file_name,text\n0.png,a,b\n', 'c/0.png': 'p' });
    expect((await failure(list('c'))).message).toMatch(/^c\/metadata.csv:2:1: has 3 fields, the header has 2/);
    writeFiles(dir, { 'd/metadata.csv': 'file_name,text\n0.png,"never closed\n', 'd/0.png': 'p' });
    expect((await failure(list('d'))).message).toMatch(/^d\/metadata.csv:2:7: quoted field is never closed/);
    writeFiles(dir, { 'e/metadata.jsonl': '{"file_name": "0.png", "text": ["a", "b"]}\n', 'e/0.png': 'p' });
    expect((await failure(list('e'))).message).toMatch(/caption column 'text' holds a list, not a string/);
  });
});

describe('path safety', () => {
  it('rejects metadata file names that leave the folder', async () => {
    writeFiles(dir, { 'secret.png': 'outside', 'hf/0.png': 'p', 'hf/metadata.jsonl': '{"file_name": "0.png", "text": "ok"}\n{"file_name": "../secret.png", "text": "steal"}\n' });
    const err = await failure(list('hf'));
    expect(err.message).toMatch(/^hf\/metadata.jsonl:2:1: file_name "\.\.\/secret\.png" points outside the dataset folder/);
    expect(err.diagnostic.code).toBe('path-escape');
    writeFiles(dir, { 'hf/metadata.jsonl': '{"file_name": "/etc/passwd", "text": "x"}\n' });
    expect((await failure(list('hf'))).message).toMatch(/file_name "\/etc\/passwd" is an absolute path/);
    writeFiles(dir, { 'hf/metadata.jsonl': '{"file_name": "a/..\\\\..\\\\secret.png", "text": "x"}\n' });
    expect((await failure(list('hf'))).message).toMatch(/points outside the dataset folder/);
  });

  it('rejects symlinks that lead outside the folder, follows those that stay inside', async () => {
    writeFiles(dir, { 'elsewhere/x.png': 'x', 'ds/image/0.png': 'p', 'ds/text/0.txt': 't' });
    symlinkSync(join(dir, 'ds/image/0.png'), join(dir, 'ds/image/1.png'));
    const inside = await list('ds');
    expect(inside.listing.entries.find((e) => e.id === '1')?.image?.sha256).toBe(sha('p'));
    symlinkSync(join(dir, 'elsewhere/x.png'), join(dir, 'ds/image/2.png'));
    const err = await failure(list('ds'));
    expect(err.message).toContain('ds/image/2.png: is a link to');
    expect(err.message).toContain('outside the dataset folder');
    expect(err.diagnostic.code).toBe('path-escape');
  });

  it('rejects a linked folder outside, and survives a link loop inside', async () => {
    writeFiles(dir, { 'elsewhere/x.png': 'x', 'k/a.png': 'a', 'k/a.txt': 'caption' });
    symlinkSync(join(dir, 'k'), join(dir, 'k/loop'));
    expect((await list('k')).listing.entries.map((e) => e.id)).toEqual(['a']);
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'k/out'));
    expect((await failure(list('k'))).message).toMatch(/k\/out: is a link to .*outside the dataset folder/);
  });
});

describe('layout detection', () => {
  it('explains an empty or imageless folder, a missing folder and a forced layout that does not fit', async () => {
    mkdirSync(join(dir, 'empty'));
    expect((await failure(list('empty'))).message).toMatch(/^empty: dataset folder is empty[\s\S]*hint: .*layout:/);
    writeFiles(dir, { 'docs/a.md': 'x' });
    expect((await failure(list('docs'))).message).toMatch(/holds no images/);
    expect((await failure(list('nope'))).message).toMatch(/^nope: dataset folder does not exist/);
    writeFiles(dir, { 'k/a.png': 'a', 'k/a.txt': 'b' });
    expect((await failure(list('k', { layout: 'lab' }))).message).toMatch(/has no image\/ or text\/ folder/);
    expect((await failure(list('k', { layout: 'imagefolder' }))).message).toMatch(/has no metadata.jsonl or metadata.csv/);
    writeFiles(dir, { 'split/train/0.png': 'p', 'split/train/metadata.jsonl': '{"file_name": "0.png", "text": "x"}\n' });
    expect((await failure(list('split'))).message).toMatch(/^split\/train\/metadata.jsonl: imagefolder metadata lies in the subfolder train\/[\s\S]*hint: set `folder: split\/train`/);
    expect((await list('split', { layout: 'kohya' })).listing.stray).toEqual(['split/train/metadata.jsonl']);
    writeFileSync(join(dir, 'afile'), 'x');
    expect((await failure(list('afile'))).message).toMatch(/is a file, not a folder/);
  });
});

describe('natural order of ids', () => {
  it('orders numbers by value, numbers before text, and is total', () => {
    const ids = ['10', 'b', '2', 'a10', 'a9', '02', '1', '10_cat/a', '5_dog/a', 'a', '99999999999999999999', '100000000000000000000'];
    expect([...ids].sort(naturalCompare)).toEqual(['1', '02', '2', '5_dog/a', '10', '10_cat/a', '99999999999999999999', '100000000000000000000', 'a', 'a9', 'a10', 'b']);
  });
});

describe('csv reader', () => {
  it('handles empty quoted fields, blank lines and a missing final newline', () => {
    expect(parseCsv('\uFEFFa,b\n\n"",x\ny,"z"')).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['', 'x'], line: 3 },
      { fields: ['y', 'z'], line: 4 },
    ]);
  });
});
