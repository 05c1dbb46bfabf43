// Generates the demo dataset (lab layout: image/N.png + text/N.txt) that the top-level lorafile
// trains on: one-line drawings of simple shapes, 96x96, captions with the trigger "lineart".
// The output is committed; rerun this only to change the demo.
import sharp from 'sharp';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2] ?? 'datasets/demo-lineart';
const size = 96;
const shapes = [
  ['a circle', '<circle cx="48" cy="48" r="30"/>'],
  ['a square', '<rect x="20" y="20" width="56" height="56"/>'],
  ['a triangle', '<path d="M48 16 L80 78 L16 78 Z"/>'],
  ['a star', '<path d="M48 12 L57 38 L85 38 L62 54 L71 82 L48 65 L25 82 L34 54 L11 38 L39 38 Z"/>'],
  ['a face, side view', '<path d="M60 14 C36 14 26 34 30 48 L22 58 L31 60 C30 72 40 80 56 78 L58 86"/>'],
  ['a wave', '<path d="M8 48 C20 24 32 24 44 48 S68 72 88 48"/>'],
  ['a house', '<path d="M20 80 L20 44 L48 18 L76 44 L76 80 Z M40 80 L40 58 L56 58 L56 80"/>'],
  ['a heart', '<path d="M48 80 C12 56 16 24 36 24 C44 24 48 32 48 36 C48 32 52 24 60 24 C80 24 84 56 48 80 Z"/>'],
];
mkdirSync(join(root, 'image'), { recursive: true });
mkdirSync(join(root, 'text'), { recursive: true });
for (const [i, [caption, shape]] of shapes.entries()) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><rect width="100%" height="100%" fill="#f4efe4"/><g fill="none" stroke="#1b1b1b" stroke-width="4" stroke-linecap="round" stroke-linejoin="round">${shape}</g></svg>`;
  await sharp(Buffer.from(svg)).png({ compressionLevel: 9 }).toFile(join(root, 'image', `${i}.png`));
  writeFileSync(join(root, 'text', `${i}.txt`), `lineart, ${caption}\n`);
}
console.log(`wrote ${shapes.length} items to ${root}`);
