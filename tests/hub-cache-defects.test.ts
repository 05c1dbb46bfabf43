// The Hub cache defects found by comparing lorabuild with the Python huggingface_hub client, one
// test each (issue 16), plus the hub's network messages of issue 21 (a silent hub, a listing that
// announces 10^15 bytes, an HTML page at HF_ENDPOINT). Real CLI, real loopback hub, real files.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parquetMetadata } from 'hyparquet';
import { ByteWriter, ParquetWriter } from 'hyparquet-writer';
import { parse as parseYaml } from 'yaml';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DatasetSchema } from '../src/config/schema.js';
import { HubError } from '../src/datasets/hub/errors.js';
import { readParquetItems, type HubItem } from '../src/datasets/hub/items.js';
import { decodeLz4Block, decompressLz4, decompressLz4Raw } from '../src/datasets/hub/lz4.js';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';
import { HubServer } from './helpers/hub-server.js';
import { lz4Hadoop, lz4Literals, lz4PokemonParquet, pngBytes, pokemonParquet } from './helpers/parquet-fixtures.js';

let hub: HubServer;
let dir: string;
let cleanup: () => void;
let images: Uint8Array[];

beforeAll(async () => {
  hub = await HubServer.start();
  images = await Promise.all(Array.from({ length: 24 }, (_, i) => pngBytes(i, 12)));
});
afterAll(async () => hub.stop());
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-hub-defects-'));
  hub.clearLog();
});
afterEach(() => cleanup());

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

function rows(from: number, to: number) {
  return Array.from({ length: to - from }, (_, i) => ({ image: images[(from + i) % images.length], path: `${from + i}.png`, en: `pokemon ${from + i}`, zh: `${from + i}` }));
}

function lorafile(dataset: string, root = dir): void {
  writeFileSync(join(root, 'lorafile.yaml'), `version: 1\ndatasets:\n  pokemon:\n${dataset.replace(/^/gm, '    ')}\n`);
}

function hfEnv(env: Record<string, string | undefined> = {}) {
  return { HF_HOME: join(dir, 'hf'), HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: undefined, HF_HUB_CACHE: undefined, HF_TOKEN: undefined, HF_HUB_DISABLE_IMPLICIT_TOKEN: undefined, HF_HUB_DOWNLOAD_TIMEOUT: undefined, ...env };
}

function run(args: string[], env: Record<string, string | undefined> = {}, cwd = dir) {
  return runCli(['run', 'prepare:pokemon', '--json', ...args], { cwd, env: hfEnv(env) });
}

function outcomes(events: Record<string, unknown>[]): Record<string, unknown> {
  return Object.fromEntries(events.filter((e) => typeof e.stage === 'string' && !e.item && ['fresh', 'cached', 'ran', 'failed', 'skipped'].includes(e.outcome as string)).map((e) => [e.stage, e.outcome]));
}

function manifestItems(cwd = dir): number {
  const lock = parseYaml(readFileSync(join(cwd, 'lorafile.lock'), 'utf8')) as { stages: Record<string, { meta: { items: number } }> };
  return lock.stages['prepare:pokemon'].meta.items;
}

/** What huggingface_hub's scan_cache_dir checks: every ref names a snapshot that exists, every link resolves. */
function pythonScanProblems(repoDir: string): string[] {
  const problems: string[] = [];
  const snapshots = join(repoDir, 'snapshots');
  if (!existsSync(snapshots)) return [`Snapshots dir doesn't exist in cached repo: ${snapshots}`];
  const refs = join(repoDir, 'refs');
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
  if (existsSync(refs)) {
    for (const ref of walk(refs)) {
      const sha = readFileSync(ref, 'utf8');
      if (!existsSync(join(snapshots, sha))) problems.push(`Reference(s) refer to missing commit hashes: ${sha}`);
    }
  }
  for (const snapshot of readdirSync(snapshots)) {
    for (const file of walk(join(snapshots, snapshot))) if (!existsSync(file)) problems.push(`Blob missing (broken symlink): ${file}`);
  }
  return problems;
}

describe('1. offline with a partly cached snapshot', () => {
  const shards = ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'];

  it('a snapshot holding shard 0 of 2 and no file list fails naming the missing shard, never trains on half the rows', async () => {
    const sha = hub.addRepo('lab/half', [
      { path: shards[0], content: pokemonParquet(rows(0, 12)) },
      { path: shards[1], content: pokemonParquet(rows(12, 24)) },
    ]);
    lorafile('hub: lab/half\ncaption_column: en_text');
    expect((await run([])).code).toBe(0);
    expect(manifestItems()).toBe(24);
    // what another tool may leave: shard 1 gone, and no trees/<sha>.json (the Python client before 2026 wrote none)
    const repoDir = join(dir, 'hf', 'hub', 'datasets--lab--half');
    rmSync(join(repoDir, 'snapshots', sha, shards[1]));
    rmSync(join(repoDir, 'trees'), { recursive: true });
    const offline = await run([], { HF_HUB_OFFLINE: '1', LORABUILD_CACHE: join(dir, 'cache-offline') });
    expect(offline.code).not.toBe(0);
    const text = offline.stdout + offline.stderr;
    expect(text).toContain(`holds only part of dataset lab/half at ${sha}: ${shards[1]} is missing`);
    expect(text).toContain('run once without HF_HUB_OFFLINE');
  });

  it('with the file list cached (trees/<sha>.json), offline names every missing file', async () => {
    const sha = hub.addRepo('lab/half-tree', [
      { path: shards[0], content: pokemonParquet(rows(0, 12)) },
      { path: shards[1], content: pokemonParquet(rows(12, 24)) },
    ]);
    lorafile('hub: lab/half-tree\ncaption_column: en_text');
    expect((await run([])).code).toBe(0);
    const repoDir = join(dir, 'hf', 'hub', 'datasets--lab--half-tree');
    expect(existsSync(join(repoDir, 'trees', `${sha}.json`))).toBe(true);
    rmSync(join(repoDir, 'snapshots', sha, shards[1]));
    const offline = await run([], { HF_HUB_OFFLINE: '1', LORABUILD_CACHE: join(dir, 'cache-offline') });
    expect(offline.code).not.toBe(0);
    expect(offline.stdout + offline.stderr).toContain(`HF_HUB_OFFLINE=1 and lab/half-tree/${shards[1]} (revision ${sha}) is not in the Hugging Face cache`);
  });

  it('a listing made offline from a snapshot without a file list is made again once online', async () => {
    const all = images.slice(0, 4).map((content, i) => ({ path: `train/${i}.png`, content }));
    const metadata = { path: 'train/metadata.jsonl', content: Buffer.from(all.map((f, i) => JSON.stringify({ file_name: `${i}.png`, text: `picture ${i}` })).join('\n')) };
    const sha = hub.addRepo('lab/folder-partial', [...all, metadata]);
    lorafile('hub: lab/folder-partial');
    expect((await run([])).code).toBe(0);
    const repoDir = join(dir, 'hf', 'hub', 'datasets--lab--folder-partial');
    rmSync(join(repoDir, 'snapshots', sha, 'train', '3.png'));
    rmSync(join(repoDir, 'trees'), { recursive: true });
    // a fresh checkout builds offline from what the snapshot holds, and says so
    const project = join(dir, 'clone');
    mkdirSync(project);
    lorafile('hub: lab/folder-partial', project);
    const offline = await run([], { HF_HUB_OFFLINE: '1' }, project);
    expect(offline.code, offline.stdout + offline.stderr).toBe(0);
    expect(readFileSync(join(project, 'lorafile.lock'), 'utf8')).toContain('listed_from_partial_snapshot: true');
    // back online the fetch is stale and lists the commit again: the 4th image comes back
    const online = await run([], {}, project);
    expect(online.code).toBe(0);
    expect(outcomes(online.events)).toMatchObject({ 'fetch:pokemon': 'ran', 'prepare:pokemon': 'ran' });
    const lock = readFileSync(join(project, 'lorafile.lock'), 'utf8');
    expect(lock).not.toContain('listed_from_partial_snapshot');
    expect(lock).toContain('images: 4');
  });
});

describe('2. the listing and the lock do not depend on where the HF cache is', () => {
  it('after HF_HOME moves, online and offline builds work and the lock is byte-identical', async () => {
    hub.addRepo('lab/moves', [{ path: 'data/train-00000-of-00001.parquet', content: pokemonParquet(rows(0, 5)) }]);
    lorafile('hub: lab/moves\ncaption_column: en_text');
    expect((await run([])).code).toBe(0);
    const first = readFileSync(join(dir, 'lorafile.lock'));
    expect(first.toString()).not.toContain(join(dir, 'hf'));

    // the HF cache moved (a new disk): the lorabuild cache still has the old build, prepare finds the files anew
    renameSync(join(dir, 'hf'), join(dir, 'hf-moved'));
    const moved = await run([], { HF_HOME: join(dir, 'hf-moved'), HF_HUB_OFFLINE: '1' });
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    expect(readFileSync(join(dir, 'lorafile.lock')).equals(first)).toBe(true);

    // another machine: other HF_HOME, other project folder, fresh caches, online
    const other = join(dir, 'machine-b');
    mkdirSync(other);
    lorafile('hub: lab/moves\ncaption_column: en_text', other);
    const b = await run([], { HF_HOME: join(other, 'elsewhere') }, other);
    expect(b.code).toBe(0);
    expect(readFileSync(join(other, 'lorafile.lock')).equals(first)).toBe(true);

    // the HF cache cleaned under a fresh lorabuild cache: rebuilt online without --update, same lock
    rmSync(join(dir, 'hf-moved'), { recursive: true });
    const cleaned = await run([], { HF_HOME: join(dir, 'hf-new'), LORABUILD_CACHE: join(dir, 'cache-new') });
    expect(cleaned.code, cleaned.stdout + cleaned.stderr).toBe(0);
    expect(readFileSync(join(dir, 'lorafile.lock')).equals(first)).toBe(true);
  });
});

describe('3. an empty file in the split', () => {
  it('downloads (nothing), links and lists it; prepare reports the image as undecodable', async () => {
    const sha = hub.addRepo('lab/empty', [
      { path: 'train/0.png', content: images[0] },
      { path: 'train/1.png', content: new Uint8Array(0) },
      { path: 'train/metadata.jsonl', content: Buffer.from('{"file_name": "0.png", "text": "a"}\n{"file_name": "1.png", "text": "b"}\n') },
    ]);
    lorafile('hub: lab/empty');
    const result = await run([]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const blob = join(dir, 'hf', 'hub', 'datasets--lab--empty', 'blobs', sha256(''));
    expect(statSync(blob).size).toBe(0);
    expect(existsSync(`${blob}.incomplete`)).toBe(false);
    expect(statSync(join(dir, 'hf', 'hub', 'datasets--lab--empty', 'snapshots', sha, 'train', '1.png')).size).toBe(0);
    expect(readFileSync(join(dir, 'lorafile.lock'), 'utf8')).toMatch(/errors: 1\b/);
  });
});

describe('4. parquet files that are valid but were refused', () => {
  const signal = new AbortController().signal;
  const spec = DatasetSchema.parse({ hub: 'lab/x', caption_column: 'en_text' });

  async function read(bytes: Uint8Array, name = 'data/train-00000-of-00001.parquet'): Promise<HubItem[]> {
    const abs = join(dir, 'shard.parquet');
    writeFileSync(abs, bytes);
    const items: HubItem[] = [];
    for await (const item of readParquetItems([{ path: name, abs, size: bytes.length }], 'lab/x', spec, signal)) items.push(item);
    return items;
  }

  async function failure(bytes: Uint8Array): Promise<HubError> {
    const err = await read(bytes).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HubError);
    return err as HubError;
  }

  it('LZ4 and LZ4_RAW with an all-null image.path whose dictionary page is an empty LZ4 block', async () => {
    for (const codec of ['LZ4', 'LZ4_RAW'] as const) {
      const bytes = lz4PokemonParquet(rows(0, 3), codec);
      const meta = parquetMetadata(bytes.buffer as ArrayBuffer).row_groups[0].columns.find((c) => c.meta_data!.path_in_schema.join('.') === 'image.path')!.meta_data!;
      expect([meta.codec, meta.dictionary_page_offset !== undefined]).toEqual([codec, true]);
      const items = await read(bytes);
      expect(items.map((i) => i.caption?.text)).toEqual(['pokemon 0', 'pokemon 1', 'pokemon 2']);
      items.forEach((item, i) => expect(Buffer.from(item.image!).equals(Buffer.from(images[i]))).toBe(true));
    }
  });

  it('the LZ4 decoder: empty blocks, overlapping matches, Hadoop frames; hostile blocks are refused with a reason', () => {
    expect(decompressLz4Raw(Uint8Array.of(0), 0)).toEqual(new Uint8Array(0));
    expect(decompressLz4(lz4Hadoop(new Uint8Array(0)), 0)).toEqual(new Uint8Array(0));
    const text = new TextEncoder().encode('abcabcabcabcabcabc');
    expect(decompressLz4(lz4Hadoop(text), text.length)).toEqual(text);
    expect(decompressLz4Raw(lz4Literals(text), text.length)).toEqual(text);
    // "abc" then a match 3 back, 15 long: an overlapping copy
    expect(new TextDecoder().decode(decompressLz4Raw(Uint8Array.of(0x3b, 97, 98, 99, 3, 0), 18))).toBe('abcabcabcabcabcabc');
    expect(() => decodeLz4Block(Uint8Array.of(0x10, 97, 9, 0), new Uint8Array(20))).toThrow('a match points 9 bytes back, before the start of the data');
    expect(() => decodeLz4Block(Uint8Array.of(0x10, 97, 0, 0), new Uint8Array(20))).toThrow('a match has offset 0, which LZ4 does not allow');
    expect(() => decompressLz4Raw(lz4Literals(text), 4)).toThrow('decodes to more than the 4 bytes announced');
    expect(() => decompressLz4Raw(Uint8Array.of(0xf0), 10)).toThrow('ends in the middle of a sequence');
  });

  it('dictionary_page_offset = 0 (written by some tools for "no dictionary") is read', async () => {
    const writer = new ByteWriter();
    const pq = new ParquetWriter({
      writer,
      schema: [
        { name: 'schema', num_children: 2 },
        { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
        { name: 'en_text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      ],
    });
    pq.write({ columnData: [{ name: 'image', data: images.slice(0, 2), encoding: 'PLAIN' }, { name: 'en_text', data: ['one', 'two'], encoding: 'PLAIN' }] });
    for (const group of (pq as unknown as { row_groups: { columns: { meta_data: { dictionary_page_offset?: bigint } }[] }[] }).row_groups) {
      for (const column of group.columns) column.meta_data.dictionary_page_offset = 0n;
    }
    pq.finish();
    const bytes = new Uint8Array(writer.getBuffer());
    expect(parquetMetadata(bytes.buffer as ArrayBuffer).row_groups[0].columns[0].meta_data!.dictionary_page_offset).toBe(0n);
    expect((await read(bytes)).map((i) => i.caption?.text)).toEqual(['one', 'two']);
  });

  it('an encrypted file is called encrypted, not corrupt', async () => {
    const bytes = Uint8Array.from(pokemonParquet(rows(0, 2)));
    bytes.set(new TextEncoder().encode('PARE'), 0);
    bytes.set(new TextEncoder().encode('PARE'), bytes.length - 4);
    const err = await failure(bytes);
    expect(err.message).toContain('data/train-00000-of-00001.parquet: the parquet file is encrypted (PARE)');
    expect(err.message).not.toContain('PAR1 magic');
  });

  it('damaged files of every kind fail as named HubErrors without JavaScript internals', async () => {
    const good = pokemonParquet(rows(0, 6), { rowGroupSize: 2 });
    const footerStart = good.length - 8 - new DataView(good.buffer, good.byteOffset).getUint32(good.length - 8, true);
    let state = 12345;
    const random = () => (state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32;
    let failed = 0;
    for (let n = 0; n < 150; n++) {
      const bytes = Uint8Array.from(good);
      // damage pages (n even) or the footer (n odd): a few bytes overwritten
      const from = n % 2 === 0 ? 4 : footerStart;
      const to = n % 2 === 0 ? footerStart : good.length - 8;
      for (let k = 0; k < 1 + (n % 4); k++) bytes[from + Math.floor(random() * (to - from))] = Math.floor(random() * 256);
      const err = await read(bytes).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (err === undefined) continue;
      failed++;
      expect(err, String(err)).toBeInstanceOf(HubError);
      const message = (err as HubError).message;
      expect(message).toContain('data/train-00000-of-00001.parquet');
      expect(message).not.toMatch(/reading '|Cannot read|undefined|is not a function|is not iterable|Invalid typed array|out of bounds|Maximum call stack/);
    }
    expect(failed).toBeGreaterThan(30);
  });
});

describe('5. memory is bounded by pages, not row groups', () => {
  it('reads a 96 MB row group in a process that grows by far less than the row group', async () => {
    // 240 incompressible 400 kB "images" in one row group, 1 MB pages, uncompressed: a 96 MB row group
    const big = Array.from({ length: 240 }, (_, i) => {
      const b = new Uint8Array(400_000);
      for (let j = 0; j < b.length; j += 4) new DataView(b.buffer).setUint32(j, Math.imul(i + 1, j + 2654435761) >>> 0);
      return b;
    });
    const writer = new ByteWriter();
    const pq = new ParquetWriter({
      writer,
      codec: 'UNCOMPRESSED',
      schema: [
        { name: 'schema', num_children: 2 },
        { name: 'image', type: 'BYTE_ARRAY', repetition_type: 'OPTIONAL' },
        { name: 'text', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      ],
    });
    pq.write({ columnData: [{ name: 'image', data: big, encoding: 'PLAIN' }, { name: 'text', data: big.map((_, i) => `row ${i}`) }], rowGroupSize: 1000 });
    pq.finish();
    const shard = join(dir, 'big.parquet');
    writeFileSync(shard, new Uint8Array(writer.getBuffer()));
    expect(parquetMetadata(readFileSync(shard).buffer as ArrayBuffer).row_groups).toHaveLength(1);
    const script = `
      const { readParquetItems } = await import(${JSON.stringify(join(process.cwd(), 'dist', 'datasets', 'hub', 'items.js'))});
      const peak = () => Number(/VmHWM:\\s+(\\d+) kB/.exec(require('node:fs').readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
      const before = peak();
      let rows = 0;
      for await (const item of readParquetItems([{ path: 'big.parquet', abs: ${JSON.stringify(shard)}, size: ${statSync(shard).size} }], 'lab/big', { image_column: 'image', caption_column: 'text', caption_choice: 'first', caption_seed: 0 }, new AbortController().signal)) rows++;
      process.stdout.write(JSON.stringify({ rows, grew: peak() - before }));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);\n${script}`], { encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    const { rows: count, grew } = JSON.parse(child.stdout) as { rows: number; grew: number };
    expect(count).toBe(240);
    // a whole-row-group read grew by several times the row group (~5 x 96 MB); page by page it stays
    // well under the row group itself (measured 30-36 MB, most of it garbage not yet collected)
    expect(grew).toBeLessThan(48e6);
  });

  it('a page too big to decode is refused with what to do about a dataset one cannot rewrite', async () => {
    const bytes = pokemonParquet(rows(0, 4));
    const abs = join(dir, 'one-page.parquet');
    writeFileSync(abs, bytes);
    const script = `
      const { readParquetItems } = await import(${JSON.stringify(join(process.cwd(), 'dist', 'datasets', 'hub', 'items.js'))});
      try {
        for await (const item of readParquetItems([{ path: 'data/train.parquet', abs: ${JSON.stringify(abs)}, size: ${bytes.length} }], 'lab/x', { image_column: 'image', caption_column: 'en_text', caption_choice: 'first', caption_seed: 0 }, new AbortController().signal));
      } catch (err) { process.stdout.write(err.message); }`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, LORABUILD_MAX_PARQUET_PAGE_BYTES: '1000' } });
    expect(child.stdout).toMatch(/^data\/train\.parquet: row group 0 column image\.bytes has a page of [\d.]+ kB; lorabuild decodes one page at a time and refuses pages over 1\.0 kB/);
    expect(child.stdout).toContain('revision: refs/convert/parquet');
    expect(child.stdout).toContain('LORABUILD_MAX_PARQUET_PAGE_BYTES');
  });
});

describe('6. refs are written after the first link', () => {
  it('status alone writes no ref; a run writes refs/main once the snapshot exists; the Python scan finds nothing wrong', async () => {
    const sha = hub.addRepo('lab/refs', [{ path: 'data/train-00000-of-00001.parquet', content: pokemonParquet(rows(0, 2)) }]);
    lorafile('hub: lab/refs\ncaption_column: en_text');
    const status = await runCli(['status'], { cwd: dir, env: hfEnv() });
    expect(status.code, status.stderr).not.toBe(2);
    const repoDir = join(dir, 'hf', 'hub', 'datasets--lab--refs');
    expect(existsSync(join(repoDir, 'refs'))).toBe(false);
    expect((await run([])).code).toBe(0);
    expect(readFileSync(join(repoDir, 'refs', 'main'), 'utf8')).toBe(sha);
    expect(pythonScanProblems(repoDir)).toEqual([]);
  });
});

describe('7. leftovers of a killed download', () => {
  it('an .incomplete and a dead .lock beside a blob another tool completed are removed', async () => {
    const content = pokemonParquet(rows(0, 3));
    hub.addRepo('lab/leftovers', [{ path: 'data/train-00000-of-00001.parquet', content }]);
    const blobs = join(dir, 'hf', 'hub', 'datasets--lab--leftovers', 'blobs');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFiles(blobs, { [sha256(content)]: Buffer.from(content), [`${sha256(content)}.incomplete`]: Buffer.from(content.subarray(0, 100)), [`${sha256(content)}.lock`]: dead });
    lorafile('hub: lab/leftovers\ncaption_column: en_text');
    const result = await run([]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(readdirSync(blobs)).toEqual([sha256(content)]);
    expect(hub.contentRequests()).toEqual([]);
  });

  it('HF_HUB_DISABLE_IMPLICIT_TOKEN=1: the token is not sent, and the gated error says why', async () => {
    hub.addRepo('lab/gated-implicit', [{ path: 'data/train-00000-of-00001.parquet', content: pokemonParquet(rows(0, 2)) }], { gated: ['hf_good'] });
    lorafile('hub: lab/gated-implicit\ncaption_column: en_text');
    const result = await run([], { HF_TOKEN: 'hf_good', HF_HUB_DISABLE_IMPLICIT_TOKEN: '1' });
    expect(result.code).not.toBe(0);
    expect(hub.log.every((r) => r.authorization === undefined)).toBe(true);
    expect(result.stdout + result.stderr).toContain('HF_HUB_DISABLE_IMPLICIT_TOKEN is set, so lorabuild sends no token');
    hub.clearLog();
    expect((await run([], { HF_TOKEN: 'hf_good' })).code).toBe(0);
    expect(hub.log.some((r) => r.authorization === 'Bearer hf_good')).toBe(true);
  });
});

describe('hub messages (issue 21, items 9 and 14)', () => {
  it('a hub that accepts the connection but never answers: a waiting line, retries, then a plain message', async () => {
    hub.addRepo('lab/silent', [{ path: 'data/train-00000-of-00001.parquet', content: pokemonParquet(rows(0, 2)) }]);
    lorafile('hub: lab/silent\ncaption_column: en_text');
    hub.hangNext(100);
    const started = Date.now();
    const result = await run([], { HF_HUB_DOWNLOAD_TIMEOUT: '2.5' });
    hub.hangNext(0);
    expect(result.code).not.toBe(0);
    const text = result.stdout + result.stderr;
    expect(text).toContain('accepted the connection but did not answer within 2.5 s (4 attempts) for dataset lab/silent');
    expect(text).toContain('HF_HUB_DOWNLOAD_TIMEOUT');
    expect(text).not.toContain('UND_ERR');
    expect(result.events.some((e) => /waiting for 127\.0\.0\.1:\d+ to answer/.test(String((e.progress as { message?: string } | undefined)?.message)))).toBe(true);
    expect(hub.log.filter((r) => r.status === 0)).toHaveLength(4);
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('a file list announcing 10^15 bytes is refused as such (not "416 Requested Range Not Satisfiable")', async () => {
    hub.addRepo('lab/huge', [{ path: 'data/train-00000-of-00001.parquet', content: pokemonParquet(rows(0, 2)) }]);
    hub.announceSize('lab/huge', 'data/train-00000-of-00001.parquet', 1e15);
    lorafile('hub: lab/huge\ncaption_column: en_text');
    const result = await run([]);
    expect(result.code).not.toBe(0);
    const text = result.stdout + result.stderr;
    expect(text).toContain('the hub\'s file list says data/train-00000-of-00001.parquet has 1000000000000000 bytes, more than any hub file can have');
    expect(text).not.toContain('416');
    expect(hub.contentRequests()).toEqual([]);
  });

  it('a file whose download is not the size its listing says is named with both sizes', async () => {
    const content = pokemonParquet(rows(0, 2));
    hub.addRepo('lab/liar', [{ path: 'data/train-00000-of-00001.parquet', content }]);
    hub.announceSize('lab/liar', 'data/train-00000-of-00001.parquet', content.length * 10);
    lorafile('hub: lab/liar\ncaption_column: en_text');
    const text = await run([]).then((r) => r.stdout + r.stderr);
    expect(text).toContain(`lab/liar/data/train-00000-of-00001.parquet: the hub's file list says ${content.length * 10} bytes`);
    expect(text).toContain(`but the download has ${content.length}`);
    expect(text).not.toContain('416');
  });

  it('an HTML page at HF_ENDPOINT is named as such (not "Unexpected token \'<\'")', async () => {
    const page = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><html><body>Welcome to our proxy</body></html>');
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    try {
      lorafile('hub: lab/anything');
      const url = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
      const result = await run([], { HF_ENDPOINT: url });
      expect(result.code).not.toBe(0);
      const text = result.stdout + result.stderr;
      expect(text).toContain(`${url} answered with an HTML page (200), not the Hugging Face hub API`);
      expect(text).toContain('HF_ENDPOINT must be the base URL of a hub');
      expect(text).not.toContain('Unexpected token');
    } finally {
      page.closeAllConnections();
      await new Promise<void>((resolve) => page.close(() => resolve()));
    }
  });
});
