// Bytes of a file a dataset listing names, refused if too big or changed since the listing hashed
// it. Shared by prepare (captions) and the image pool's threads (images: read where they decode).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface ListedSource {
  /** as the listing shows it (for messages) */
  path: string;
  abs: string;
  sha256: string;
  size: number;
  /** the most bytes accepted */
  limit: number;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function checkListedSize(file: ListedSource): void {
  if (file.size > file.limit) throw new Error(`${file.path}: ${file.size} bytes is more than the limit of ${file.limit}`);
}

/** throws if `bytes` are not what the listing hashed */
export function checkListedBytes(file: ListedSource, bytes: Uint8Array): void {
  if (bytes.length > file.limit) throw new Error(`${file.path}: ${bytes.length} bytes is more than the limit of ${file.limit}`);
  if (sha256Hex(bytes) !== file.sha256) throw new Error(`${file.path} changed after the dataset was listed; run lorabuild again`);
}

export function readListedSync(file: ListedSource): Buffer {
  checkListedSize(file);
  const bytes = readFileSync(file.abs);
  checkListedBytes(file, bytes);
  return bytes;
}

/**
 * An image's bytes, or the listed file they are in: read and checked by the thread that decodes it
 * (the main thread then neither reads nor copies nor hashes the image).
 */
export type ImageSource = { bytes: Uint8Array } | { file: ListedSource };

export function sourceBytes(source: ImageSource): Uint8Array {
  return 'bytes' in source ? source.bytes : readListedSync(source.file);
}
