// PNG text chunks (tEXt, and iTXt for text that Latin-1 cannot hold), read and written in
// TypeScript. A1111 and ComfyUI store generation settings in a `parameters` chunk; rendered PNGs
// carry them so that a picture says how it was made.
import { crc32, inflateSync, deflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** bounds for untrusted files: a text chunk bigger than this is refused */
const MAX_TEXT_BYTES = 16 * 1024 * 1024;

export class PngFormatError extends Error {
  override name = 'PngFormatError';
}

export interface PngChunk {
  type: string;
  /** offset of the chunk's length field in the file */
  offset: number;
  data: Buffer;
}

/** Split a PNG into chunks, checking every length and CRC; stops after IEND. */
export function readPngChunks(png: Uint8Array): PngChunk[] {
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) throw new PngFormatError('not a PNG file (bad signature)');
  const chunks: PngChunk[] = [];
  let pos = 8;
  while (pos < buf.length) {
    if (pos + 12 > buf.length) throw new PngFormatError(`truncated chunk header at byte ${pos}`);
    const length = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new PngFormatError(`invalid chunk type at byte ${pos + 4}`);
    const end = pos + 12 + length;
    if (length > 0x7fffffff || end > buf.length) throw new PngFormatError(`chunk ${type} at byte ${pos} claims ${length} bytes, past the end of the file`);
    const data = buf.subarray(pos + 8, pos + 8 + length);
    const stored = buf.readUInt32BE(pos + 8 + length);
    if (crc32(buf.subarray(pos + 4, pos + 8 + length)) !== stored) throw new PngFormatError(`chunk ${type} at byte ${pos} has a bad CRC`);
    chunks.push({ type, offset: pos, data });
    pos = end;
    if (type === 'IEND') return chunks;
  }
  throw new PngFormatError('no IEND chunk (file is truncated)');
}

function inflateText(chunk: PngChunk, keyword: string, data: Buffer): Buffer {
  try {
    return inflateSync(data, { maxOutputLength: MAX_TEXT_BYTES });
  } catch (err) {
    throw new PngFormatError(`${chunk.type} chunk ${keyword} does not inflate: ${(err as Error).message}`);
  }
}

function parseText(chunk: PngChunk): [string, string] | null {
  if (chunk.type !== 'tEXt' && chunk.type !== 'zTXt' && chunk.type !== 'iTXt') return null;
  const d = chunk.data;
  const nul = d.indexOf(0);
  if (nul < 1 || nul > 79) throw new PngFormatError(`${chunk.type} chunk at byte ${chunk.offset} has no valid keyword`);
  const keyword = d.toString('latin1', 0, nul);
  if (chunk.type === 'tEXt') return [keyword, d.toString('latin1', nul + 1)];
  if (chunk.type === 'zTXt') {
    if (d[nul + 1] !== 0) throw new PngFormatError(`zTXt chunk ${keyword} uses unknown compression ${d[nul + 1]}`);
    return [keyword, inflateText(chunk, keyword, d.subarray(nul + 2)).toString('latin1')];
  }
  if (chunk.type === 'iTXt') {
    const compressed = d[nul + 1];
    const method = d[nul + 2];
    const langEnd = d.indexOf(0, nul + 3);
    const transEnd = langEnd < 0 ? -1 : d.indexOf(0, langEnd + 1);
    if (compressed === undefined || langEnd < 0 || transEnd < 0) throw new PngFormatError(`iTXt chunk ${keyword} is malformed`);
    const body = d.subarray(transEnd + 1);
    if (compressed === 0) return [keyword, body.toString('utf8')];
    if (method !== 0) throw new PngFormatError(`iTXt chunk ${keyword} uses unknown compression ${method}`);
    return [keyword, inflateText(chunk, keyword, body).toString('utf8')];
  }
  return null;
}

/** All text entries (tEXt, zTXt, iTXt) in file order; a repeated keyword keeps its first value. */
export function readPngText(png: Uint8Array): Map<string, string> {
  const result = new Map<string, string>();
  for (const chunk of readPngChunks(png)) {
    const entry = parseText(chunk);
    if (entry && !result.has(entry[0])) result.set(entry[0], entry[1]);
  }
  return result;
}

function chunk(type: string, data: Buffer): Buffer {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  data.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function isLatin1(text: string): boolean {
  return !/[^\u0001-\u00ff]/.test(text);
}

function textChunk(keyword: string, text: string): Buffer {
  if (!/^[\u0020-\u007e\u00a1-\u00ff]{1,79}$/.test(keyword) || keyword !== keyword.trim() || keyword.includes('  ')) {
    throw new RangeError(`PNG text keyword ${JSON.stringify(keyword)} must be 1-79 printable Latin-1 characters without leading, trailing or double spaces`);
  }
  const key = Buffer.from(keyword, 'latin1');
  if (isLatin1(text)) return chunk('tEXt', Buffer.concat([key, Buffer.from([0]), Buffer.from(text, 'latin1')]));
  // iTXt: keyword, NUL, compression flag, method, language tag NUL, translated keyword NUL, UTF-8 text.
  const body = Buffer.from(text, 'utf8');
  const compress = body.length > 1024;
  const payload = compress ? deflateSync(body) : body;
  return chunk('iTXt', Buffer.concat([key, Buffer.from([0, compress ? 1 : 0, 0, 0, 0]), payload]));
}

/**
 * Return a copy of `png` with the given text entries, inserted before the first IDAT. Existing
 * text chunks with the same keywords are replaced; other chunks are kept byte for byte.
 */
export function writePngText(png: Uint8Array, entries: Record<string, string>): Buffer {
  const chunks = readPngChunks(png);
  const buf = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  const keys = new Set(Object.keys(entries));
  const fresh = Object.entries(entries).map(([k, v]) => textChunk(k, v));
  const parts: Buffer[] = [SIGNATURE];
  let inserted = false;
  for (const c of chunks) {
    if (!inserted && (c.type === 'IDAT' || c.type === 'IEND')) {
      parts.push(...fresh);
      inserted = true;
    }
    const existing = parseText(c);
    if (existing && keys.has(existing[0])) continue;
    parts.push(buf.subarray(c.offset, c.offset + 12 + c.data.length));
  }
  return Buffer.concat(parts);
}
