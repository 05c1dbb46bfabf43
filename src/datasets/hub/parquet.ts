// Parquet shards read one row group at a time: the footer is read and checked first (magic, sizes,
// offsets inside the file), then each row group's column chunks through an AsyncBuffer over the
// file, so a 50,000-image dataset never sits in memory whole.
import { open } from 'node:fs/promises';
import { asyncBufferFromFile, parquetMetadataAsync, parquetRead, parquetSchema } from 'hyparquet';
import type { AsyncBuffer, FileMetaData, ParquetRow } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { ParquetShard } from '../manifest.js';
import { HubError } from './errors.js';

/** More than this much decoded data in one row group is refused (a decompression bomb, or a mistake). */
const MAX_ROW_GROUP_BYTES = 2 ** 31;

export interface OpenShard {
  shard: ParquetShard;
  file: AsyncBuffer;
  metadata: FileMetaData;
  /** top-level column names */
  columns: string[];
}

function corrupt(shard: ParquetShard, what: string, cause?: unknown): HubError {
  return new HubError('bad-parquet', `${shard.path}: corrupt or truncated parquet file (${what})`, {
    file: shard.path,
    hint: 'delete it from the Hugging Face cache and run again to download it afresh; if it persists, the dataset file itself is damaged',
    cause,
  });
}

async function checkMagic(shard: ParquetShard): Promise<number> {
  const handle = await open(shard.abs, 'r');
  try {
    const { size } = await handle.stat();
    if (size !== shard.size) throw corrupt(shard, `${size} bytes on disk, ${shard.size} expected`);
    if (size < 12) throw corrupt(shard, `only ${size} bytes`);
    const head = Buffer.alloc(4);
    const tail = Buffer.alloc(8);
    await handle.read(head, 0, 4, 0);
    await handle.read(tail, 0, 8, size - 8);
    if (head.toString('latin1') !== 'PAR1' || tail.toString('latin1', 4) !== 'PAR1') throw corrupt(shard, 'no PAR1 magic at its start and end');
    const footer = tail.readUInt32LE(0);
    if (footer > size - 12) throw corrupt(shard, `footer of ${footer} bytes does not fit in ${size} bytes`);
    return size;
  } finally {
    await handle.close();
  }
}

function checkLayout(shard: ParquetShard, metadata: FileMetaData, size: number): void {
  metadata.row_groups.forEach((group, index) => {
    if (group.num_rows < 0n) throw corrupt(shard, `row group ${index} has ${group.num_rows} rows`);
    for (const chunk of group.columns) {
      const meta = chunk.meta_data;
      if (!meta) throw corrupt(shard, `row group ${index} has a column without metadata`);
      const start = meta.dictionary_page_offset ?? meta.data_page_offset;
      const end = start + meta.total_compressed_size;
      if (start < 4n || meta.total_compressed_size < 0n || end > BigInt(size)) {
        throw corrupt(shard, `row group ${index} column ${meta.path_in_schema.join('.')} lies outside the file`);
      }
    }
  });
}

export async function openShard(shard: ParquetShard): Promise<OpenShard> {
  const size = await checkMagic(shard);
  const file = await asyncBufferFromFile(shard.abs);
  let metadata: FileMetaData;
  try {
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw corrupt(shard, `its footer does not parse: ${(err as Error).message}`, err);
  }
  checkLayout(shard, metadata, size);
  const columns = parquetSchema(metadata).children.map((child) => child.element.name);
  return { shard, file, metadata, columns };
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

/** The rows of one row group, only the named columns, binary columns as bytes. */
export async function readRowGroup(open: OpenShard, index: number, columns: string[]): Promise<ParquetRow[]> {
  const group = open.metadata.row_groups[index];
  const decoded = group.columns
    .filter((chunk) => chunk.meta_data && columns.includes(chunk.meta_data.path_in_schema[0]))
    .reduce((sum, chunk) => sum + Number(chunk.meta_data!.total_uncompressed_size), 0);
  if (decoded > MAX_ROW_GROUP_BYTES) {
    throw new HubError('bad-parquet', `${open.shard.path}: row group ${index} would decode to ${decoded} bytes, more than lorabuild reads at once`, {
      file: open.shard.path,
      hint: 'rewrite the parquet file with smaller row groups',
    });
  }
  const [rowStart, rowEnd] = rowGroupRanges(open.metadata)[index];
  try {
    let rows: ParquetRow[] = [];
    await parquetRead({
      file: open.file,
      metadata: open.metadata,
      columns,
      rowStart,
      rowEnd,
      utf8: false,
      compressors,
      rowFormat: 'object',
      onComplete: (result) => {
        rows = result;
      },
    });
    if (rows.length !== rowEnd - rowStart) throw new Error(`${rows.length} rows decoded, ${rowEnd - rowStart} expected`);
    return rows;
  } catch (err) {
    throw corrupt(open.shard, `row group ${index} does not decode: ${(err as Error).message}`, err);
  }
}
