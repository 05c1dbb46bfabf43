// Items of a hub dataset for the prepare stage: one per parquet row (or imagefolder entry), with the
// image bytes and the caption text. Decoding the image is prepare's job; this reads and checks columns.
import { readFile } from 'node:fs/promises';
import type { DatasetSpec } from '../../config/schema.js';
import type { Listing } from '../manifest.js';
import type { CaptionChoice } from './caption-choice.js';
import { chooseCaption } from './caption-choice.js';
import { unknownColumnError } from './columns.js';
import { openShard, readRowGroupSlices, type ShardFile } from './parquet.js';
import { locateListedFiles } from './restore.js';

export interface HubItem {
  /** row index within the split (all shards, in order) */
  row: number;
  /** 'data/train-00000-of-00001.parquet row 17' or the image's repo path */
  origin: string;
  image: Uint8Array | null;
  caption: { text: string; choice?: CaptionChoice } | null;
  /** why this row has no usable image or caption value (the row is still yielded) */
  error?: string;
}

type ItemSpec = Pick<DatasetSpec, 'image_column' | 'caption_column' | 'caption_choice' | 'caption_seed'>;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function imageOf(value: unknown): { bytes: Uint8Array | null; error?: string } {
  if (value === null || value === undefined) return { bytes: null };
  if (value instanceof Uint8Array) return { bytes: value };
  if (typeof value === 'object' && 'bytes' in value) {
    const { bytes, path } = value as { bytes?: unknown; path?: unknown };
    if (bytes instanceof Uint8Array) return { bytes };
    if (bytes === null || bytes === undefined) {
      return { bytes: null, error: `image struct has no bytes${typeof path === 'string' && path ? ` (only a path: ${path})` : ''}` };
    }
  }
  if (typeof value === 'string') return { bytes: null, error: 'image column holds text, not image bytes' };
  return { bytes: null, error: 'image column is neither binary nor a {bytes, path} struct' };
}

function textOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return utf8.decode(value);
  return undefined;
}

function captionOf(value: unknown, spec: ItemSpec, row: number): { caption: HubItem['caption']; error?: string } {
  if (value === null || value === undefined) return { caption: null };
  try {
    const single = textOf(value);
    if (single !== undefined) return { caption: { text: single } };
    if (Array.isArray(value)) {
      const options = value.map(textOf);
      if (options.some((o) => o === undefined)) return { caption: null, error: 'caption list holds something other than text' };
      return { caption: chooseCaption(options as string[], spec.caption_choice, spec.caption_seed, row) };
    }
  } catch {
    return { caption: null, error: 'caption is not valid UTF-8' };
  }
  return { caption: null, error: 'caption column is neither text nor a list of text' };
}

/**
 * Rows of parquet shards in order, numbered across them; `root` names the dataset in messages.
 * `onTotal` hears how many rows there are (the shards' footers) before the first row comes.
 */
export async function* readParquetItems(shards: ShardFile[], root: string, spec: ItemSpec, signal: AbortSignal, onTotal?: (rows: number) => void): AsyncGenerator<HubItem> {
  const imageColumn = spec.image_column;
  const captionColumn = spec.caption_column ?? 'text';
  if (onTotal) {
    let total = 0;
    for (const shard of shards) {
      const opened = await openShard(shard);
      total += Number(opened.metadata.num_rows);
      await opened.close();
    }
    onTotal(total);
  }
  let row = 0;
  for (const shard of shards) {
    signal.throwIfAborted();
    const opened = await openShard(shard);
    try {
      if (!opened.columns.includes(imageColumn)) throw unknownColumnError(root, shard.path, 'image_column', imageColumn, opened.columns);
      if (!opened.columns.includes(captionColumn)) throw unknownColumnError(root, shard.path, 'caption_column', captionColumn, opened.columns);
      let local = 0;
      for (let group = 0; group < opened.metadata.row_groups.length; group++) {
        for await (const rows of readRowGroupSlices(opened, group, [imageColumn, captionColumn], signal)) {
          for (const values of rows) {
            const image = imageOf(values[imageColumn]);
            const caption = captionOf(values[captionColumn], spec, row);
            const error = [image.error, caption.error].filter(Boolean).join('; ');
            yield { row, origin: `${shard.path} row ${local}`, image: image.bytes, caption: caption.caption, ...(error ? { error } : {}) };
            row++;
            local++;
          }
        }
      }
    } finally {
      await opened.close();
    }
  }
}

async function* imagefolderItems(listing: Listing, located: Map<string, string>, signal: AbortSignal): AsyncGenerator<HubItem> {
  let row = 0;
  for (const entry of listing.entries) {
    signal.throwIfAborted();
    const image = entry.image ? new Uint8Array(await readFile(located.get(entry.image.path)!)) : null;
    yield {
      row: row++,
      origin: entry.image?.path ?? `${entry.captionText?.path}:${entry.captionText?.line}`,
      image,
      caption: entry.captionText ? { text: entry.captionText.text } : null,
    };
  }
}

/**
 * Streams the items of a hub listing: parquet a few pages at a time, imagefolder one file at a
 * time, from the HF cache of this run. Files it no longer holds are downloaded again first.
 */
export async function* readHubItems(listing: Listing, spec: ItemSpec, signal: AbortSignal, onTotal?: (rows: number) => void): AsyncGenerator<HubItem> {
  const located = await locateListedFiles(listing, signal);
  if (listing.layout === 'parquet') {
    const shards = (listing.shards ?? []).map((shard) => ({ path: shard.path, size: shard.size, abs: located.get(shard.path)! }));
    yield* readParquetItems(shards, listing.root, spec, signal, onTotal);
  } else {
    onTotal?.(listing.entries.length);
    yield* imagefolderItems(listing, located, signal);
  }
}

/** A hub imagefolder listing's entries with `abs` set to where their images are in this run's HF cache. */
export async function locateEntries(listing: Listing, signal: AbortSignal): Promise<Listing['entries']> {
  const located = await locateListedFiles(listing, signal);
  return listing.entries.map((entry) => (entry.image ? { ...entry, image: { ...entry.image, abs: located.get(entry.image.path)! } } : entry));
}
