// fetch + prepare through the real executor, on real image files made with sharp in temp folders.
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DatasetSchema, type Config } from '../src/config/schema.js';
import type { Manifest, Listing } from '../src/datasets/manifest.js';
import { execute } from '../src/engine/executor.js';
import { lockPathFor, readLockfile } from '../src/engine/lockfile.js';
import type { Plan, StageEvent, StageKind, StageNode } from '../src/engine/types.js';
import { Cas } from '../src/cache/cas.js';
import { decodeImage, decodeToRaw } from '../src/images/decode.js';
import { stage as fetchStage } from '../src/stages/fetch.js';
import { stage as prepareStage, cleanCaption } from '../src/stages/prepare.js';
import { makeTempDir, writeFiles } from './helpers/cli.js';
import { pngBytes, pokemonParquet } from './helpers/parquet-fixtures.js';
import type { StageImpl } from '../src/engine/types.js';
import { createHash } from 'node:crypto';

let dir: string;
let cleanup: () => void;

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-prepare-'));
  useParquetFetch = false;
});
afterEach(() => {
  cleanup();
  delete process.env.HF_HOME;
  delete process.env.HF_HUB_OFFLINE;
});

const color = (r: number, g: number, b: number, width = 40, height = 30) => sharp({ create: { width, height, channels: 3, background: { r, g, b } } });

function config(dataset: Record<string, unknown>): Config {
  return {
    version: 1,
    out: 'out',
    models: {},
    datasets: { ds: DatasetSchema.parse(dataset) },
    loras: {},
    renders: {},
    file: join(dir, 'lorafile.yaml'),
    root: dir,
    source: '',
  };
}

function plan(): Plan {
  const nodes: StageNode[] = [
    { id: 'fetch:ds', kind: 'fetch', target: 'ds', deps: [], resource: 'cpu' },
    { id: 'prepare:ds', kind: 'prepare', target: 'ds', deps: ['fetch:ds'], resource: 'cpu' },
  ];
  return { stages: new Map(nodes.map((n) => [n.id, n])), order: nodes.map((n) => n.id), selected: [] };
}

/**
 * Stands in for the hub fetch: a listing of one parquet shard already in an HF cache snapshot (a
 * copied file, as on file systems without symlinks); prepare finds it there by repo path.
 */
const COMMIT = 'c'.repeat(40);
const parquetFetch: StageImpl = {
  kind: 'fetch',
  version: 1,
  materializeTo: () => null,
  async inputs(ctx) {
    const abs = join(ctx.root, 'train-00000-of-00001.parquet');
    return { params: {}, files: { 'train-00000-of-00001.parquet': await ctx.hashFile(abs) } };
  },
  async run(ctx, inputs) {
    const abs = join(ctx.root, 'train-00000-of-00001.parquet');
    const path = 'data/train-00000-of-00001.parquet';
    const snapshot = join(ctx.root, 'hf', 'hub', 'datasets--owner--pokemon', 'snapshots', COMMIT);
    mkdirSync(join(snapshot, 'data'), { recursive: true });
    copyFileSync(abs, join(snapshot, path));
    const sha256 = inputs.files['train-00000-of-00001.parquet'];
    const listing: Listing = { source: 'hub', layout: 'parquet', root: `owner/pokemon@${COMMIT}`, revision: COMMIT, entries: [], shards: [{ path, sha256, size: readFileSync(abs).length }] };
    writeFileSync(join(ctx.outDir, 'listing.json'), JSON.stringify(listing));
    return { meta: null };
  },
};
let useParquetFetch = false;

const registry = async (kind: StageKind) => {
  if (kind === 'fetch') return useParquetFetch ? parquetFetch : fetchStage;
  if (kind === 'prepare') return prepareStage;
  throw new Error(`no ${kind} stage in this test`);
};

async function build(dataset: Record<string, unknown>) {
  const cfg = config(dataset);
  const events: StageEvent[] = [];
  const result = await execute({ config: cfg, plan: plan(), registry, cacheDir: join(dir, 'cache'), lockFile: lockPathFor(cfg.file), mode: 'run', onEvent: (e) => events.push(e) });
  const cas = new Cas(join(dir, 'cache'));
  const report = (id: string) => result.reports.get(id)!;
  // outputs are found through the blob hashes the lock records
  const output = <T>(stageId: string, name: string): T => {
    const entry = readLockfile(lockPathFor(cfg.file), join(dir, 'cache')).lock.stages[stageId];
    if (!entry?.outputs[name]) throw new Error(`${stageId} recorded no ${name}`);
    return JSON.parse(readFileSync(cas.path(entry.outputs[name].sha256), 'utf8')) as T;
  };
  return { result, events, report, output, cas };
}

async function labDataset(n: number) {
  const files: Record<string, Buffer | string> = {};
  for (let i = 0; i < n; i++) {
    files[`ds/image/${i}.png`] = await color(20 * i, 100, 200 - 10 * i).png().toBuffer();
    files[`ds/text/${i}.txt`] = `one-line-art, shape ${i}`;
  }
  writeFiles(dir, files);
}

describe('prepare', () => {
  it('decodes png, jpeg, webp and bmp, stores originals in the CAS (captions only when not UTF-8) and crops to the resolution', async () => {
    const bmpPixels = await color(0, 0, 255, 12, 20).raw().toBuffer();
    const bmp = Buffer.alloc(54 + 12 * 3 * 20);
    bmp.write('BM', 0, 'latin1');
    bmp.writeUInt32LE(bmp.length, 2);
    bmp.writeUInt32LE(54, 10);
    bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(12, 18);
    bmp.writeInt32LE(20, 22);
    bmp.writeUInt16LE(1, 26);
    bmp.writeUInt16LE(24, 28);
    for (let i = 0; i < 12 * 20; i++) bmp.set([bmpPixels[i * 3 + 2], bmpPixels[i * 3 + 1], bmpPixels[i * 3]], 54 + i * 3);
    writeFiles(dir, {
      'ds/image/0.png': await color(255, 0, 0).png().toBuffer(),
      'ds/image/1.jpg': await color(0, 255, 0, 30, 40).jpeg().toBuffer(),
      'ds/image/2.webp': await color(255, 255, 0).webp().toBuffer(),
      'ds/image/3.bmp': bmp,
      'ds/text/0.txt': '\uFEFFone-line-art, red\r\n',
      'ds/text/1.txt': 'one-line-art, green',
      'ds/text/2.txt': 'one-line-art, yellow  ',
      'ds/text/3.txt': 'one-line-art, blue',
      'ds/text/4.txt': 'a caption without image',
      'ds/notes.md': 'stray',
    });
    const { report, output, cas } = await build({ folder: 'ds', resolution: 16 });
    expect(report('fetch:ds').outcome).toBe('ran');
    expect(report('prepare:ds').outcome).toBe('ran');
    const listing = output<Listing>('fetch:ds', 'listing.json');
    expect(listing.layout).toBe('lab');
    const manifest = output<Manifest>('prepare:ds', 'manifest.json');
    expect(manifest).toMatchObject({ dataset: 'ds', source: 'folder', layout: 'lab', stray: ['ds/notes.md'], skipped: [] });
    expect(manifest.items.map((i) => [i.id, i.image?.format ?? null, i.image?.width ?? null, i.image?.height ?? null])).toEqual([
      ['0', 'png', 40, 30],
      ['1', 'jpeg', 30, 40],
      ['2', 'webp', 40, 30],
      ['3', 'bmp', 12, 20],
      ['4', null, null, null],
    ]);
    const [red, , yellow, blue, orphan] = manifest.items;
    expect(red.image?.origin).toBe('ds/image/0.png');
    expect(readFileSync(cas.path(red.image!.sha256)).equals(readFileSync(join(dir, 'ds/image/0.png')))).toBe(true);
    expect(red.caption).toMatchObject({ text: '\uFEFFone-line-art, red\r\n', clean: 'one-line-art, red', origin: 'ds/text/0.txt', line: 1 });
    // its bytes are its text's UTF-8 (a BOM and CRLF included): not stored; validate takes them from the text
    expect(Buffer.from(red.caption!.text, 'utf8').equals(readFileSync(join(dir, 'ds/text/0.txt')))).toBe(true);
    expect(cas.has(red.caption!.sha256)).toBe(false);
    expect(yellow.caption?.clean).toBe('one-line-art, yellow');
    expect(orphan.image).toBeNull();
    expect(orphan.caption?.text).toBe('a caption without image');
    expect(orphan.prepared).toBeUndefined();
    for (const item of manifest.items.slice(0, 4)) {
      expect(item.prepared).toMatchObject({ width: 16, height: 16 });
      expect(await decodeImage(readFileSync(cas.path(item.prepared!.sha256)))).toMatchObject({ width: 16, height: 16, format: 'png' });
    }
    const bluePixels = await decodeToRaw(readFileSync(cas.path(blue.prepared!.sha256)));
    expect([...bluePixels.data.subarray(0, 3)]).toEqual([0, 0, 255]);
    expect(report('prepare:ds').items).toEqual({ ran: 5, cached: 0 });
  });

  it('re-runs only the item whose caption changed, and none after a rename', async () => {
    await labDataset(4);
    const first = await build({ folder: 'ds', resolution: 16 });
    expect(first.report('prepare:ds').items).toEqual({ ran: 4, cached: 0 });
    const noop = await build({ folder: 'ds', resolution: 16 });
    expect(noop.report('prepare:ds').outcome).toBe('fresh');

    writeFileSync(join(dir, 'ds/text/2.txt'), 'one-line-art, edited');
    const edited = await build({ folder: 'ds', resolution: 16 });
    expect(edited.report('fetch:ds').reason).toContain('ds/text/2.txt');
    expect(edited.report('prepare:ds').outcome).toBe('ran');
    expect(edited.report('prepare:ds').items).toEqual({ ran: 1, cached: 3 });
    const ran = edited.events.filter((e) => e.stage === 'prepare:ds' && e.item && e.outcome === 'ran').map((e) => e.item);
    expect(ran).toEqual(['2']);
    const manifest = edited.output<Manifest>('prepare:ds', 'manifest.json');
    expect(manifest.items[2].caption?.clean).toBe('one-line-art, edited');

    renameSync(join(dir, 'ds/image/3.png'), join(dir, 'ds/image/7.png'));
    renameSync(join(dir, 'ds/text/3.txt'), join(dir, 'ds/text/7.txt'));
    const renamed = await build({ folder: 'ds', resolution: 16 });
    expect(renamed.report('prepare:ds').outcome).toBe('ran');
    expect(renamed.report('prepare:ds').items).toEqual({ ran: 0, cached: 4 });
    expect(renamed.output<Manifest>('prepare:ds', 'manifest.json').items[3]).toMatchObject({ id: '7', image: { origin: 'ds/image/7.png' }, caption: { origin: 'ds/text/7.txt' } });

    const otherResolution = await build({ folder: 'ds', resolution: 8 });
    expect(otherResolution.report('prepare:ds').items).toEqual({ ran: 4, cached: 0 });
  });

  it('keeps an undecodable image as an error item, or skips it with a warning', async () => {
    await labDataset(3);
    const png = readFileSync(join(dir, 'ds/image/1.png'));
    writeFileSync(join(dir, 'ds/image/1.png'), png.subarray(0, 40));
    const kept = await build({ folder: 'ds' });
    const manifest = kept.output<Manifest>('prepare:ds', 'manifest.json');
    expect(manifest.items).toHaveLength(3);
    expect(manifest.items[1].image).toBeNull();
    expect(manifest.items[1].caption?.text).toBe('one-line-art, shape 1');
    expect(manifest.items[1].error).toMatchObject({ code: 'undecodable', origin: 'ds/image/1.png' });
    expect(manifest.items[1].error?.message).toMatch(/PNG does not decode/);
    expect((kept.result.reports.get('prepare:ds')!)).toMatchObject({ outcome: 'ran' });

    const skipped = await build({ folder: 'ds', bad_images: 'skip' });
    const m2 = skipped.output<Manifest>('prepare:ds', 'manifest.json');
    expect(m2.items.map((i) => i.id)).toEqual(['0', '2']);
    expect(m2.skipped).toEqual([{ origin: 'ds/image/1.png', reason: expect.stringMatching(/PNG does not decode/) }]);
    const warning = skipped.events.find((e) => e.stage === 'prepare:ds' && e.diagnostics);
    expect(warning?.diagnostics?.[0]).toMatchObject({ severity: 'warning', code: 'undecodable', file: 'ds/image/1.png', item: '1' });
    // the policy is applied after the memo: no item is decoded again
    expect(skipped.report('prepare:ds').items).toEqual({ ran: 0, cached: 3 });
  });

  it('prepares kohya and imagefolder datasets the same way', async () => {
    writeFiles(dir, {
      'k/10_x/a.png': await color(1, 2, 3).png().toBuffer(),
      'k/10_x/a.caption': 'kohya caption',
      'hf/images/0.jpeg': await color(9, 9, 9).jpeg().toBuffer(),
      'hf/metadata.jsonl': '{"file_name": "images/0.jpeg", "en_text": "a grey card"}\n',
    });
    const kohya = await build({ folder: 'k' });
    expect(kohya.output<Manifest>('prepare:ds', 'manifest.json').items).toMatchObject([{ id: '10_x/a', image: { format: 'png', origin: 'k/10_x/a.png' }, caption: { clean: 'kohya caption', origin: 'k/10_x/a.caption' } }]);
    const hf = await build({ folder: 'hf', caption_column: 'en_text' });
    expect(hf.output<Manifest>('prepare:ds', 'manifest.json')).toMatchObject({
      layout: 'imagefolder',
      items: [{ id: 'images/0.jpeg', image: { format: 'jpeg', width: 40, height: 30 }, caption: { text: 'a grey card', origin: 'hf/metadata.jsonl', line: 1 } }],
    });
  });

  it('fails fetch with the dataset error when a metadata file_name escapes the folder', async () => {
    writeFiles(dir, { 'hf/0.png': await color(1, 1, 1).png().toBuffer(), 'hf/metadata.jsonl': '{"file_name": "../../etc/passwd", "text": "x"}\n' });
    const { report } = await build({ folder: 'hf' });
    expect(report('fetch:ds').outcome).toBe('failed');
    expect(report('fetch:ds').reason).toMatch(/^hf\/metadata.jsonl:1:1: file_name "\.\.\/\.\.\/etc\/passwd" points outside the dataset folder\n  hint: /);
    expect(report('prepare:ds').outcome).toBe('skipped');
  });

  it('prepares parquet rows (pokemon schema) through the same per-item path', async () => {
    useParquetFetch = true;
    process.env.HF_HOME = join(dir, 'hf');
    process.env.HF_HUB_OFFLINE = '1';
    const good = await pngBytes(1, 24);
    writeFileSync(
      join(dir, 'train-00000-of-00001.parquet'),
      pokemonParquet([
        { image: good, path: null, en: 'a green bug', zh: '绿色虫子' },
        { image: new Uint8Array(Buffer.from('not an image')), path: null, en: 'broken bytes', zh: '坏' },
        { image: null, path: 'lost.png', en: 'no bytes', zh: '无' },
        { image: await pngBytes(2, 24), path: null, en: 'a red fox', zh: '红狐' },
      ]),
    );
    const spec = { hub: 'owner/pokemon', caption_column: 'en_text', resolution: 8 };
    const kept = await build(spec);
    const manifest = kept.output<Manifest>('prepare:ds', 'manifest.json');
    expect(manifest).toMatchObject({ source: 'hub', layout: 'parquet' });
    expect(manifest.items.map((i) => [i.id, i.row, i.caption?.text, i.image?.format ?? null, i.error?.code ?? null])).toEqual([
      ['row 0', 0, 'a green bug', 'png', null],
      ['row 1', 1, 'broken bytes', null, 'undecodable'],
      ['row 2', 2, 'no bytes', null, 'undecodable'],
      ['row 3', 3, 'a red fox', 'png', null],
    ]);
    expect(manifest.items[0].image).toMatchObject({ sha256: createHash('sha256').update(good).digest('hex'), width: 24, height: 24 });
    expect(manifest.items[0].image?.origin).toMatch(/row 0/);
    expect(manifest.items[0].prepared).toMatchObject({ width: 8, height: 8 });
    expect(manifest.items[1].error?.message).toMatch(/unknown file signature/);
    expect(manifest.items[2].error?.message).toMatch(/no bytes.*lost\.png/);

    const skipped = await build({ ...spec, bad_images: 'skip' });
    const m2 = skipped.output<Manifest>('prepare:ds', 'manifest.json');
    expect(m2.items.map((i) => i.id)).toEqual(['row 0', 'row 3']);
    expect(m2.skipped.map((s) => s.origin)).toEqual([expect.stringMatching(/row 1/), expect.stringMatching(/row 2/)]);
    expect(skipped.report('prepare:ds').items).toEqual({ ran: 0, cached: 4 });
  });

  it('cleans captions the way training reads them', () => {
    expect(cleanCaption('\uFEFF  a\r\nb\rc \n')).toBe('a\nb\nc');
  });
});
