// Parquet shards read in bounded memory: the footer is read and checked first (magic, sizes,
// offsets inside the file), then each row group is read page by page: one page of each column in
// memory at a time, rows handed on as soon as every column has them. A 600 MB row group of images
// costs a few pages of memory, not the row group (several times over, as a whole-group read did).
// Page decoding (encodings, dictionaries, definition/repetition levels, nested assembly) is
// hyparquet's; compression codecs come from hyparquet-compressors except LZ4 (./lz4.ts).
import { open, type FileHandle } from 'node:fs/promises';
import { parquetMetadata, parquetSchema } from 'hyparquet';
import type { ColumnChunk, DecodedArray, FileMetaData, PageHeader, ParquetRow, SchemaTree } from 'hyparquet';
import { parquetHeader, readPage } from 'hyparquet/src/column.js';
import { assembleNested } from 'hyparquet/src/assemble.js';
import { convert, DEFAULT_PARSERS } from 'hyparquet/src/convert.js';
import { getTreePath } from 'hyparquet/src/schema.js';
import { compressors as shippedCompressors } from 'hyparquet-compressors';
import { HubError } from './errors.js';
import { decompressLz4, decompressLz4Raw } from './lz4.js';
import { formatBytes } from './bytes.js';

/**
 * A page bigger than this (compressed or not) is refused: it would have to sit in memory whole.
 * LORABUILD_MAX_PARQUET_PAGE_BYTES moves the limit (a machine with the memory for a bigger page).
 */
function maxPageBytes(): number {
  const set = Number(process.env.LORABUILD_MAX_PARQUET_PAGE_BYTES);
  return Number.isSafeInteger(set) && set > 0 ? set : 256 * 1024 * 1024;
}
/** the footer of a parquet file is read whole */
const MAX_FOOTER_BYTES = 64 * 1024 * 1024;
const HEADER_WINDOW = 64 * 1024;
const MAX_HEADER_BYTES = 16 * 1024 * 1024;

const compressors = { ...shippedCompressors, LZ4: decompressLz4, LZ4_RAW: decompressLz4Raw };

/** A parquet file to read: its repo path (for messages), where it is, and the size the listing says. */
export interface ShardFile {
  path: string;
  abs: string;
  size: number;
}

export interface OpenShard {
  shard: ShardFile;
  handle: FileHandle;
  metadata: FileMetaData;
  /** top-level column names */
  columns: string[];
  close(): Promise<void>;
}

function corrupt(shard: ShardFile, what: string, cause?: unknown): HubError {
  return new HubError('bad-parquet', `${shard.path}: corrupt or truncated parquet file (${what})`, {
    file: shard.path,
    hint: 'delete it from the Hugging Face cache and run again to download it afresh; if it persists, the dataset file itself is damaged',
    cause,
  });
}

/** What went wrong, without JavaScript internals: a TypeError inside the decoder means malformed data. */
function describe(err: unknown): string {
  const internal = err instanceof TypeError || err instanceof RangeError || !(err instanceof Error) || /\b(undefined|NaN|null)\b/.test(err.message);
  return internal ? 'its data does not match its own schema' : (err as Error).message.replace(/^parquet /, '');
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buffer : buffer.subarray(0, done);
}

async function readFooter(shard: ShardFile, handle: FileHandle): Promise<FileMetaData> {
  const { size } = await handle.stat();
  if (size !== shard.size) throw corrupt(shard, `${size} bytes on disk, ${shard.size} expected`);
  if (size < 12) throw corrupt(shard, `only ${size} bytes`);
  const head = Buffer.from(await readAt(handle, 0, 4)).toString('latin1');
  const tail = Buffer.from(await readAt(handle, size - 8, 8));
  const magic = tail.toString('latin1', 4);
  if (head === 'PARE' || magic === 'PARE') {
    throw new HubError('bad-parquet', `${shard.path}: the parquet file is encrypted (PARE), and lorabuild cannot read encrypted parquet`, {
      file: shard.path,
      hint: 'use an unencrypted copy of the dataset (on the hub: revision: refs/convert/parquet, if the hub converted it)',
    });
  }
  if (head !== 'PAR1' || magic !== 'PAR1') throw corrupt(shard, 'no PAR1 magic at its start and end');
  const footer = tail.readUInt32LE(0);
  if (footer > size - 12) throw corrupt(shard, `footer of ${footer} bytes does not fit in ${size} bytes`);
  if (footer > MAX_FOOTER_BYTES) throw corrupt(shard, `footer of ${footer} bytes is larger than lorabuild reads`);
  const bytes = await readAt(handle, size - 8 - footer, footer + 8);
  try {
    return parquetMetadata(bytes.buffer as ArrayBuffer);
  } catch (err) {
    throw corrupt(shard, `its footer does not parse: ${describe(err)}`, err);
  }
}

/** Where a column chunk starts: its dictionary page, if it has one (0 is written by some tools for "none"). */
function chunkStart(chunk: ColumnChunk): bigint {
  const meta = chunk.meta_data!;
  const dict = meta.dictionary_page_offset;
  return dict !== undefined && dict > 0n && dict < meta.data_page_offset ? dict : meta.data_page_offset;
}

function checkLayout(shard: ShardFile, metadata: FileMetaData): void {
  metadata.row_groups.forEach((group, index) => {
    if (group.num_rows < 0n) throw corrupt(shard, `row group ${index} has ${group.num_rows} rows`);
    for (const chunk of group.columns) {
      const meta = chunk.meta_data;
      if (!meta) throw corrupt(shard, `row group ${index} has a column without metadata`);
      const start = chunkStart(chunk);
      const end = start + meta.total_compressed_size;
      if (start < 4n || meta.total_compressed_size < 0n || end > BigInt(shard.size)) {
        throw corrupt(shard, `row group ${index} column ${meta.path_in_schema.join('.')} lies outside the file`);
      }
    }
  });
}

export async function openShard(shard: ShardFile): Promise<OpenShard> {
  let handle: FileHandle;
  try {
    handle = await open(shard.abs, 'r');
  } catch (err) {
    throw corrupt(shard, `it cannot be opened: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, err);
  }
  try {
    const metadata = await readFooter(shard, handle);
    checkLayout(shard, metadata);
    const columns = parquetSchema(metadata).children.map((child) => child.element.name);
    return { shard, handle, metadata, columns, close: () => handle.close() };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Row groups as [rowStart, rowEnd) ranges of the shard. */
export function rowGroupRanges(metadata: FileMetaData): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let start = 0;
  for (const group of metadata.row_groups) {
    const rows = Number(group.num_rows);
    ranges.push([start, start + rows]);
    start += rows;
  }
  return ranges;
}

type Decoder = Parameters<typeof readPage>[2];

/** One leaf column of one row group, decoded a page at a time into `values`. */
class LeafCursor {
  /** decoded values not yet handed on (for a repeated leaf the last one may continue on the next page) */
  values: unknown[] = [];
  done = false;
  private position: number;
  private readonly end: number;
  private dictionary: DecodedArray | undefined;
  private readonly repeated: boolean;

  constructor(
    private readonly open: OpenShard,
    private readonly group: number,
    chunk: ColumnChunk,
    readonly path: string[],
    private readonly decoder: Decoder,
  ) {
    const meta = chunk.meta_data!;
    this.position = Number(chunkStart(chunk));
    this.end = this.position + Number(meta.total_compressed_size);
    this.repeated = decoder.schemaPath.some((node) => node.element.repetition_type === 'REPEATED');
  }

  /** values that are whole rows (a repeated leaf's last row may go on in the next page) */
  get complete(): number {
    return this.done || !this.repeated ? this.values.length : Math.max(0, this.values.length - 1);
  }

  private fail(what: string, cause?: unknown): HubError {
    return corrupt(this.open.shard, `row group ${this.group} column ${this.path.join('.')}: ${what}`, cause);
  }

  private async header(): Promise<{ header: PageHeader; length: number }> {
    const left = this.end - this.position;
    for (let window = Math.min(HEADER_WINDOW, left); ; window = Math.min(window * 4, left, MAX_HEADER_BYTES)) {
      const bytes = await readAt(this.open.handle, this.position, window);
      const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
      try {
        const header = parquetHeader(reader);
        if (reader.offset <= bytes.length) return { header, length: reader.offset };
      } catch (err) {
        if (window >= left || window >= MAX_HEADER_BYTES) throw this.fail(`a page header does not parse (${describe(err)})`, err);
        continue;
      }
      if (window >= left || window >= MAX_HEADER_BYTES) throw this.fail('a page header runs past the column');
    }
  }

  private refuseBigPage(header: PageHeader): void {
    const size = Math.max(header.compressed_page_size, header.uncompressed_page_size);
    const limit = maxPageBytes();
    if (size <= limit) return;
    throw new HubError('bad-parquet', `${this.open.shard.path}: row group ${this.group} column ${this.path.join('.')} has a page of ${formatBytes(size)}; lorabuild decodes one page at a time and refuses pages over ${formatBytes(limit)}`, {
      file: this.open.shard.path,
      hint:
        'the file was written with one huge page per column. If the dataset is not yours, try the hub\'s own parquet conversion (revision: refs/convert/parquet), ' +
        `or, with the memory for it, raise the limit: LORABUILD_MAX_PARQUET_PAGE_BYTES=${size}. ` +
        'If it is yours, rewrite it with small pages, e.g. pyarrow.parquet.write_table(table, path, row_group_size=1000, data_page_size=1 << 20)',
    });
  }

  /** Decodes the next page (dictionary pages are kept for the data pages after them). */
  async readPage(): Promise<void> {
    if (this.position >= this.end) {
      this.done = true;
      return;
    }
    const { header, length } = await this.header();
    const size = header.compressed_page_size;
    if (!Number.isSafeInteger(size) || size < 0 || this.position + length + size > this.end) throw this.fail('a page runs past the end of its column');
    if (!Number.isSafeInteger(header.uncompressed_page_size) || header.uncompressed_page_size < 0) throw this.fail('a page announces a negative size');
    this.refuseBigPage(header);
    const bytes = await readAt(this.open.handle, this.position + length, size);
    this.position += length + size;
    if (bytes.length !== size) throw this.fail('the file ends inside a page');
    const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
    try {
      if (header.type === 'DICTIONARY_PAGE') {
        const { data } = readPage(reader, header, this.decoder, undefined, undefined, 0);
        if (data) this.dictionary = convert(data, this.decoder);
      } else if (header.type === 'DATA_PAGE' || header.type === 'DATA_PAGE_V2') {
        const { data } = readPage(reader, header, this.decoder, this.dictionary, this.values as DecodedArray, 0);
        if (data && data !== (this.values as unknown)) {
          const decoded = data as ArrayLike<unknown>;
          for (let i = 0; i < decoded.length; i++) this.values.push(decoded[i]);
        }
      }
      // index pages and unknown kinds carry no rows
    } catch (err) {
      if (err instanceof HubError) throw err;
      throw this.fail(`a page does not decode (${describe(err)})`, err);
    }
    if (this.position >= this.end) this.done = true;
  }
}

/**
 * The rows of one row group with only the named top-level columns (binary as bytes, strings as
 * bytes: utf8 false), in slices as their pages decode. Throws a HubError naming file, row group
 * and column for anything malformed.
 */
export async function* readRowGroupSlices(open: OpenShard, index: number, columns: string[], signal?: AbortSignal): AsyncGenerator<ParquetRow[]> {
  const group = open.metadata.row_groups[index];
  const schema = parquetSchema(open.metadata);
  const parsers = DEFAULT_PARSERS;
  const tops = columns.map((name) => {
    const node = schema.children.find((child) => child.element.name === name);
    if (!node) throw corrupt(open.shard, `column ${name} is not in its schema`);
    return node;
  });
  const cursors = new Map<string, LeafCursor[]>();
  for (const top of tops) {
    const leaves: LeafCursor[] = [];
    for (const chunk of group.columns) {
      const meta = chunk.meta_data!;
      if (meta.path_in_schema[0] !== top.element.name) continue;
      let schemaPath: SchemaTree[];
      try {
        schemaPath = getTreePath(schema, meta.path_in_schema);
      } catch (err) {
        throw corrupt(open.shard, `row group ${index} has a column ${meta.path_in_schema.join('.')} its schema does not name`, err);
      }
      const decoder: Decoder = { pathInSchema: meta.path_in_schema, type: meta.type, element: schemaPath[schemaPath.length - 1].element, schemaPath, codec: meta.codec, parsers, compressors, utf8: false };
      leaves.push(new LeafCursor(open, index, chunk, meta.path_in_schema, decoder));
    }
    if (leaves.length === 0) throw corrupt(open.shard, `row group ${index} has no data for column ${top.element.name}`);
    cursors.set(top.element.name, leaves);
  }
  const all = [...cursors.values()].flat();
  const expected = Number(group.num_rows);
  let emitted = 0;
  for (;;) {
    signal?.throwIfAborted();
    // decode a page of whichever column is furthest behind, until every column has a whole row
    let ready = Math.min(...all.map((c) => c.complete));
    while (ready === 0 && all.some((c) => !c.done)) {
      const lagging = all.filter((c) => !c.done).reduce((a, b) => (b.complete < a.complete ? b : a));
      await lagging.readPage();
      ready = Math.min(...all.map((c) => c.complete));
    }
    if (ready === 0) break;
    if (emitted + ready > expected) throw corrupt(open.shard, `row group ${index} holds more rows than the ${expected} its footer says`);
    const rows: ParquetRow[] = Array.from({ length: ready }, () => ({}));
    for (const top of tops) {
      const leaves = cursors.get(top.element.name)!;
      let values: unknown[];
      if (top.children.length === 0) {
        values = leaves[0].values.splice(0, ready);
      } else {
        const sub = new Map<string, DecodedArray>(leaves.map((leaf) => [leaf.path.join('.'), leaf.values.splice(0, ready) as DecodedArray]));
        try {
          assembleNested(sub, top, parsers);
        } catch (err) {
          throw corrupt(open.shard, `row group ${index} column ${top.element.name} does not assemble (${describe(err)})`, err);
        }
        values = (sub.get(top.element.name) as unknown[] | undefined) ?? [];
      }
      if (values.length !== ready) throw corrupt(open.shard, `row group ${index} column ${top.element.name} has fewer rows than the others`);
      values.forEach((value, i) => (rows[i][top.element.name] = value));
    }
    emitted += ready;
    yield rows;
  }
  if (emitted !== expected || all.some((c) => c.values.length > 0)) {
    throw corrupt(open.shard, `row group ${index} holds ${emitted} whole rows, its footer says ${expected}`);
  }
}
