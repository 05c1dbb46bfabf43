// The image pool's threads read a listed image file themselves (prepare no longer reads, hashes
// and copies it on the main thread): they must refuse a file that changed since the listing hashed
// it, or that is over the limit, as prepare's own read does, and store what they read.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { decodeAndStore } from '../src/images/decode-pool.js';
import { makeTempDir } from './helpers/cli.js';
// @ts-expect-error the bench helpers are plain JavaScript
import { tinyPng } from '../bench/lab-dataset.js';

const tmp = makeTempDir('lorabuild-image-pool-');
afterAll(tmp.cleanup);

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('image pool: listed files read on its threads', () => {
  const cacheDir = join(tmp.dir, 'cache');
  const cas = new Cas(cacheDir);
  const store = (bytes: Buffer) => cas.putBuffer(bytes);

  it('decodes and stores the file the listing hashed', async () => {
    const png: Buffer = tinyPng(7, 24);
    const abs = join(tmp.dir, 'a.png');
    writeFileSync(abs, png);
    const file = { path: 'image/a.png', abs, sha256: sha256(png), size: png.length, limit: 1 << 20 };
    const result = await decodeAndStore(cacheDir, { file }, null, store);
    expect(result).toEqual({ image: { sha256: sha256(png), width: 24, height: 24, format: 'png' }, imageError: null, prepared: null });
    expect(readFileSync(cas.path(sha256(png)))).toEqual(png);
  });

  it('refuses a file changed since it was listed, and one over the limit', async () => {
    const listed: Buffer = tinyPng(8);
    const abs = join(tmp.dir, 'b.png');
    writeFileSync(abs, tinyPng(9));
    const file = { path: 'image/b.png', abs, sha256: sha256(listed), size: listed.length, limit: 1 << 20 };
    await expect(decodeAndStore(cacheDir, { file }, null, store)).rejects.toThrow('image/b.png changed after the dataset was listed; run lorabuild again');
    expect(existsSync(cas.path(sha256(tinyPng(9))))).toBe(false);
    await expect(decodeAndStore(cacheDir, { file: { ...file, limit: 10 } }, null, store)).rejects.toThrow(`image/b.png: ${listed.length} bytes is more than the limit of 10`);
  });
});
