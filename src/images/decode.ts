// Safe image decoding for untrusted dataset images: the format is sniffed from the bytes (only
// png, jpeg, webp and bmp reach a decoder, never svg/pdf/tiff), sizes are bounded before pixels are
// allocated, and sharp fails on corrupt or truncated data instead of returning a grey image.
import sharp, { type Sharp } from 'sharp';
import { decodeBmp, isBmp, BmpError, type RawImage } from './bmp.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp' | 'bmp';

export const IMAGE_LIMITS = {
  /** largest image file accepted */
  maxBytes: 256 * 1024 * 1024,
  /** largest width × height accepted (8192 × 8192) */
  maxPixels: 8192 * 8192,
} as const;

const EXTENSION_FORMATS: Record<string, ImageFormat> = {
  '.png': 'png',
  '.jpg': 'jpeg',
  '.jpeg': 'jpeg',
  '.webp': 'webp',
  '.bmp': 'bmp',
};

/** The format an image file name promises (case-insensitive), or null for unsupported extensions. */
export function formatFromExtension(fileName: string): ImageFormat | null {
  const dot = fileName.lastIndexOf('.');
  if (dot < 0) return null;
  return EXTENSION_FORMATS[fileName.slice(dot).toLowerCase()] ?? null;
}

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

export interface ImageInfo {
  /** after EXIF orientation */
  width: number;
  height: number;
  format: ImageFormat;
  channels: number;
}

/** The real format of the bytes by their signature, whatever the file is called. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | null {
  const b = bytes;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  if (isBmp(b)) return 'bmp';
  return null;
}

function ascii(b: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...b.subarray(start, end));
}

function describeUnknown(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'the file is empty';
  const head = ascii(bytes, 0, Math.min(bytes.length, 16));
  if (head.startsWith('GIF8')) return 'GIF images are not supported; convert it to PNG';
  if (/^\s*<(\?xml|svg)/i.test(head)) return 'SVG images are not supported; export it as PNG';
  if (head.startsWith('II*') || head.startsWith('MM\0*')) return 'TIFF images are not supported; convert it to PNG';
  return 'not a PNG, JPEG, WebP or BMP image (unknown file signature)';
}

interface Opened {
  image: Sharp;
  format: ImageFormat;
}

function open(bytes: Uint8Array): Opened {
  if (bytes.length > IMAGE_LIMITS.maxBytes) {
    throw new ImageDecodeError(`image is ${bytes.length} bytes, more than the limit of ${IMAGE_LIMITS.maxBytes}`);
  }
  const format = sniffFormat(bytes);
  if (!format) throw new ImageDecodeError(describeUnknown(bytes));
  if (format === 'bmp') {
    let raw: RawImage;
    try {
      raw = decodeBmp(bytes, IMAGE_LIMITS.maxPixels);
    } catch (err) {
      if (err instanceof BmpError) throw new ImageDecodeError(`BMP: ${err.message}`);
      throw err;
    }
    return { format, image: sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } }) };
  }
  const image = sharp(bytes, { limitInputPixels: IMAGE_LIMITS.maxPixels, failOn: 'error', autoOrient: true });
  return { format, image };
}

async function guarded<T>(format: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new ImageDecodeError(`${format.toUpperCase()} does not decode: ${message.split('\n')[0]}`);
  }
}

/**
 * Decode the whole image (so that truncated or corrupt pixel data is caught, not only a broken
 * header) and return its size and format. Throws ImageDecodeError.
 */
export async function decodeImage(bytes: Uint8Array): Promise<ImageInfo> {
  const { image, format } = open(bytes);
  return guarded(format, async () => {
    const meta = await image.metadata();
    await image.stats();
    const width = meta.autoOrient?.width ?? meta.width;
    const height = meta.autoOrient?.height ?? meta.height;
    if (!width || !height) throw new ImageDecodeError(`${format.toUpperCase()} has no size`);
    return { width, height, format, channels: meta.channels };
  });
}

/**
 * Resize so the shorter side equals `size`, center-crop to size × size, and encode as an 8-bit RGB
 * PNG. Alpha is dropped (not blended), as PIL's convert('RGB') does in the lab's trainer.
 */
export async function squareCrop(bytes: Uint8Array, size: number): Promise<Buffer> {
  if (!Number.isInteger(size) || size < 1 || size > 8192) throw new RangeError(`crop size must be an integer in 1..8192, got ${size}`);
  const { image, format } = open(bytes);
  return guarded(format, () =>
    image
      .resize(size, size, { fit: 'cover', position: 'centre', kernel: 'lanczos3' })
      .removeAlpha()
      .toColourspace('srgb')
      .png({ compressionLevel: 6, adaptiveFiltering: false })
      .toBuffer(),
  );
}

/** Encode raw pixels (top-down rows, no padding) as PNG. */
export async function encodePng(raw: RawImage): Promise<Buffer> {
  const expected = raw.width * raw.height * raw.channels;
  if (raw.data.length !== expected) {
    throw new RangeError(`raw image ${raw.width}x${raw.height}x${raw.channels} needs ${expected} bytes, got ${raw.data.length}`);
  }
  return sharp(raw.data, { raw: { width: raw.width, height: raw.height, channels: raw.channels } }).png().toBuffer();
}

/** Decode any supported image to 8-bit sRGB pixels (RGB, or RGBA when it has alpha), top-down. */
export async function decodeToRaw(bytes: Uint8Array): Promise<RawImage> {
  const { image, format } = open(bytes);
  return guarded(format, async () => {
    const { data, info } = await image.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 && info.channels !== 4) throw new ImageDecodeError(`unexpected ${info.channels}-channel result`);
    return { width: info.width, height: info.height, channels: info.channels, data };
  });
}
