// Image formats lorabuild reads, by file name and by signature. Kept free of sharp so that listing
// a dataset (every no-op run does) does not pay for loading libvips.
import { isBmp } from './bmp.js';

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

function ascii(b: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...b.subarray(start, end));
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

/** Why bytes with no supported signature are refused, naming the format where it is recognisable. */
export function describeUnsupported(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'the file is empty';
  const head = ascii(bytes, 0, Math.min(bytes.length, 16));
  if (head.startsWith('GIF8')) return 'GIF images are not supported; convert it to PNG';
  if (/^\s*<(\?xml|svg)/i.test(head)) return 'SVG images are not supported; export it as PNG';
  if (head.startsWith('II*') || head.startsWith('MM\0*')) return 'TIFF images are not supported; convert it to PNG';
  return 'not a PNG, JPEG, WebP or BMP image (unknown file signature)';
}
