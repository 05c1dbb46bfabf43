// What prepare keeps of one image: its size and format (the whole image decoded, so a damaged one
// is caught), the original bytes stored, and with a resolution the center-cropped PNG stored too.
// `store` puts bytes into the CAS: the pool's worker threads pass the CAS itself, the main thread
// its stage context.
import { decodeImage, ImageDecodeError, squareCrop } from './decode.js';

export interface DecodedContent {
  image: { sha256: string; width: number; height: number; format: string } | null;
  /** why the image does not decode (the item is kept with the error) */
  imageError: string | null;
  prepared: { sha256: string; width: number; height: number } | null;
}

export type Store = (bytes: Buffer) => { sha256: string } | Promise<{ sha256: string }>;

export async function decodeContent(store: Store, bytes: Uint8Array, resolution: number | null): Promise<DecodedContent> {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const original = await store(buffer);
  try {
    const info = await decodeImage(buffer);
    let prepared: DecodedContent['prepared'] = null;
    if (resolution !== null) prepared = { sha256: (await store(await squareCrop(buffer, resolution))).sha256, width: resolution, height: resolution };
    return { image: { sha256: original.sha256, width: info.width, height: info.height, format: info.format }, imageError: null, prepared };
  } catch (err) {
    if (!(err instanceof ImageDecodeError)) throw err;
    return { image: null, imageError: err.message, prepared: null };
  }
}
