// A small, bounds-checked decoder for uncompressed 24- and 32-bit Windows BMP files.
// sharp (libvips) has no BMP loader, and BMP is common in student datasets made on Windows.
// Palette, RLE and 16-bit BMPs are refused with a message that says how to convert them.

export class BmpError extends Error {
  override name = 'BmpError';
}

export interface RawImage {
  width: number;
  height: number;
  channels: 3 | 4;
  /** top-down rows, RGB or RGBA, no padding */
  data: Buffer;
}

const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;
const FILE_HEADER_SIZE = 14;

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d; // 'BM'
}

interface ChannelMask {
  shift: number;
  bits: number;
}

function maskOf(mask: number): ChannelMask | null {
  if (mask === 0) return null;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (shift + bits < 32 && ((mask >>> (shift + bits)) & 1) === 1) bits++;
  if (shift + bits < 32 && (mask >>> (shift + bits)) !== 0) throw new BmpError(`bit mask 0x${(mask >>> 0).toString(16)} is not contiguous`);
  return { shift, bits };
}

function extract(pixel: number, mask: ChannelMask): number {
  const value = (pixel >>> mask.shift) & ((2 ** mask.bits) - 1);
  if (mask.bits === 8) return value;
  return Math.round((value * 255) / ((2 ** mask.bits) - 1));
}

/**
 * Decode a BMP. `maxPixels` bounds width × height before any pixel memory is allocated.
 * Throws BmpError for anything malformed or unsupported.
 */
export function decodeBmp(bytes: Uint8Array, maxPixels: number): RawImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isBmp(buf)) throw new BmpError('not a BMP file (no BM signature)');
  if (buf.length < FILE_HEADER_SIZE + 12) throw new BmpError(`file is truncated (${buf.length} bytes, headers need at least 26)`);
  const pixelOffset = buf.readUInt32LE(10);
  const dibSize = buf.readUInt32LE(14);
  if (dibSize === 12) throw new BmpError('OS/2 BMP (BITMAPCOREHEADER) is not supported; re-save the image as PNG');
  if (dibSize < 40 || dibSize > 4096) throw new BmpError(`unsupported BMP info header size ${dibSize}`);
  if (buf.length < FILE_HEADER_SIZE + dibSize) throw new BmpError('file is truncated inside the info header');

  const width = buf.readInt32LE(18);
  const rawHeight = buf.readInt32LE(22);
  const planes = buf.readUInt16LE(26);
  const bpp = buf.readUInt16LE(28);
  const compression = buf.readUInt32LE(30);
  if (planes !== 1) throw new BmpError(`planes must be 1, found ${planes}`);
  if (width <= 0) throw new BmpError(`width must be positive, found ${width}`);
  if (rawHeight === 0 || rawHeight === -2147483648) throw new BmpError(`invalid height ${rawHeight}`);
  const topDown = rawHeight < 0;
  const height = Math.abs(rawHeight);
  if (width * height > maxPixels) {
    throw new BmpError(`image is ${width}x${height} pixels, more than the limit of ${maxPixels}`);
  }
  if (bpp !== 24 && bpp !== 32) {
    throw new BmpError(`${bpp}-bit BMP is not supported (only uncompressed 24- and 32-bit); re-save the image as PNG`);
  }

  let masks: { r: ChannelMask; g: ChannelMask; b: ChannelMask; a: ChannelMask | null } | null = null;
  if (compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) {
    if (bpp !== 32) throw new BmpError('BITFIELDS compression is only supported for 32-bit BMPs');
    // Masks live inside a V2+ header, or in the 12/16 bytes right after a 40-byte header.
    const maskStart = FILE_HEADER_SIZE + 40;
    const maskCount = compression === BI_ALPHABITFIELDS || dibSize >= 56 ? 4 : 3;
    if (buf.length < maskStart + 4 * maskCount) throw new BmpError('file is truncated inside the colour masks');
    const r = maskOf(buf.readUInt32LE(maskStart));
    const g = maskOf(buf.readUInt32LE(maskStart + 4));
    const b = maskOf(buf.readUInt32LE(maskStart + 8));
    const a = maskCount === 4 ? maskOf(buf.readUInt32LE(maskStart + 12)) : null;
    if (!r || !g || !b) throw new BmpError('colour masks for red, green and blue must not be zero');
    masks = { r, g, b, a };
  } else if (compression !== BI_RGB) {
    throw new BmpError(`compressed BMP (compression ${compression}) is not supported; re-save the image as PNG`);
  }

  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  const pixelBytes = stride * height;
  if (pixelOffset < FILE_HEADER_SIZE + dibSize || pixelOffset > buf.length) {
    throw new BmpError(`pixel data offset ${pixelOffset} lies outside the file`);
  }
  if (pixelOffset + pixelBytes > buf.length) {
    throw new BmpError(`file is truncated: ${width}x${height} at ${bpp} bits needs ${pixelBytes} bytes of pixels, ${buf.length - pixelOffset} present`);
  }

  // A 32-bit BI_RGB pixel's fourth byte is reserved (Windows ignores it), so the result is opaque.
  const channels: 3 | 4 = masks?.a ? 4 : 3;
  const out = Buffer.allocUnsafe(width * height * channels);
  const step = bpp / 8;
  for (let y = 0; y < height; y++) {
    const srcRow = pixelOffset + (topDown ? y : height - 1 - y) * stride;
    let o = y * width * channels;
    for (let x = 0; x < width; x++) {
      const p = srcRow + x * step;
      if (masks) {
        const pixel = buf.readUInt32LE(p);
        out[o++] = extract(pixel, masks.r);
        out[o++] = extract(pixel, masks.g);
        out[o++] = extract(pixel, masks.b);
        if (masks.a) out[o++] = extract(pixel, masks.a);
      } else {
        out[o++] = buf[p + 2];
        out[o++] = buf[p + 1];
        out[o++] = buf[p];
      }
    }
  }
  return { width, height, channels, data: out };
}
