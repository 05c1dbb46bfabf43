// Generates a lab-layout dataset (image/N.png + text/N.txt) of any size quickly: tiny RGB PNGs
// written by a minimal encoder (every image different), one caption per image.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** a size x size RGB PNG whose pixels depend on `seed` */
export function tinyPng(seed, size = 16) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = Buffer.alloc((size * 3 + 1) * size);
  for (let y = 0; y < size; y++) {
    const row = y * (size * 3 + 1);
    for (let x = 0; x < size; x++) {
      const p = row + 1 + x * 3;
      // the first pixel spells the seed, so every image is different
      const first = x === 0 && y === 0;
      rows[p] = first ? seed & 255 : (seed * 7 + x * 16) & 255;
      rows[p + 1] = first ? (seed >> 8) & 255 : (seed * 3 + y * 5) & 255;
      rows[p + 2] = first ? (seed >> 16) & 255 : (seed * 13 + y * 16) & 255;
    }
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

/** the caption writeLabDataset gives item `i` */
export const labCaption = (i) => `one-line-art, shape ${i}, side view\n`;

export function writeLabDataset(root, count) {
  mkdirSync(join(root, 'image'), { recursive: true });
  mkdirSync(join(root, 'text'), { recursive: true });
  for (let i = 0; i < count; i++) {
    writeFileSync(join(root, 'image', `${i}.png`), tinyPng(i));
    writeFileSync(join(root, 'text', `${i}.txt`), labCaption(i));
  }
}
