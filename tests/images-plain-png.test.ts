// decodeImage measures a whole, plain PNG (8/16-bit RGB or RGBA, no tRNS, nothing that may carry an
// EXIF orientation) from its header instead of asking sharp: the answer must be sharp's for every
// kind, and anything outside the plain kind (or damaged) must still go to sharp.
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage, ImageDecodeError } from '../src/images/decode.js';
import { plainPngInfo, pngStructure } from '../src/images/structure.js';

const base = () => sharp({ create: { width: 20, height: 10, channels: 3, background: { r: 200, g: 10, b: 30 } } });

/** `png` with a chunk inserted before its first IDAT */
function withChunk(png: Buffer, type: string, data: Buffer): Buffer {
  const idat = png.indexOf('IDAT', 8, 'latin1') - 4;
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([png.subarray(0, idat), head, data, crc, png.subarray(idat)]);
}

async function sharpSays(png: Buffer) {
  const m = await sharp(png).metadata();
  return { width: m.autoOrient?.width ?? m.width, height: m.autoOrient?.height ?? m.height, channels: m.channels, format: 'png' };
}

describe('plain PNGs measured from their header', () => {
  it('gives what sharp gives, for plain and other PNGs alike', async () => {
    const rgb = await base().png().toBuffer();
    const variants: Record<string, { png: Buffer; plain: boolean }> = {
      rgb: { png: rgb, plain: true },
      rgba: { png: await base().ensureAlpha().png().toBuffer(), plain: true },
      rgb16: { png: await base().toColourspace('rgb16').png().toBuffer(), plain: true },
      palette: { png: await base().png({ palette: true }).toBuffer(), plain: false },
      grey: { png: await base().toColourspace('b-w').png().toBuffer(), plain: false },
      // orientation 6: a decoder turns the 20x10 image to 10x20
      exif6: { png: await base().withMetadata({ orientation: 6 }).png().toBuffer(), plain: false },
      // an RGB transparency key: a decoder adds an alpha channel
      trns: { png: withChunk(rgb, 'tRNS', Buffer.from([0, 200, 0, 10, 0, 30])), plain: false },
    };
    for (const [name, { png, plain }] of Object.entries(variants)) {
      expect(plainPngInfo(pngStructure(png), 8192 * 8192) !== undefined, name).toBe(plain);
      expect(await decodeImage(png), name).toEqual(await sharpSays(png));
    }
    expect((await decodeImage(variants.exif6.png)).width).toBe(10);
    expect((await decodeImage(variants.trns.png)).channels).toBe(4);
  });

  it('leaves damaged, too large or odd headers to sharp', async () => {
    const rgb = await base().png().toBuffer();
    const truncated = rgb.subarray(0, rgb.length - 20);
    expect(plainPngInfo(pngStructure(truncated), 8192 * 8192)).toBeUndefined();
    await expect(decodeImage(truncated)).rejects.toBeInstanceOf(ImageDecodeError);
    // 20 x 10 = 200 pixels: over a 100-pixel limit it is not measured from the header
    expect(plainPngInfo(pngStructure(rgb), 100)).toBeUndefined();
    expect(plainPngInfo(pngStructure(rgb), 200)).toEqual({ width: 20, height: 10, channels: 3 });
  });
});
