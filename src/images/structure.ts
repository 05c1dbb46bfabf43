// Is an image whole? The checks a decoder makes before and around the pixels, without decoding
// them: a sequential JPEG's markers from SOI to EOI with every segment inside the file, its tables
// as libjpeg validates them and every table its scans use defined; a PNG's chunks with their CRCs,
// IHDR first, IEND last, and the image data inflating to exactly the bytes IHDR announces. That is
// truncation and damaged structure, at a tenth of a decode's cost. Not caught: damage inside a
// JPEG's entropy-coded data that libjpeg notices only while decoding (a bad Huffman code: about 1
// in 300 random byte flips); such an image decodes with visible damage. Returns what is wrong, or
// null; undefined when the image needs a real decode to tell (progressive or arithmetic JPEGs,
// interlaced PNGs, other formats).
import { crc32, inflateSync } from 'node:zlib';

/**
 * SOF markers of the sequential processes checked here: baseline and extended Huffman. Progressive
 * and arithmetic-coded JPEGs (rarer in datasets) and anything else are decoded to be sure.
 */
const CHECKED_SOF = new Set([0xc0, 0xc1]);

/**
 * A DHT segment's tables: ids defined, or a problem. As libjpeg checks them: the counts fit the
 * segment and 256 codes, the code lengths leave room (no length runs out of codes), DC symbols are
 * at most 15.
 */
function huffmanTables(b: Uint8Array, from: number, to: number, defined: Set<number>): string | null {
  const bogus = 'JPEG has a bogus Huffman table';
  let i = from;
  while (i < to) {
    const tc = b[i] >> 4;
    const th = b[i] & 0x0f;
    if (tc > 1 || th > 3 || i + 17 > to) return bogus;
    let count = 0;
    let code = 0;
    let started = false;
    let last = 0;
    for (let length = 1; length <= 16; length++) if (b[i + length] > 0) last = length;
    for (let length = 1; length <= 16; length++) {
      const n = b[i + length];
      count += n;
      started ||= n > 0;
      if (!started) continue;
      code += n;
      if (length <= last && code >= 2 ** length) return bogus;
      code *= 2;
    }
    if (count > 256 || i + 17 + count > to) return bogus;
    if (tc === 0 && b.subarray(i + 17, i + 17 + count).some((symbol) => symbol > 15)) return bogus;
    defined.add((tc << 4) | th);
    i += 17 + count;
  }
  return null;
}

/** A DQT segment's tables: ids defined, or a problem. */
function quantTables(b: Uint8Array, from: number, to: number, defined: Set<number>): string | null {
  let i = from;
  while (i < to) {
    const precision = b[i] >> 4;
    const id = b[i] & 0x0f;
    if (precision > 1 || id > 3 || i + 1 + 64 * (precision + 1) > to) return 'JPEG has a bogus quantization table';
    defined.add(id);
    i += 1 + 64 * (precision + 1);
  }
  return null;
}

/** markers that may stand between the scans of a JPEG (besides SOFn, SOS, EOI and the restart markers) */
function isTableOrMiscMarker(marker: number): boolean {
  return marker === 0xc4 || marker === 0xcc || marker === 0xdb || marker === 0xdc || marker === 0xdd || marker === 0xfe || (marker >= 0xe0 && marker <= 0xef);
}

export function jpegProblem(b: Uint8Array): string | null | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return 'JPEG does not start with SOI';
  let i = 2;
  let frame: { components: Map<number, number> } | undefined;
  let scan = false;
  const huffman = new Set<number>();
  const quant = new Set<number>();
  while (i < b.length) {
    if (b[i] !== 0xff) {
      if (!scan) return `JPEG has stray data at byte ${i} where a marker should be`;
      // entropy-coded data: up to the next marker (0xFF followed by neither 0x00 stuffing nor a restart marker)
      while (i < b.length && !(b[i] === 0xff && i + 1 < b.length && b[i + 1] !== 0x00 && (b[i + 1] < 0xd0 || b[i + 1] > 0xd7))) i++;
      continue;
    }
    while (i < b.length && b[i] === 0xff) i++; // fill bytes
    if (i >= b.length) break;
    const marker = b[i++];
    if (marker === 0xd9) return frame && scan ? null : 'JPEG ends before its image data';
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // restart markers, TEM: no length
    const sof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (!sof && marker !== 0xda && !isTableOrMiscMarker(marker)) return `JPEG has an unknown marker 0x${marker.toString(16)}`;
    if (i + 2 > b.length) break;
    const length = (b[i] << 8) | b[i + 1];
    if (length < 2 || i + length > b.length) return `JPEG segment 0x${marker.toString(16)} runs past the end of the file (truncated)`;
    const from = i + 2;
    const to = i + length;
    if (sof) {
      if (!CHECKED_SOF.has(marker)) return undefined; // progressive, arithmetic, lossless, ...: let the decoder say
      if (frame) return 'JPEG has a second frame header';
      const count = b[from + 5];
      if (to - from !== 6 + 3 * count || count === 0) return 'JPEG frame header has the wrong length';
      const components = new Map<number, number>();
      for (let k = 0; k < count; k++) {
        const at = from + 6 + 3 * k;
        if ((b[at + 1] >> 4) < 1 || (b[at + 1] >> 4) > 4 || (b[at + 1] & 15) < 1 || (b[at + 1] & 15) > 4) return 'JPEG has bogus sampling factors';
        components.set(b[at], b[at + 2]);
      }
      frame = { components };
    } else if (marker === 0xc4) {
      const problem = huffmanTables(b, from, to, huffman);
      if (problem) return problem;
    } else if (marker === 0xdb) {
      const problem = quantTables(b, from, to, quant);
      if (problem) return problem;
    } else if (marker === 0xda) {
      if (!frame) return 'JPEG image data comes before its frame header';
      const count = b[from];
      if (to - from !== 4 + 2 * count || count === 0) return 'JPEG scan header has the wrong length';
      for (let k = 0; k < count; k++) {
        const id = b[from + 1 + 2 * k];
        const tables = b[from + 2 + 2 * k];
        const q = frame.components.get(id);
        if (q === undefined) return `JPEG scan names a component ${id} its frame does not have`;
        if (!quant.has(q)) return `JPEG uses quantization table ${q}, which it does not define`;
        const dc = tables >> 4;
        const ac = tables & 15;
        if (!huffman.has(dc)) return `JPEG uses Huffman table ${dc} (DC), which it does not define`;
        if (!huffman.has(0x10 | ac)) return `JPEG uses Huffman table ${ac} (AC), which it does not define`;
      }
      scan = true;
    }
    i = to;
  }
  return 'JPEG is truncated (no end-of-image marker)';
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

export interface PngHeader {
  width: number;
  height: number;
  depth: number;
  color: number;
  compression: number;
  filter: number;
  interlace: number;
}

export interface PngStructure {
  /** what is wrong; null when whole; undefined when only a decode can tell */
  problem: string | null | undefined;
  header?: PngHeader;
  /** the types of the chunks before IEND */
  chunks: Set<string>;
}

export function pngProblem(bytes: Uint8Array): string | null | undefined {
  return pngStructure(bytes).problem;
}

/** RGB and RGBA: what a decoder reports for them needs nothing but IHDR */
const PLAIN_COLOR_CHANNELS: Record<number, number> = { 2: 3, 6: 4 };
/** chunks that can change the channels (tRNS) or the orientation (eXIf, or EXIF inside a text chunk) */
const NOT_PLAIN_CHUNKS = ['tRNS', 'eXIf', 'tEXt', 'zTXt', 'iTXt'];

/**
 * Size and channels of a whole PNG (structure checked) of the commonest kind: 8 or 16-bit RGB or
 * RGBA, not interlaced, no transparency chunk, nothing that could carry an EXIF orientation, at most
 * `maxPixels`. Undefined for anything else (damaged ones too): let a decoder say.
 */
export function plainPngInfo(structure: PngStructure, maxPixels: number): { width: number; height: number; channels: number } | undefined {
  const h = structure.header;
  if (structure.problem !== null || !h) return undefined;
  const channels = PLAIN_COLOR_CHANNELS[h.color];
  if (channels === undefined || (h.depth !== 8 && h.depth !== 16) || h.compression !== 0 || h.filter !== 0 || h.interlace !== 0) return undefined;
  if (h.width < 1 || h.height < 1 || h.width > 0x7fffffff || h.height > 0x7fffffff || h.width * h.height > maxPixels) return undefined;
  if (NOT_PLAIN_CHUNKS.some((type) => structure.chunks.has(type))) return undefined;
  return { width: h.width, height: h.height, channels };
}

/** pngProblem, with what was read on the way */
export function pngStructure(bytes: Uint8Array): PngStructure {
  const chunks = new Set<string>();
  const done = (problem: string | null | undefined, header?: PngHeader): PngStructure => ({ problem, chunks, ...(header ? { header } : {}) });
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 8 || PNG_SIGNATURE.some((v, k) => b[k] !== v)) return done('PNG signature is missing');
  let i = 8;
  let header: PngHeader | undefined;
  const data: Buffer[] = [];
  let ended = false;
  while (i + 8 <= b.length) {
    const length = b.readUInt32BE(i);
    const type = b.toString('latin1', i + 4, i + 8);
    if (i + 12 + length > b.length) return done(`PNG chunk ${type} runs past the end of the file (truncated)`);
    if (crc32(b.subarray(i + 4, i + 8 + length)) !== b.readUInt32BE(i + 8 + length)) return done(`PNG chunk ${type} has a bad CRC (the file is damaged)`);
    const body = b.subarray(i + 8, i + 8 + length);
    if (!header && type !== 'IHDR') return done('PNG does not start with IHDR');
    if (type !== 'IEND') chunks.add(type);
    if (type === 'IHDR') {
      if (length !== 13) return done('PNG header has the wrong length');
      header = { width: body.readUInt32BE(0), height: body.readUInt32BE(4), depth: body[8], color: body[9], compression: body[10], filter: body[11], interlace: body[12] };
    } else if (type === 'IDAT') data.push(body);
    else if (type === 'IEND') {
      ended = true;
      break;
    }
    i += 12 + length;
  }
  if (!header) return done('PNG has no header');
  if (!ended) return done('PNG is truncated (no IEND chunk)', header);
  if (data.length === 0) return done('PNG has no image data', header);
  const channels = CHANNELS[header.color];
  if (channels === undefined || header.interlace !== 0 || ![1, 2, 4, 8, 16].includes(header.depth)) return done(undefined, header);
  const expected = header.height * (1 + Math.ceil((header.width * channels * header.depth) / 8));
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(data), { maxOutputLength: expected + 1 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return done(`PNG image data holds more than the ${expected} bytes its header announces`, header);
    return done(`PNG image data does not inflate (${(err as Error).message})`, header);
  }
  return done(raw.length === expected ? null : `PNG image data holds ${raw.length} bytes, ${expected} expected (truncated or damaged)`, header);
}
