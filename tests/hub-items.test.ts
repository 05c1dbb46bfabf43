// hub datasets, read side: parquet rows streamed by row group, image/caption column shapes,
// seeded caption choice, column checks with suggestions, corrupt and truncated shards.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatasetSchema, type DatasetSpec } from '../src/config/schema.js';
import { chooseCaption } from '../src/datasets/hub/caption-choice.js';
import { HubError } from '../src/datasets/hub/errors.js';
import { readParquetItems, type HubItem } from '../src/datasets/hub/items.js';
import type { ShardFile } from '../src/datasets/hub/parquet.js';
import { pngBytes, pokemonParquet, zstdListParquet } from './helpers/parquet-fixtures.js';

let dir: string;
const signal = new AbortController().signal;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lorabuild-hub-items-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** parquet files on disk, as readParquetItems reads them */
async function listingOf(shards: Array<{ name: string; bytes: Uint8Array }>): Promise<ShardFile[]> {
  const listed: ShardFile[] = [];
  for (const { name, bytes } of shards) {
    const abs = join(dir, name.replaceAll('/', '_'));
    await writeFile(abs, bytes);
    listed.push({ path: name, abs, size: bytes.length });
  }
  return listed;
}

function spec(fields: Partial<DatasetSpec>): DatasetSpec {
  return DatasetSchema.parse({ hub: 'lab/x', ...fields });
}

async function collect(shards: ShardFile[], ds: DatasetSpec, into: HubItem[] = []): Promise<HubItem[]> {
  for await (const item of readParquetItems(shards, 'lab/x', ds, signal)) into.push(item);
  return into;
}

async function failure(promise: Promise<unknown>): Promise<HubError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubError);
  return err as HubError;
}

describe('column checks', () => {
  it('a wrong caption_column lists the columns and suggests en_text for text', async () => {
    const listing = await listingOf([{ name: 'data/train.parquet', bytes: pokemonParquet([{ image: await pngBytes(1), path: '1.png', en: 'a', zh: 'b' }]) }]);
    for (const ds of [spec({ caption_column: 'text' }), spec({})]) {
      const err = await failure(collect(listing, ds));
      expect(err.code).toBe('unknown-column');
      expect(err.message).toContain('no column `text` (caption_column) in data/train.parquet');
      expect(err.message).toContain('`image`, `en_text`, `zh_text`');
      expect(err.hint).toBe('did you mean `en_text`? set caption_column: en_text');
      expect(err.toDiagnostic()).toMatchObject({ severity: 'error', code: 'unknown-column', file: 'data/train.parquet' });
    }
    const img = await failure(collect(listing, spec({ caption_column: 'en_text', image_column: 'imgae' })));
    expect(img.message).toContain('`imgae` (image_column)');
    expect(img.hint).toContain('did you mean `image`?');
  });
});

describe('row shapes', () => {
  it('image structs with or without bytes, null captions, rows numbered across shards', async () => {
    const a = await pngBytes(1);
    const b = await pngBytes(2);
    const listing = await listingOf([
      { name: 'data/train-00000-of-00002.parquet', bytes: pokemonParquet([{ image: a, path: 'a.png', en: 'first', zh: '一' }]) },
      {
        name: 'data/train-00001-of-00002.parquet',
        bytes: pokemonParquet([
          { image: null, path: 'https://example.org/b.png', en: 'only a path', zh: '二' },
          { image: b, path: null, en: null as unknown as string, zh: '三' },
        ]),
      },
    ]);
    const items = await collect(listing, spec({ caption_column: 'en_text' }));
    expect(items.map((i) => [i.row, i.origin])).toEqual([
      [0, 'data/train-00000-of-00002.parquet row 0'],
      [1, 'data/train-00001-of-00002.parquet row 0'],
      [2, 'data/train-00001-of-00002.parquet row 1'],
    ]);
    expect(Buffer.from(items[0].image!).equals(Buffer.from(a))).toBe(true);
    expect(items[1].image).toBeNull();
    expect(items[1].error).toBe('image struct has no bytes (only a path: https://example.org/b.png)');
    expect(items[1].caption).toEqual({ text: 'only a path' });
    expect(items[2].caption).toBeNull();
    expect(items[2].error).toBeUndefined();
  });

  it('plain binary captions are decoded as UTF-8, and invalid UTF-8 is reported on the row', async () => {
    const image = await pngBytes(3);
    const bytes = parquetWriteBuffer({
      columnData: [
        { name: 'image', data: [image, image] },
        { name: 'text', data: [new TextEncoder().encode('ピカチュウ'), new Uint8Array([0xff, 0xfe])] },
      ],
      schema: [
        { name: 'schema', num_children: 2 },
        { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
        { name: 'text', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      ],
    });
    const items = await collect(await listingOf([{ name: 'bin.parquet', bytes: new Uint8Array(bytes) }]), spec({}));
    expect(items[0].caption).toEqual({ text: 'ピカチュウ' });
    expect(items[1].caption).toBeNull();
    expect(items[1].error).toBe('caption is not valid UTF-8');
  });

  it('list captions: first, or a seeded random choice that is recorded and reproducible', async () => {
    const image = await pngBytes(4);
    const rows = Array.from({ length: 40 }, (_, i) => ({ image, captions: [`a ${i}`, `b ${i}`, `c ${i}`, `d ${i}`] }));
    rows.push({ image, captions: [] });
    const listing = await listingOf([{ name: 'train.parquet', bytes: zstdListParquet(rows, { rowGroupSize: 7 }) }]);
    const first = await collect(listing, spec({ image_column: 'jpg', caption_column: 'captions' }));
    expect(first.slice(0, 40).every((i, n) => i.caption!.text === `a ${n}` && i.caption!.choice!.index === 0 && i.caption!.choice!.rule === 'first')).toBe(true);
    expect(first[40].caption).toBeNull();

    const random = spec({ image_column: 'jpg', caption_column: 'captions', caption_choice: 'random', caption_seed: 7 });
    const one = await collect(listing, random);
    const two = await collect(listing, random);
    expect(one.map((i) => i.caption?.choice)).toEqual(two.map((i) => i.caption?.choice));
    const indexes = new Set(one.slice(0, 40).map((i) => i.caption!.choice!.index));
    expect(indexes.size).toBe(4);
    one.slice(0, 40).forEach((item, n) => expect(item.caption!.text).toBe(`${'abcd'[item.caption!.choice!.index]} ${n}`));
    const other = await collect(listing, { ...random, caption_seed: 8 });
    expect(other.map((i) => i.caption?.choice?.index)).not.toEqual(one.map((i) => i.caption?.choice?.index));
  });

  it('chooseCaption depends only on seed and row', () => {
    expect(chooseCaption(['x', 'y'], 'first', 5, 9)).toEqual({ text: 'x', choice: { index: 0, of: 2, rule: 'first' } });
    expect(chooseCaption(['x', 'y', 'z'], 'random', 1, 2)).toEqual(chooseCaption(['x', 'y', 'z'], 'random', 1, 2));
    expect(chooseCaption([], 'random', 1, 2)).toBeNull();
  });
});

describe('damaged shards', () => {
  it('a truncated file is named', async () => {
    const whole = pokemonParquet([{ image: await pngBytes(5), path: null, en: 'x', zh: 'y' }]);
    const listing = await listingOf([{ name: 'data/train-00000-of-00001.parquet', bytes: whole.subarray(0, whole.length - 100) }]);
    listing[0].size = whole.length - 100;
    const err = await failure(collect(listing, spec({ caption_column: 'en_text' })));
    expect(err.code).toBe('bad-parquet');
    expect(err.message).toContain('data/train-00000-of-00001.parquet: corrupt or truncated parquet file');
  });

  it('a file shorter than its listing says is named', async () => {
    const whole = pokemonParquet([{ image: await pngBytes(5), path: null, en: 'x', zh: 'y' }]);
    const listing = await listingOf([{ name: 'short.parquet', bytes: whole }]);
    listing[0].size += 10;
    const err = await failure(collect(listing, spec({ caption_column: 'en_text' })));
    expect(err.message).toContain('short.parquet');
    expect(err.message).toContain('expected');
  });

  it('streams row groups: rows before a damaged row group arrive, then the error names file and row group', async () => {
    const rows = await Promise.all([0, 1, 2, 3, 4, 5].map(async (i) => ({ image: await pngBytes(i), path: `${i}.png`, en: `p ${i}`, zh: `${i}` })));
    const bytes = pokemonParquet(rows, { rowGroupSize: 2 });
    const metadata = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
    const third = metadata.row_groups[2].columns[0].meta_data!;
    const damaged = Uint8Array.from(bytes);
    damaged.fill(0xff, Number(third.dictionary_page_offset ?? third.data_page_offset), Number(third.dictionary_page_offset ?? third.data_page_offset) + 16);
    const listing = await listingOf([{ name: 'data/train-00000-of-00001.parquet', bytes: damaged }]);
    const seen: HubItem[] = [];
    const err = await failure(collect(listing, spec({ caption_column: 'en_text' }), seen));
    expect(seen.map((i) => i.caption?.text)).toEqual(['p 0', 'p 1', 'p 2', 'p 3']);
    expect(err.message).toContain('data/train-00000-of-00001.parquet');
    expect(err.message).toContain('row group 2');
  });
});
