// Hostile datasets through `lorabuild run validate:ds`, generated: captions holding every kind of
// control character, invalid UTF-8, huge or empty captions; images that are empty, random bytes,
// truncated, decompression bombs, text, a folder, a FIFO; and the folder-level cases that stop a
// walk (links out of the dataset, broken links, names that are not UTF-8 or hold escapes, too
// deep). Each must be diagnosed naming its file (exit 1), with nothing raw reaching the terminal,
// and no crash or hang.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';
import { RAW_CONTROL, Tally, withLimit } from './helpers/hostile.js';

const LORAFILE = 'version: 1\nmodels:\n  tiny: {builtin: tiny}\ndatasets:\n  ds:\n    folder: ds\n    layout: lab\n    rules: { min_size: 16, too_long: error }\nloras:\n  l: {model: tiny, dataset: ds}\n';

let tmp: { dir: string; cleanup: () => void };
let png: Buffer;
const tally = new Tally('dataset items');
const folderTally = new Tally('dataset folders');
beforeAll(async () => {
  tmp = makeTempDir('lorabuild-hostile-ds-');
  png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#888' } }).png().toBuffer();
});
afterAll(() => {
  tally.report('with a diagnostic naming the file (exit 1)');
  folderTally.report('with exit 1 (2 from the pre-flight check) naming the file');
  tmp?.cleanup();
});

/** a PNG whose header claims width x height pixels (a decompression bomb if believed) */
function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.alloc(16)), chunk('IEND', Buffer.alloc(0))]);
}

function crc32(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

interface ItemCase {
  name: string;
  /** files of the item (relative to ds/), written as given; `null` = made by `make` */
  files: Record<string, string | Buffer>;
  make?: (ds: string) => void;
  /** the file the diagnostic must name, and its rule */
  file: string;
  code: string;
}

function itemCases(): ItemCase[] {
  const cases: ItemCase[] = [];
  let n = 0;
  const item = (name: string, caption: string | Buffer | null, image: Buffer | null, file: 'image' | 'text', code: string, make?: (ds: string, i: number) => void) => {
    const i = n++;
    const files: Record<string, string | Buffer> = {};
    if (image) files[`image/${i}.png`] = image;
    if (caption !== null) files[`text/${i}.txt`] = caption;
    cases.push({ name, files, file: file === 'image' ? `ds/image/${i}.png` : `ds/text/${i}.txt`, code, ...(make ? { make: (ds: string) => make(ds, i) } : {}) });
  };
  for (const code of [0x00, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x7f, 0x85, 0x9b, 0x202e, 0x2066]) {
    item(`caption with U+${code.toString(16).padStart(4, '0')}`, `a face ${String.fromCharCode(code)}[2J side view\n`, png, 'text', 'encoding');
  }
  item('terminal title escape', 'a face \u001b]0;pwned\u0007 side view\n', png, 'text', 'encoding');
  item('caption not UTF-8', Buffer.from([0x61, 0x20, 0xff, 0xfe, 0x62, 0x0a]), png, 'text', 'encoding');
  item('caption only a BOM', '\ufeff', png, 'text', 'empty_caption');
  item('caption only whitespace', ' \n\t\n', png, 'text', 'empty_caption');
  item('empty caption', '', png, 'text', 'empty_caption');
  item('1 MB caption', `${'word '.repeat(200_000)}\n`, png, 'text', 'too_long');
  item('empty image', 'a face\n', Buffer.alloc(0), 'image', 'undecodable');
  item('random bytes as image', 'a face\n', Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), 'image', 'undecodable');
  item('truncated PNG', 'a face\n', png.subarray(0, 40), 'image', 'undecodable');
  item('PNG claiming 100000x100000 pixels', 'a face\n', pngClaiming(100_000, 100_000), 'image', 'undecodable');
  item('PNG claiming 2^31 x 1 pixels', 'a face\n', pngClaiming(2 ** 31 - 1, 1), 'image', 'undecodable');
  item('text named .png', 'a face\n', Buffer.from('hello, I am not an image\n'), 'image', 'undecodable');
  item('SVG named .png', 'a face\n', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="9000"/>'), 'image', 'undecodable');
  item('a folder named .png', 'a face\n', null, 'text', 'missing_image', (ds, i) => mkdirSync(join(ds, `image/${i}.png`)));
  item('a FIFO named .png', 'a face\n', null, 'text', 'missing_image', (ds, i) => execFileSync('mkfifo', [join(ds, `image/${i}.png`)]));
  item('a FIFO named .txt', null, png, 'image', 'missing_caption', (ds, i) => execFileSync('mkfifo', [join(ds, `text/${i}.txt`)]));
  item('a folder named .txt', null, png, 'image', 'missing_caption', (ds, i) => mkdirSync(join(ds, `text/${i}.txt`)));
  return cases;
}

describe('hostile dataset items', () => {
  it('every item is diagnosed naming its file; the run exits 1 with nothing raw on the terminal', async () => {
    const dir = join(tmp.dir, 'items');
    mkdirSync(join(dir, 'ds/image'), { recursive: true });
    mkdirSync(join(dir, 'ds/text'), { recursive: true });
    writeFileSync(join(dir, 'lorafile.yaml'), LORAFILE);
    const cases = itemCases();
    for (const c of cases) {
      writeFiles(join(dir, 'ds'), c.files);
      c.make?.(join(dir, 'ds'));
    }
    const r = await withLimit(300_000, () => runCli(['run', 'validate:ds'], { cwd: dir, timeoutMs: 300_000 }));
    expect(r, 'the run hung').not.toBe('hung');
    if (r === 'hung') return;
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout + r.stderr).not.toMatch(RAW_CONTROL);
    expect(r.stdout + r.stderr).not.toContain('internal error');
    const report = JSON.parse(readFileSync(join(dir, 'out/datasets/ds/validation.json'), 'utf8')) as { diagnostics: { file?: string; code: string; message: string }[] };
    for (const c of cases) {
      const found = report.diagnostics.find((d) => d.file === c.file && d.code === c.code);
      if (found) tally.add(c.name, 'rejected', `${c.file}: ${found.message}`);
      else tally.add(c.name, 'crashed', `no ${c.code} diagnostic for ${c.file}: ${JSON.stringify(report.diagnostics.filter((d) => d.file === c.file))}`);
    }
    expect(tally.failures()).toEqual([]);
    expect(readFileSync(join(dir, 'out/datasets/ds/validation.md'), 'utf8')).not.toMatch(RAW_CONTROL);
  }, 400_000);
});

describe('hostile dataset folders', () => {
  const FOLDERS: [string, (ds: string, root: string) => void, string][] = [
    ['a caption linked to /etc/passwd', (ds) => symlinkSync('/etc/passwd', join(ds, 'text/9.txt')), 'ds/text/9.txt: is a link to /etc/passwd, outside the dataset folder'],
    ['a folder linked outside', (ds, root) => (mkdirSync(join(root, 'elsewhere')), symlinkSync(join(root, 'elsewhere'), join(ds, 'image/more'))), 'ds/image/more: is a link to'],
    ['a broken link', (ds) => symlinkSync(join(ds, 'nowhere'), join(ds, 'text/9.txt')), 'ds/text/9.txt: is a symbolic link whose target does not exist'],
    ['a link loop', (ds) => symlinkSync(join(ds, 'image'), join(ds, 'image/loop')), ''],
    ['a file name that is not UTF-8', (ds) => writeFileSync(Buffer.from([...Buffer.from(join(ds, 'text/')), 0xff, 0xfe, 0x2e, 0x74, 0x78, 0x74]), 'x'), 'ds/text/\\xff\\xfe.txt: file name is not valid UTF-8'],
    ['a file name with an escape', (ds) => writeFileSync(join(ds, 'text/\u001b[2J.txt'), 'x'), 'contains control characters'],
    ['a file name with a bidi override', (ds) => writeFileSync(join(ds, 'text/\u202egnp.txt'), 'x'), 'contains control characters'],
    ['33 nested folders', (ds) => mkdirSync(join(ds, ...Array(34).fill('d')), { recursive: true }), 'folders nest more than 32 levels deep'],
    // the pre-flight check refuses these before anything runs: exit 2 at the `folder:` line
    ['the dataset folder is a file', (ds) => (execFileSync('rm', ['-rf', ds]), writeFileSync(ds, 'x')), "lorafile.yaml:6:13: error: dataset 'ds': folder ds is a file, not a folder"],
    ['the dataset folder is missing', (ds) => execFileSync('rm', ['-rf', ds]), "lorafile.yaml:6:13: error: dataset 'ds': folder ds does not exist"],
    ['the dataset folder is a FIFO', (ds) => (execFileSync('rm', ['-rf', ds]), execFileSync('mkfifo', [ds])), "lorafile.yaml:6:13: error: dataset 'ds': folder ds is a FIFO, not a folder"],
  ];
  const exitFor = (message: string) => (message.startsWith('lorafile.yaml:') ? 2 : 1);
  it('each stops the build with exit 1 (exit 2 from the pre-flight check) and a message naming the file, never a crash or a hang', async () => {
    for (const [i, [name, damage, message]] of FOLDERS.entries()) {
      const dir = join(tmp.dir, `folder-${i}`);
      writeFiles(dir, { 'lorafile.yaml': LORAFILE, 'ds/image/0.png': png, 'ds/text/0.txt': 'a face\n' });
      damage(join(dir, 'ds'), dir);
      const r = await withLimit(120_000, () => runCli(['run', 'validate:ds'], { cwd: dir, timeoutMs: 120_000 }));
      if (r === 'hung' || r.signal) {
        folderTally.add(name, 'hung');
        continue;
      }
      const out = r.stdout + r.stderr;
      if (RAW_CONTROL.test(out) || out.includes('internal error')) folderTally.add(name, 'crashed', out.slice(0, 300));
      else if (r.code === 0 && message === '') folderTally.add(name, 'accepted');
      else if (r.code === exitFor(message) && message !== '' && out.includes(message)) folderTally.add(name, 'rejected', out.split('\n').find((l) => l.includes(message)));
      else folderTally.add(name, 'crashed', `exit ${r.code}: ${out.slice(0, 400)}`);
    }
    expect(folderTally.failures()).toEqual([]);
  }, 900_000);
});
