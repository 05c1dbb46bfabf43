// The small line-art dataset many CLI tests train on: 64 px PNGs of one black ring each (the i-th
// ring further right and larger), in the lab layout shapes/image/i.png + shapes/text/i.txt.
import sharp from 'sharp';
import { writeFiles } from './cli.js';

export async function writeRingShapes(dir: string, captions: readonly string[]): Promise<void> {
  for (const [i, caption] of captions.entries()) {
    const svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/>` +
      `<circle cx="${20 + i * 10}" cy="32" r="${8 + i * 4}" fill="none" stroke="black" stroke-width="3"/></svg>`;
    writeFiles(dir, { [`shapes/image/${i}.png`]: await sharp(Buffer.from(svg)).png().toBuffer(), [`shapes/text/${i}.txt`]: caption });
  }
}
