// Image decoding on real files made here with sharp (png, jpeg, webp) and by hand (bmp, written
// by an encoder in this test, independent of the decoder), plus PNG text chunks.
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage, decodeToRaw, formatFromExtension, ImageDecodeError, sniffFormat, squareCrop } from '../src/images/decode.js';
import { decodeBmp } from '../src/images/bmp.js';
import { PngFormatError, readPngChunks, readPngText, writePngText } from '../src/images/png-text.js';

/** 64×48: left third red, middle green, right third blue; row y adds y to the blue channel of red pixels */
function bands(width = 64, height = 48): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const third = Math.floor((x * 3) / width);
      data[o] = third === 0 ? 255 : 0;
      data[o + 1] = third === 1 ? 255 : 0;
      data[o + 2] = third === 2 ? 255 : third === 0 ? y : 0;
    }
  }
  return data;
}

const raw = (w = 64, h = 48) => sharp(bands(w, h), { raw: { width: w, height: h, channels: 3 } });

/** A 24-bit bottom-up BMP, BGR rows padded to 4 bytes. */
function bmp24(width: number, height: number, rgb: Buffer): Buffer {
  const stride = Math.ceil((width * 3) / 4) * 4;
  const out = Buffer.alloc(54 + stride * height);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(54, 10);
  out.writeUInt32LE(40, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(24, 28);
  for (let y = 0; y < height; y++) {
    const row = 54 + (height - 1 - y) * stride;
    for (let x = 0; x < width; x++) {
      const s = (y * width + x) * 3;
      out[row + x * 3] = rgb[s + 2];
      out[row + x * 3 + 1] = rgb[s + 1];
      out[row + x * 3 + 2] = rgb[s];
    }
  }
  return out;
}

/** A 32-bit top-down BMP with BITFIELDS masks in a V4 (108-byte) header, with alpha. */
function bmp32(width: number, height: number, rgba: Buffer): Buffer {
  const header = 14 + 108;
  const out = Buffer.alloc(header + width * height * 4);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(header, 10);
  out.writeUInt32LE(108, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(-height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(32, 28);
  out.writeUInt32LE(3, 30); // BI_BITFIELDS
  out.writeUInt32LE(0x00ff0000, 54);
  out.writeUInt32LE(0x0000ff00, 58);
  out.writeUInt32LE(0x000000ff, 62);
  out.writeUInt32LE(0xff000000, 66);
  for (let i = 0; i < width * height; i++) {
    const p = header + i * 4;
    out[p] = rgba[i * 4 + 2];
    out[p + 1] = rgba[i * 4 + 1];
    out[p + 2] = rgba[i * 4];
    out[p + 3] = rgba[i * 4 + 3];
  }
  return out;
}

function pixel(img: { width: number; channels: number; data: Buffer }, x: number, y: number): number[] {
  const o = (y * img.width + x) * img.channels;
  return [...img.data.subarray(o, o + img.channels)];
}

describe('decode', () => {
  it('decodes png, jpeg and webp with their size and format', async () => {
    const png = await raw().png().toBuffer();
    const jpeg = await raw().jpeg({ quality: 95 }).toBuffer();
    const webp = await raw().webp({ lossless: true }).toBuffer();
    expect(await decodeImage(png)).toMatchObject({ width: 64, height: 48, format: 'png' });
    expect(await decodeImage(jpeg)).toMatchObject({ width: 64, height: 48, format: 'jpeg' });
    expect(await decodeImage(webp)).toMatchObject({ width: 64, height: 48, format: 'webp' });
    const pngPixels = await decodeToRaw(png);
    expect(pngPixels.data.equals(bands())).toBe(true);
    const jpegPixels = await decodeToRaw(jpeg);
    expect(pixel(jpegPixels, 10, 20)[0]).toBeGreaterThan(230);
    expect(pixel(jpegPixels, 32, 20)[1]).toBeGreaterThan(230);
  });

  it('decodes 24-bit bottom-up and 32-bit BITFIELDS BMPs pixel for pixel', async () => {
    const rgb = bands(13, 7); // odd width: rows need padding
    const img24 = bmp24(13, 7, rgb);
    expect(sniffFormat(img24)).toBe('bmp');
    expect(await decodeImage(img24)).toMatchObject({ width: 13, height: 7, format: 'bmp' });
    expect((await decodeToRaw(img24)).data.equals(rgb)).toBe(true);

    const rgba = Buffer.alloc(5 * 3 * 4);
    for (let i = 0; i < 15; i++) rgba.set([i * 10, 255 - i * 10, i, 100 + i], i * 4);
    const decoded = decodeBmp(bmp32(5, 3, rgba), 1e6);
    expect(decoded).toMatchObject({ width: 5, height: 3, channels: 4 });
    expect(decoded.data.equals(rgba)).toBe(true);
  });

  it('refuses malformed BMPs before allocating pixels, with a reason', async () => {
    const good = bmp24(4, 4, bands(4, 4));
    const huge = Buffer.from(good);
    huge.writeInt32LE(100_000, 18);
    huge.writeInt32LE(100_000, 22);
    await expect(decodeImage(huge)).rejects.toThrow(/100000x100000 pixels, more than the limit/);
    await expect(decodeImage(good.subarray(0, good.length - 5))).rejects.toThrow(/BMP: file is truncated/);
    const offset = Buffer.from(good);
    offset.writeUInt32LE(0xfffffff0, 10);
    await expect(decodeImage(offset)).rejects.toThrow(/pixel data offset .* outside the file/);
    const eightBit = Buffer.from(good);
    eightBit.writeUInt16LE(8, 28);
    await expect(decodeImage(eightBit)).rejects.toThrow(/8-bit BMP is not supported.*PNG/);
    const rle = Buffer.from(good);
    rle.writeUInt32LE(1, 30);
    await expect(decodeImage(rle)).rejects.toThrow(/compressed BMP/);
  });

  it('fails on corrupt and truncated images and on formats outside the list', async () => {
    const png = await raw().png().toBuffer();
    const jpeg = await raw().jpeg().toBuffer();
    await expect(decodeImage(png.subarray(0, Math.floor(png.length / 2)))).rejects.toBeInstanceOf(ImageDecodeError);
    await expect(decodeImage(jpeg.subarray(0, Math.floor(jpeg.length / 2)))).rejects.toThrow(/JPEG does not decode/);
    await expect(decodeImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))).rejects.toThrow(/SVG images are not supported/);
    await expect(decodeImage(await raw().gif().toBuffer())).rejects.toThrow(/GIF images are not supported/);
    await expect(decodeImage(Buffer.alloc(0))).rejects.toThrow(/empty/);
    await expect(decodeImage(Buffer.from('just some text'))).rejects.toThrow(/unknown file signature/);
  });

  it('reports the size after EXIF orientation', async () => {
    const rotated = await raw().jpeg().withMetadata({ orientation: 6 }).toBuffer();
    expect(await decodeImage(rotated)).toMatchObject({ width: 48, height: 64 });
  });

  it('resizes the shorter side and center-crops to a square PNG', async () => {
    for (const bytes of [await raw().png().toBuffer(), bmp24(64, 48, bands())]) {
      const png = await squareCrop(bytes, 32);
      const out = await decodeToRaw(png);
      expect(sniffFormat(png)).toBe('png');
      expect([out.width, out.height, out.channels]).toEqual([32, 32, 3]);
      // 64×48 -> 43×32, 5 columns cropped each side: the three bands stay, green in the middle
      expect(pixel(out, 1, 16)[0]).toBeGreaterThan(200);
      expect(pixel(out, 16, 16)[1]).toBeGreaterThan(200);
      expect(pixel(out, 30, 16)[2]).toBeGreaterThan(200);
    }
    const tall = await squareCrop(await raw(20, 80).png().toBuffer(), 10);
    expect(await decodeImage(tall)).toMatchObject({ width: 10, height: 10 });
    const alpha = await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.5 } } }).png().toBuffer();
    expect((await decodeToRaw(await squareCrop(alpha, 4))).channels).toBe(3);
  });

  it('crops 16-bit and greyscale images to 8-bit RGB', async () => {
    const deep = await raw(20, 10).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(deep).metadata()).depth).toBe('ushort');
    const grey = await raw(20, 10).toColourspace('b-w').png().toBuffer();
    for (const bytes of [deep, grey]) {
      const meta = await sharp(await squareCrop(bytes, 8)).metadata();
      expect([meta.width, meta.height, meta.depth, meta.channels]).toEqual([8, 8, 'uchar', 3]);
    }
    expect(await decodeImage(grey)).toMatchObject({ width: 20, height: 10, channels: 1 });
  });

  it('maps extensions case-insensitively', () => {
    expect(formatFromExtension('a/B.JPG')).toBe('jpeg');
    expect(formatFromExtension('x.jpeg')).toBe('jpeg');
    expect(formatFromExtension('x.bmp')).toBe('bmp');
    expect(formatFromExtension('x.gif')).toBeNull();
    expect(formatFromExtension('noext')).toBeNull();
  });
});

describe('png text chunks', () => {
  it('round-trips A1111 parameters (tEXt), UTF-8 text (iTXt) and long text, and the PNG still decodes', async () => {
    const png = await raw().png().toBuffer();
    const parameters = 'a pokemon that looks like a mouse\nNegative prompt: blurry\nSteps: 25, Sampler: Euler, CFG scale: 7.5, Seed: 0, Size: 64x48';
    const long = 'tag, '.repeat(2000);
    const withText = writePngText(png, { parameters, prompt: '一只像老鼠的宝可梦 🐭', long });
    const text = readPngText(withText);
    expect(text.get('parameters')).toBe(parameters);
    expect(text.get('prompt')).toBe('一只像老鼠的宝可梦 🐭');
    expect(text.get('long')).toBe(long);
    const types = readPngChunks(withText).map((c) => c.type);
    expect(types.filter((t) => t === 'tEXt')).toHaveLength(2);
    expect(types).toContain('iTXt');
    expect(types.indexOf('tEXt')).toBeLessThan(types.indexOf('IDAT'));
    expect((await decodeToRaw(withText)).data.equals(bands())).toBe(true);

    const replaced = readPngText(writePngText(withText, { parameters: 'Steps: 5' }));
    expect(replaced.get('parameters')).toBe('Steps: 5');
    expect(replaced.get('long')).toBe(long);
  });

  it('reads zTXt written by other tools', async () => {
    const png = await raw(4, 4).png().toBuffer();
    const chunks = readPngChunks(png);
    const data = Buffer.concat([Buffer.from('Comment\0\0', 'latin1'), deflateSync(Buffer.from('made elsewhere', 'latin1'))]);
    const z = Buffer.alloc(12 + data.length);
    z.writeUInt32BE(data.length, 0);
    z.write('zTXt', 4, 'latin1');
    data.copy(z, 8);
    const { crc32 } = await import('node:zlib');
    z.writeUInt32BE(crc32(z.subarray(4, 8 + data.length)), 8 + data.length);
    const iend = chunks.find((c) => c.type === 'IEND')!;
    const withZ = Buffer.concat([png.subarray(0, iend.offset), z, png.subarray(iend.offset)]);
    expect(readPngText(withZ).get('Comment')).toBe('made elsewhere');
  });

  it('rejects bad CRCs, lengths past the end, truncation and bad keywords', async () => {
    const png = writePngText(await raw(4, 4).png().toBuffer(), { parameters: 'x' });
    const text = readPngChunks(png).find((c) => c.type === 'tEXt')!;
    const badCrc = Buffer.from(png);
    badCrc[text.offset + 8] ^= 0xff;
    expect(() => readPngText(badCrc)).toThrow(/tEXt at byte \d+ has a bad CRC/);
    const badLength = Buffer.from(png);
    badLength.writeUInt32BE(0x7ffffff0, text.offset);
    expect(() => readPngText(badLength)).toThrow(PngFormatError);
    expect(() => readPngText(png.subarray(0, png.length - 12))).toThrow(/no IEND/);
    expect(() => readPngText(Buffer.from('GIF89a'))).toThrow(/not a PNG/);
    expect(() => writePngText(png, { '': 'x' })).toThrow(/keyword/);
    expect(() => writePngText(png, { ['k'.repeat(80)]: 'x' })).toThrow(/keyword/);
  });
});
