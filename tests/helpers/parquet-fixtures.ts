// Fixture datasets for the hub tests, written with hyparquet-writer: the pokemon schema (image
// struct {bytes, path} + en_text + zh_text, snappy), a zstd shard with list-of-string captions and
// plain binary images, and small real PNGs.
import { execFileSync } from 'node:child_process';
import { parquetWriteBuffer } from 'hyparquet-writer';
import sharp from 'sharp';

/** A real PNG of seeded noise (so it does not compress to nothing: about 3 * size² bytes). */
export async function pngBytes(seed: number, size = 16): Promise<Uint8Array> {
  const pixels = Buffer.alloc(size * size * 3);
  let state = (seed + 1) * 2654435761;
  for (let i = 0; i < pixels.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    pixels[i] = state >>> 24;
  }
  const png = await sharp(pixels, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
  return new Uint8Array(png);
}

export interface PokemonRow {
  image: Uint8Array | null;
  path: string | null;
  en: string;
  zh: string;
}

/** Exactly the schema of svjack/pokemon-blip-captions-en-zh (as the datasets library writes it). */
export function pokemonParquet(rows: PokemonRow[], options: { rowGroupSize?: number } = {}): Uint8Array {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'image', data: rows.map((r) => ({ bytes: r.image, path: r.path })) },
      { name: 'en_text', data: rows.map((r) => r.en) },
      { name: 'zh_text', data: rows.map((r) => r.zh) },
    ],
    schema: [
      { name: 'schema', num_children: 3 },
      { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'en_text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'zh_text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
    codec: 'SNAPPY',
    rowGroupSize: options.rowGroupSize ?? 1000,
    kvMetadata: [{ key: 'huggingface', value: JSON.stringify({ info: { features: { image: { _type: 'Image' }, en_text: { dtype: 'string', _type: 'Value' }, zh_text: { dtype: 'string', _type: 'Value' } } } }) }],
  });
  return new Uint8Array(buffer);
}

/** zstd through the zstd command line tool: real zstd frames (Node 20 has no zstd compressor). */
function zstdCompress(input: Uint8Array): Uint8Array {
  return new Uint8Array(execFileSync('zstd', ['-q', '-c', '-3'], { input }));
}

export interface ListCaptionRow {
  image: Uint8Array;
  captions: string[];
}

/** Plain binary images and list<string> captions in a ZSTD-compressed shard. */
export function zstdListParquet(rows: ListCaptionRow[], options: { rowGroupSize?: number } = {}): Uint8Array {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'jpg', data: rows.map((r) => r.image) },
      { name: 'captions', data: rows.map((r) => r.captions) },
    ],
    schema: [
      { name: 'schema', num_children: 2 },
      { name: 'jpg', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'captions', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
    codec: 'ZSTD',
    compressors: { ZSTD: zstdCompress },
    rowGroupSize: options.rowGroupSize ?? 1000,
  });
  return new Uint8Array(buffer);
}

/**
 * An LZ4 block holding only literals: valid LZ4 (what a compressor emits for data it cannot shrink),
 * and for empty input the single 0 token of an empty block.
 */
export function lz4Literals(input: Uint8Array): Uint8Array {
  const head: number[] = [];
  if (input.length < 15) head.push(input.length << 4);
  else {
    head.push(0xf0);
    let rest = input.length - 15;
    for (; rest >= 255; rest -= 255) head.push(255);
    head.push(rest);
  }
  return Uint8Array.from([...head, ...input]);
}

/** The Hadoop framing of parquet's deprecated LZ4 codec: big-endian sizes, then the block. */
export function lz4Hadoop(input: Uint8Array): Uint8Array {
  const block = lz4Literals(input);
  const out = new Uint8Array(8 + block.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, input.length);
  view.setUint32(4, block.length);
  out.set(block, 8);
  return out;
}

/**
 * The pokemon schema with every image.path null and dictionary encoding forced, so the path
 * column's dictionary page is empty: an empty LZ4 block, as in HF image parquet files.
 */
export function lz4PokemonParquet(rows: PokemonRow[], codec: 'LZ4' | 'LZ4_RAW'): Uint8Array {
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: 'image', data: rows.map((r) => ({ bytes: r.image, path: null })), encoding: 'RLE_DICTIONARY' },
      { name: 'en_text', data: rows.map((r) => r.en) },
      { name: 'zh_text', data: rows.map((r) => r.zh) },
    ],
    schema: [
      { name: 'schema', num_children: 3 },
      { name: 'image', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'bytes', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
      { name: 'path', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'en_text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'zh_text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
    ],
    codec,
    compressors: { LZ4: lz4Hadoop, LZ4_RAW: lz4Literals },
  });
  return new Uint8Array(buffer);
}

/**
 * A pokemon-sized picture: 512 px, a few outlined shapes on white, JPEG of about 15 kB (what the
 * lab's pokemon dataset rows weigh), seeded.
 */
export async function pokemonJpeg(seed: number, size = 512): Promise<Uint8Array> {
  let state = (seed + 1) * 2654435761;
  const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const shape = () =>
    `<ellipse cx="${Math.round(rand() * size)}" cy="${Math.round(rand() * size)}" rx="${Math.round(20 + (rand() * size) / 4)}" ry="${Math.round(20 + (rand() * size) / 4)}" ` +
    `fill="rgb(${Math.floor(rand() * 255)},${Math.floor(rand() * 255)},${Math.floor(rand() * 255)})" stroke="black" stroke-width="${Math.round(2 + rand() * 6)}"/>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><rect width="${size}" height="${size}" fill="white"/>${Array.from({ length: 6 }, shape).join('')}</svg>`;
  return new Uint8Array(await sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toBuffer());
}
