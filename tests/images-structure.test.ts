// The structural checks prepare uses instead of decoding every pixel: whole images of every kind
// pass; for damaged ones (cut at many places, bytes flipped) the check finds a problem whenever the
// real decoder (sharp, failOn: error) fails — it may find more, never less.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage } from '../src/images/decode.js';
import { jpegProblem, pngProblem } from '../src/images/structure.js';

const base = () => {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="80"><rect width="96" height="80" fill="white"/><circle cx="40" cy="40" r="30" fill="rgb(200,40,90)" stroke="black" stroke-width="5"/></svg>`;
  return sharp(Buffer.from(svg));
};

async function decoderError(bytes: Buffer): Promise<string | undefined> {
  try {
    await sharp(bytes, { failOn: 'error' }).raw().toBuffer();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const decoderFails = async (bytes: Buffer) => (await decoderError(bytes)) !== undefined;

describe('whole images pass', () => {
  it('JPEG: baseline, optimised, 4:4:4, grayscale; progressive ones are left to the decoder', async () => {
    expect(jpegProblem(await base().jpeg({ progressive: true }).toBuffer())).toBeUndefined();
    const variants = [
      await base().jpeg().toBuffer(),
      await base().jpeg({ quality: 30, chromaSubsampling: '4:4:4' }).toBuffer(),
      await base().grayscale().jpeg().toBuffer(),
      await base().jpeg({ optimiseCoding: true, trellisQuantisation: true }).toBuffer(),
    ];
    for (const jpeg of variants) expect(jpegProblem(jpeg)).toBeNull();
  });

  it('PNG: RGB, RGBA, palette, grayscale, 16-bit; interlaced ones are left to the decoder', async () => {
    const variants = [
      await base().png().toBuffer(),
      await base().ensureAlpha().png().toBuffer(),
      await base().png({ palette: true }).toBuffer(),
      await base().grayscale().png().toBuffer(),
      await base().toColourspace('rgb16').png().toBuffer(),
    ];
    for (const png of variants) expect(pngProblem(png)).toBeNull();
    expect(pngProblem(await base().png({ progressive: true }).toBuffer())).toBeUndefined();
  });
});

describe('damaged images', () => {
  it('cut anywhere: the check names the problem wherever the decoder fails', async () => {
    for (const [kind, whole, check] of [
      ['jpeg', await base().jpeg().toBuffer(), jpegProblem],
      ['png', await base().png().toBuffer(), pngProblem],
    ] as const) {
      for (let cut = 1; cut < whole.length; cut += Math.max(1, Math.floor(whole.length / 40))) {
        const bytes = whole.subarray(0, cut);
        const problem = check(bytes);
        if (await decoderFails(bytes)) expect(problem, `${kind} cut at ${cut}`).toEqual(expect.any(String));
        expect(problem, `${kind} cut at ${cut}: a cut file is never whole`).not.toBeNull();
      }
    }
  });

  it('bytes flipped: decodeImage (header read + structure) refuses whatever the full decode refuses, but damage inside entropy-coded data', async () => {
    let state = 7;
    const random = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32;
    let caught = 0;
    for (const whole of [await base().jpeg().toBuffer(), await base().jpeg({ progressive: true }).toBuffer(), await base().png().toBuffer()]) {
      for (let n = 0; n < 300; n++) {
        const bytes = Buffer.from(whole);
        for (let k = 0; k < 1 + (n % 3); k++) bytes[Math.floor(random() * bytes.length)] ^= 1 + Math.floor(random() * 255);
        const failure = await decoderError(bytes);
        // libjpeg finds a bad Huffman code (and a scan that ends early) only while decoding: documented in structure.ts
        if (failure && !/Corrupt JPEG data: (bad Huffman code|premature end of data segment)/.test(failure)) {
          caught++;
          await expect(decodeImage(bytes), `variant ${n}: ${failure}`).rejects.toThrow(/does not decode|corrupt|not a PNG/);
        }
      }
    }
    expect(caught).toBeGreaterThan(50);
  });

  it('a Huffman table whose codes overflow their lengths is refused, as libjpeg refuses it', async () => {
    const jpeg = Buffer.from(await base().jpeg().toBuffer());
    let at = 2;
    while (!(jpeg[at] === 0xff && jpeg[at + 1] === 0xc4)) at += 2 + jpeg.readUInt16BE(at + 2);
    const counts = at + 5; // after marker, length and the class/id byte
    const last = [...Array(16).keys()].reverse().find((k) => jpeg[counts + k] >= 2)!;
    jpeg[counts + last] -= 2;
    jpeg[counts] += 2; // more 1-bit codes than there is room for
    expect(jpegProblem(jpeg)).toBe('JPEG has a bogus Huffman table');
    expect(await decoderFails(jpeg)).toBe(true);
  });

  it('says what is wrong', async () => {
    const png = await base().png().toBuffer();
    const jpeg = await base().jpeg().toBuffer();
    expect(pngProblem(png.subarray(0, png.length - 12))).toBe('PNG is truncated (no IEND chunk)');
    const flipped = Buffer.from(png);
    flipped[40] ^= 0xff;
    expect(pngProblem(flipped)).toMatch(/^PNG chunk .{4} has a bad CRC/);
    expect(jpegProblem(jpeg.subarray(0, jpeg.length - 2))).toBe('JPEG is truncated (no end-of-image marker)');
    expect(jpegProblem(jpeg.subarray(0, 30))).toMatch(/runs past the end of the file/);
  });
});
