// Safe image decoding for untrusted dataset images: the format is sniffed from the bytes (only
// png, jpeg, webp and bmp reach a decoder, never svg/pdf/tiff), sizes are bounded before pixels are
// allocated, and sharp fails on corrupt or truncated data instead of returning a grey image.
import sharp, { type Sharp } from 'sharp';
import { decodeBmp, BmpError, type RawImage } from './bmp.js';
import { describeUnsupported, IMAGE_LIMITS, sniffFormat, type ImageFormat } from './formats.js';
import { jpegProblem, plainPngInfo, pngStructure } from './structure.js';

export { formatFromExtension, IMAGE_LIMITS, sniffFormat, type ImageFormat } from './formats.js';

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

interface Opened {
  image: Sharp;
  format: ImageFormat;
}

function open(bytes: Uint8Array): Opened {
  if (bytes.length > IMAGE_LIMITS.maxBytes) {
    throw new ImageDecodeError(`image is ${bytes.length} bytes, more than the limit of ${IMAGE_LIMITS.maxBytes}`);
  }
  const format = sniffFormat(bytes);
  if (!format) throw new ImageDecodeError(describeUnsupported(bytes));
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
  // a whole RGB(A) PNG is measured from its header: sharp's metadata() would cost 10x the structure check
  const png = bytes.length <= IMAGE_LIMITS.maxBytes && sniffFormat(bytes) === 'png' ? pngStructure(bytes) : undefined;
  const plain = png && plainPngInfo(png, IMAGE_LIMITS.maxPixels);
  if (plain) return { ...plain, format: 'png' };
  const { image, format } = open(bytes);
  return guarded(format, async () => {
    const meta = await image.metadata();
    // a truncated or damaged image fails here: JPEG and PNG by their structure (images/structure.ts,
    // a tenth of a decode's cost), anything else (or what the structure check leaves open) by
    // decoding every pixel (a raw pass: ~8x faster than stats())
    const problem = format === 'jpeg' ? jpegProblem(bytes) : format === 'png' ? png!.problem : undefined;
    if (problem) throw new ImageDecodeError(`${format.toUpperCase()} does not decode: ${problem}`);
    if (problem === undefined) await image.raw().toBuffer();
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
