// sha256 of a file's contents: one read for small files, a stream for big ones.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';

const STREAM_ABOVE = 8 * 1024 * 1024;

/** for small files only (read whole) */
export function sha256FileSync(absPath: string): string {
  return createHash('sha256').update(readFileSync(absPath)).digest('hex');
}

export async function sha256File(absPath: string, size: number): Promise<string> {
  if (size <= STREAM_ABOVE) return sha256FileSync(absPath);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(absPath, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
