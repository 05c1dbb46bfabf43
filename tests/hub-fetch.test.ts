// hub datasets, fetch side: revision pinning, HF cache layout, zero-request reruns, offline,
// resume, verification and the error messages — against a real HTTP hub on 127.0.0.1.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DatasetSpec } from '../src/config/schema.js';
import { DatasetSchema } from '../src/config/schema.js';
import type { LockEntry, StageContext, StageInputs } from '../src/engine/types.js';
import { hubFetchInputs, hubFetchRun } from '../src/datasets/hub/fetch.js';
import { HubError } from '../src/datasets/hub/errors.js';
import { readHubItems } from '../src/datasets/hub/items.js';
import { HubServer, type FixtureFile } from './helpers/hub-server.js';
import { pngBytes, pokemonParquet, zstdListParquet } from './helpers/parquet-fixtures.js';

const SHARD = 'data/train-00000-of-00001.parquet';
const ENV_KEYS = ['HF_HOME', 'HF_HUB_CACHE', 'HF_ENDPOINT', 'HF_HUB_OFFLINE', 'HF_TOKEN', 'HUGGINGFACE_HUB_CACHE', 'HF_TOKEN_PATH'] as const;

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

interface TestContext extends StageContext {
  progressCalls: Array<{ done: number; total: number }>;
}

function makeCtx(options: { previous?: LockEntry; update?: string[] } = {}): TestContext {
  const progressCalls: Array<{ done: number; total: number }> = [];
  const unused = () => {
    throw new Error('not used by the hub fetch');
  };
  return {
    config: {} as StageContext['config'],
    node: { id: 'fetch:ds', kind: 'fetch', target: 'ds', deps: [], resource: 'net' },
    root: tmpdir(),
    cacheDir: tmpdir(),
    signal: new AbortController().signal,
    previous: options.previous,
    options: options.update ? { update: options.update } : {},
    hashFile: async (path) => sha256(await readFile(path)),
    upstream: unused,
    upstreamPath: unused,
    blobPath: unused,
    item: unused,
    putBlob: unused,
    outDir: tmpdir(),
    addOutput: unused,
    worker: unused,
    progress: (done, total) => void progressCalls.push({ done, total }),
    log: () => undefined,
    emit: () => undefined,
    progressCalls,
  };
}

function spec(fields: Partial<DatasetSpec> & { hub: string }): DatasetSpec {
  return DatasetSchema.parse(fields);
}

function lockOf(inputs: StageInputs): LockEntry {
  return { fingerprint: 'x', params: inputs.params, files: {}, upstream: {}, outputs: {}, meta: null };
}

async function fetchOnce(ds: DatasetSpec, options: { previous?: LockEntry; update?: string[] } = {}) {
  const ctx = makeCtx(options);
  const inputs = await hubFetchInputs(ctx, 'ds', ds);
  const listing = await hubFetchRun(ctx, 'ds', ds, inputs);
  return { ctx, inputs, listing };
}

async function expectHubError(promise: Promise<unknown>, code: string): Promise<HubError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HubError);
  expect((err as HubError).code).toBe(code);
  return err as HubError;
}

let hub: HubServer;
let home: string;
let pokemonBytes: Uint8Array;
let pokemonImages: Uint8Array[];
let pokemonSha: string;

beforeAll(async () => {
  hub = await HubServer.start({ pageSize: 2 });
  pokemonImages = await Promise.all([0, 1, 2, 3, 4].map((i) => pngBytes(i, 24)));
  pokemonBytes = pokemonParquet(
    pokemonImages.map((image, i) => ({ image, path: `${i}.png`, en: `a drawing of pokemon ${i}`, zh: `宝可梦 ${i}` })),
    { rowGroupSize: 2 },
  );
  pokemonSha = hub.addRepo('lab/pokemon', [
    { path: SHARD, content: pokemonBytes },
    { path: 'README.md', content: Buffer.from('---\nlicense: cc\n---\n# pokemon\n') },
    { path: '.gitattributes', content: Buffer.from('*.parquet filter=lfs diff=lfs merge=lfs -text\n') },
  ]);
});

afterAll(async () => {
  await hub.stop();
});

beforeEach(async () => {
  for (const key of ENV_KEYS) delete process.env[key];
  home = await mkdtemp(join(tmpdir(), 'lorabuild-hub-'));
  process.env.HF_HOME = home;
  process.env.HF_ENDPOINT = hub.url;
  hub.clearLog();
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('parquet dataset in the pokemon schema', () => {
  it('pins the commit sha and lands the shard in the HF cache layout', async () => {
    const { ctx, inputs, listing } = await fetchOnce(spec({ hub: 'lab/pokemon', caption_column: 'en_text' }));
    expect(inputs.params).toMatchObject({ source: 'hub', repo: 'lab/pokemon', revision: 'main', sha: pokemonSha, split: 'train' });
    expect(inputs.files).toEqual({});

    const repoDir = join(home, 'hub', 'datasets--lab--pokemon');
    expect((await readFile(join(repoDir, 'refs', 'main'), 'utf8')).trim()).toBe(pokemonSha);
    const pointer = join(repoDir, 'snapshots', pokemonSha, 'data', 'train-00000-of-00001.parquet');
    expect((await lstat(pointer)).isSymbolicLink()).toBe(true);
    expect(await readlink(pointer)).toBe(`../../../blobs/${sha256(pokemonBytes)}`);
    expect(Buffer.compare(await readFile(join(repoDir, 'blobs', sha256(pokemonBytes))), pokemonBytes)).toBe(0);
    // only the split's files are downloaded
    expect(existsSync(join(repoDir, 'snapshots', pokemonSha, 'README.md'))).toBe(false);

    expect(listing).toMatchObject({ source: 'hub', layout: 'parquet', root: `lab/pokemon@${pokemonSha}`, revision: pokemonSha, entries: [] });
    // repo paths and sha256s only: the same listing (and lock) for every machine and HF cache location
    expect(listing.shards).toEqual([{ path: SHARD, sha256: sha256(pokemonBytes), size: pokemonBytes.length }]);
    expect(JSON.stringify(listing)).not.toContain(home);
    // the commit's whole file list, in the Python client's tree cache format
    const tree = JSON.parse(await readFile(join(repoDir, 'trees', `${pokemonSha}.json`), 'utf8'));
    expect(tree.format_version).toBe(1);
    expect(Object.keys(tree.files)).toEqual(['.gitattributes', 'README.md', SHARD]);
    expect(tree.files[SHARD]).toMatchObject({ size: pokemonBytes.length, lfs_sha256: sha256(pokemonBytes), lfs_size: pokemonBytes.length });
    const last = ctx.progressCalls.at(-1)!;
    expect(last).toEqual({ done: pokemonBytes.length, total: pokemonBytes.length });

    // the tree is paginated (page size 2): several tree requests, one content request
    expect(hub.log.filter((r) => r.kind === 'tree').length).toBeGreaterThan(1);
    expect(hub.contentRequests().map((r) => r.path)).toEqual([`/datasets/lab/pokemon/resolve/${pokemonSha}/${SHARD}`]);

    const items = [];
    for await (const item of readHubItems(listing, spec({ hub: 'lab/pokemon', caption_column: 'en_text' }), ctx.signal)) items.push(item);
    expect(items.map((i) => i.origin)).toEqual([0, 1, 2, 3, 4].map((i) => `${SHARD} row ${i}`));
    expect(items.map((i) => i.caption?.text)).toEqual([0, 1, 2, 3, 4].map((i) => `a drawing of pokemon ${i}`));
    items.forEach((item, i) => expect(Buffer.compare(Buffer.from(item.image!), Buffer.from(pokemonImages[i]))).toBe(0));
  });

  it('a second run with the lock makes no revision request and no content request', async () => {
    const ds = spec({ hub: 'lab/pokemon', caption_column: 'en_text' });
    const first = await fetchOnce(ds);
    hub.clearLog();
    const second = await fetchOnce(ds, { previous: lockOf(first.inputs) });
    expect(second.listing).toEqual(first.listing);
    expect(hub.log.filter((r) => r.kind === 'revision')).toEqual([]);
    expect(hub.contentRequests()).toEqual([]);
  });

  it('keeps the pinned sha when main moves, until --update names the repo', async () => {
    await hub.addRepo('lab/moving', [{ path: SHARD, content: pokemonBytes }]);
    const ds = spec({ hub: 'lab/moving', caption_column: 'en_text' });
    const first = await fetchOnce(ds);
    const changed = pokemonParquet([{ image: pokemonImages[0], path: 'x.png', en: 'new', zh: '新' }]);
    const newSha = hub.commit('lab/moving', [{ path: SHARD, content: changed }]);
    expect(newSha).not.toBe(first.inputs.params.sha);

    const pinned = await fetchOnce(ds, { previous: lockOf(first.inputs) });
    expect(pinned.inputs.params.sha).toBe(first.inputs.params.sha);
    expect(pinned.listing.shards![0].sha256).toBe(sha256(pokemonBytes));

    const otherRepo = await fetchOnce(ds, { previous: lockOf(first.inputs), update: ['lab/pokemon'] });
    expect(otherRepo.inputs.params.sha).toBe(first.inputs.params.sha);

    const updated = await fetchOnce(ds, { previous: lockOf(first.inputs), update: ['lab/moving'] });
    expect(updated.inputs.params.sha).toBe(newSha);
    expect(updated.listing.shards![0].sha256).toBe(sha256(changed));
    const all = await fetchOnce(ds, { previous: lockOf(first.inputs), update: ['all'] });
    expect(all.inputs.params.sha).toBe(newSha);
  });

  it('re-resolves when the lorafile names another revision than the lock', async () => {
    const ds = spec({ hub: 'lab/pokemon', caption_column: 'en_text' });
    const first = await fetchOnce(ds);
    const stale = lockOf({ ...first.inputs, params: { ...first.inputs.params, revision: 'v0', sha: 'f'.repeat(40) } });
    const again = await fetchOnce(ds, { previous: stale });
    expect(again.inputs.params.sha).toBe(pokemonSha);
  });
});

describe('HF cache cleaned after fetch', () => {
  it('reading the rows downloads the missing shard again for the same commit', async () => {
    const ds = spec({ hub: 'lab/pokemon', caption_column: 'en_text' });
    const { listing } = await fetchOnce(ds);
    await rm(join(home, 'hub'), { recursive: true, force: true });
    hub.clearLog();
    const items = [];
    for await (const item of readHubItems(listing, ds, new AbortController().signal)) items.push(item);
    expect(items).toHaveLength(5);
    expect(hub.contentRequests().map((r) => r.path)).toEqual([`/datasets/lab/pokemon/resolve/${pokemonSha}/${SHARD}`]);
  });

  it('offline, it names the missing file and how to get it back', async () => {
    const ds = spec({ hub: 'lab/pokemon', caption_column: 'en_text' });
    const { listing } = await fetchOnce(ds);
    await rm(join(home, 'hub'), { recursive: true, force: true });
    process.env.HF_HUB_OFFLINE = '1';
    const read = async () => {
      for await (const item of readHubItems(listing, ds, new AbortController().signal)) void item;
    };
    const err = await expectHubError(read(), 'offline-not-cached');
    expect(err.message).toContain(`no longer holds ${SHARD} of lab/pokemon@${pokemonSha}`);
  });
});

describe('offline (HF_HUB_OFFLINE=1)', () => {
  it('builds from the cache with the hub stopped', async () => {
    const own = await HubServer.start();
    const sha = own.addRepo('lab/offline', [{ path: SHARD, content: pokemonBytes }]);
    process.env.HF_ENDPOINT = own.url;
    const ds = spec({ hub: 'lab/offline', caption_column: 'en_text' });
    const online = await fetchOnce(ds);
    await own.stop();
    process.env.HF_HUB_OFFLINE = '1';
    // without a lock: refs/main in the cache names the sha
    const offline = await fetchOnce(ds);
    expect(offline.inputs.params.sha).toBe(sha);
    expect(offline.listing).toEqual(online.listing);
    const withLock = await fetchOnce(ds, { previous: lockOf(online.inputs) });
    expect(withLock.listing).toEqual(online.listing);
  });

  it('fails clearly with an empty cache, saying what is missing and how to fill it', async () => {
    process.env.HF_HUB_OFFLINE = '1';
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/pokemon' })), 'offline-not-cached');
    expect(err.message).toContain('lab/pokemon');
    expect(err.message).toContain("revision 'main'");
    expect(err.hint).toContain('huggingface-cli download lab/pokemon --repo-type dataset');
    expect(hub.log).toEqual([]);
  });

  it('fails clearly when the lock pins a sha whose snapshot is not cached', async () => {
    process.env.HF_HUB_OFFLINE = '1';
    const ds = spec({ hub: 'lab/pokemon' });
    const previous = lockOf({ params: { source: 'hub', repo: 'lab/pokemon', revision: 'main', sha: pokemonSha }, files: {} });
    const err = await expectHubError(fetchOnce(ds, { previous }), 'offline-not-cached');
    expect(err.message).toContain(pokemonSha);
  });
});

describe('interrupted and damaged downloads', () => {
  it('resumes within a run after a dropped connection, with a Range request', async () => {
    hub.addRepo('lab/drop-once', [{ path: SHARD, content: pokemonBytes }]);
    hub.dropAfter('lab/drop-once', SHARD, 1000, 1);
    const { listing } = await fetchOnce(spec({ hub: 'lab/drop-once' }));
    expect(listing.shards![0].sha256).toBe(sha256(pokemonBytes));
    expect(hub.contentRequests().map((r) => r.range)).toEqual([undefined, 'bytes=1000-']);
  });

  it('keeps the partial file when the connection keeps dropping, and the next run resumes from it', async () => {
    expect(pokemonBytes.length).toBeGreaterThan(4000);
    const sha = hub.addRepo('lab/drop-many', [{ path: SHARD, content: pokemonBytes }]);
    hub.dropAfter('lab/drop-many', SHARD, 1000, 3);
    const ds = spec({ hub: 'lab/drop-many' });
    const err = await expectHubError(fetchOnce(ds), 'network');
    expect(err.message).toContain(`lab/drop-many/${SHARD} was interrupted after 3000 of ${pokemonBytes.length} bytes`);
    expect(err.hint).toContain('run again to resume');
    const part = join(home, 'hub', 'datasets--lab--drop-many', 'blobs', `${sha256(pokemonBytes)}.incomplete`);
    expect((await stat(part)).size).toBe(3000);
    expect(existsSync(join(home, 'hub', 'datasets--lab--drop-many', 'snapshots', sha, SHARD))).toBe(false);

    hub.clearLog();
    const { listing } = await fetchOnce(ds);
    expect(hub.contentRequests().map((r) => r.range)).toEqual(['bytes=3000-']);
    expect(listing.shards![0].sha256).toBe(sha256(pokemonBytes));
    expect(existsSync(part)).toBe(false);
  });

  it('rejects a download whose sha256 does not match, removes it, and succeeds on the next run', async () => {
    hub.addRepo('lab/bad-part', [{ path: SHARD, content: pokemonBytes }]);
    const blobs = join(home, 'hub', 'datasets--lab--bad-part', 'blobs');
    const part = join(blobs, `${sha256(pokemonBytes)}.incomplete`);
    await mkdir(blobs, { recursive: true });
    await writeFile(part, Buffer.alloc(500, 7)); // a partial file with the wrong bytes
    const ds = spec({ hub: 'lab/bad-part' });
    const err = await expectHubError(fetchOnce(ds), 'download-mismatch');
    expect(err.message).toContain(`lab/bad-part/${SHARD}`);
    expect(existsSync(part)).toBe(false);
    const { listing } = await fetchOnce(ds);
    expect(listing.shards![0].sha256).toBe(sha256(pokemonBytes));
  });

  it('re-downloads a cached blob that was damaged on disk', async () => {
    const ds = spec({ hub: 'lab/pokemon' });
    const first = await fetchOnce(ds);
    const blob = join(home, 'hub', 'datasets--lab--pokemon', 'blobs', sha256(pokemonBytes));
    await writeFile(blob, Buffer.alloc(pokemonBytes.length, 1));
    hub.clearLog();
    const second = await fetchOnce(ds, { previous: lockOf(first.inputs) });
    expect(hub.contentRequests()).toHaveLength(1);
    expect(second.listing).toEqual(first.listing);
    expect(Buffer.compare(await readFile(blob), pokemonBytes)).toBe(0);
  });
});

describe('shared cache', () => {
  it('two builds fetching the same dataset at once download it once', async () => {
    hub.addRepo('lab/twice', [{ path: SHARD, content: pokemonBytes }]);
    const ds = spec({ hub: 'lab/twice' });
    const [a, b] = await Promise.all([fetchOnce(ds), fetchOnce(ds)]);
    expect(a.listing).toEqual(b.listing);
    expect(hub.contentRequests()).toHaveLength(1);
  });

  it('a lock left by a killed process does not block the download', async () => {
    hub.addRepo('lab/stale-lock', [{ path: SHARD, content: pokemonBytes }]);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    const blobs = join(home, 'hub', 'datasets--lab--stale-lock', 'blobs');
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${sha256(pokemonBytes)}.lock`), dead);
    const { listing } = await fetchOnce(spec({ hub: 'lab/stale-lock' }));
    expect(listing.shards![0].sha256).toBe(sha256(pokemonBytes));
    expect(existsSync(join(blobs, `${sha256(pokemonBytes)}.lock`))).toBe(false);
  });

  it('HF_HUB_CACHE moves the hub cache away from HF_HOME', async () => {
    const elsewhere = join(home, 'elsewhere');
    process.env.HF_HUB_CACHE = elsewhere;
    const { listing } = await fetchOnce(spec({ hub: 'lab/pokemon' }));
    expect(existsSync(join(elsewhere, 'datasets--lab--pokemon', 'snapshots', listing.revision!, SHARD))).toBe(true);
    expect(existsSync(join(home, 'hub'))).toBe(false);
  });
});

describe('hub errors', () => {
  it('unknown repo: names it and says what to check', async () => {
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/nope' })), 'repo-not-found');
    expect(err.message).toContain('dataset repo lab/nope not found');
    expect(err.hint).toContain('HF_TOKEN');
  });

  it('revision not found', async () => {
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/pokemon', revision: 'v9' })), 'revision-not-found');
    expect(err.message).toContain("revision 'v9' not found in dataset lab/pokemon");
  });

  it('rate limiting and gateway errors are retried, then reported', async () => {
    hub.failNext(429, 2, 0);
    const { listing } = await fetchOnce(spec({ hub: 'lab/pokemon' }));
    expect(listing.revision).toBe(pokemonSha);
    expect(hub.log.slice(0, 3).map((r) => r.status)).toEqual([429, 429, 200]);
    hub.failNext(503, 4, 0);
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/pokemon' })), 'http');
    expect(err.message).toContain('503');
    expect(err.hint).toContain('run again later');
  });

  it('a pinned commit the hub no longer has points at --update', async () => {
    const gone = 'e'.repeat(40);
    const previous = lockOf({ params: { source: 'hub', repo: 'lab/pokemon', revision: 'main', sha: gone }, files: {} });
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/pokemon' }), { previous }), 'revision-not-found');
    expect(err.message).toContain(`dataset lab/pokemon has no commit ${gone}`);
    expect(err.hint).toContain('lorabuild run --update lab/pokemon');
  });

  it('gated dataset: no token, a wrong token, then the right one', async () => {
    const sha = hub.addRepo('lab/gated', [{ path: SHARD, content: pokemonBytes }], { gated: ['hf_good'] });
    const ds = spec({ hub: 'lab/gated' });
    const none = await expectHubError(fetchOnce(ds), 'gated');
    expect(none.message).toContain('dataset lab/gated is gated (401)');
    expect(none.hint).toContain('set HF_TOKEN');
    // the metadata was readable, the file was not: nothing half-written is left behind
    expect(hub.log.filter((r) => r.kind === 'resolve').map((r) => r.status)).toEqual([401]);
    expect(existsSync(join(home, 'hub', 'datasets--lab--gated', 'snapshots', sha))).toBe(false);
    expect(none.hint).toContain(`${hub.url}/datasets/lab/gated`);
    process.env.HF_TOKEN = 'hf_wrong';
    const wrong = await expectHubError(fetchOnce(ds), 'gated');
    expect(wrong.message).toContain('(403)');
    expect(wrong.hint).toContain('with the account that owns HF_TOKEN');
    process.env.HF_TOKEN = 'hf_good';
    const { listing } = await fetchOnce(ds);
    expect(listing.revision).toBe(sha);
  });

  it('private dataset: invisible without a token, readable with the right one', async () => {
    const sha = hub.addRepo('lab/private', [{ path: SHARD, content: pokemonBytes }], { private: ['hf_mine'] });
    const ds = spec({ hub: 'lab/private' });
    const none = await expectHubError(fetchOnce(ds), 'repo-not-found');
    expect(none.message).toContain('(401)');
    expect(none.hint).toContain('if the dataset is private, set HF_TOKEN');
    process.env.HF_TOKEN = 'hf_other';
    const wrong = await expectHubError(fetchOnce(ds), 'repo-not-found');
    expect(wrong.hint).toContain('check that HF_TOKEN can read it');
    process.env.HF_TOKEN = 'hf_mine';
    expect((await fetchOnce(ds)).listing.revision).toBe(sha);
  });

  it('reads the token from $HF_HOME/token like huggingface-cli login leaves it', async () => {
    hub.addRepo('lab/gated-file', [{ path: SHARD, content: pokemonBytes }], { private: ['hf_fromfile'] });
    await writeFile(join(home, 'token'), 'hf_fromfile\n');
    const { listing } = await fetchOnce(spec({ hub: 'lab/gated-file' }));
    expect(listing.shards).toHaveLength(1);
    expect(hub.log.every((r) => r.authorization === 'Bearer hf_fromfile')).toBe(true);
  });

  it('an unreachable endpoint says so and points at HF_HUB_OFFLINE', async () => {
    const gone = await HubServer.start();
    process.env.HF_ENDPOINT = gone.url;
    await gone.stop();
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/pokemon' })), 'network');
    expect(err.message).toContain(gone.url);
    expect(err.hint).toContain('HF_HUB_OFFLINE=1');
  });

  it('refuses file names that would escape the cache', async () => {
    hub.addRepo('lab/evil', [{ path: 'data/../../../escape.parquet', content: pokemonBytes }]);
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/evil' })), 'bad-response');
    expect(err.message).toContain('unsafe file name');
    expect(existsSync(resolve(home, 'escape.parquet'))).toBe(false);
    expect(existsSync(resolve(dirname(home), 'escape.parquet'))).toBe(false);
  });

  it('a split the dataset does not have lists the splits it has', async () => {
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/pokemon', split: 'validation' })), 'no-split');
    expect(err.message).toContain("split 'validation'");
    expect(err.message).toContain('train');
  });
});

describe('other layouts', () => {
  it('zstd shards with list captions: picks the train shards in order', async () => {
    const images = await Promise.all([10, 11, 12, 13].map((i) => pngBytes(i)));
    const shard = (rows: number[]) => zstdListParquet(rows.map((i) => ({ image: images[i], captions: [`first ${i}`, `second ${i}`, `third ${i}`] })));
    const files: FixtureFile[] = [
      { path: 'data/train-00001-of-00002.parquet', content: shard([2, 3]) },
      { path: 'data/train-00000-of-00002.parquet', content: shard([0, 1]) },
      { path: 'data/test-00000-of-00001.parquet', content: shard([0]) },
    ];
    hub.addRepo('lab/zstd', files);
    const ds = spec({ hub: 'lab/zstd', image_column: 'jpg', caption_column: 'captions', caption_choice: 'random', caption_seed: 3 });
    const { listing } = await fetchOnce(ds);
    expect(listing.shards!.map((s) => s.path)).toEqual(['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet']);
    const items = [];
    for await (const item of readHubItems(listing, ds, new AbortController().signal)) items.push(item);
    expect(items.map((i) => i.row)).toEqual([0, 1, 2, 3]);
    expect(items.map((i) => i.origin)).toEqual([
      'data/train-00000-of-00002.parquet row 0',
      'data/train-00000-of-00002.parquet row 1',
      'data/train-00001-of-00002.parquet row 0',
      'data/train-00001-of-00002.parquet row 1',
    ]);
    items.forEach((item, i) => {
      expect(Buffer.compare(Buffer.from(item.image!), Buffer.from(images[i]))).toBe(0);
      const choice = item.caption!.choice!;
      expect(choice).toMatchObject({ of: 3, rule: 'random' });
      expect(item.caption!.text).toBe(`${['first', 'second', 'third'][choice.index]} ${i}`);
    });
    const test = await fetchOnce({ ...ds, split: 'test' });
    expect(test.listing.shards!.map((s) => s.path)).toEqual(['data/test-00000-of-00001.parquet']);
  });

  it('the refs/convert/parquet layout (config/split/0000.parquet)', async () => {
    hub.addRepo('lab/converted', [{ path: 'images/0.png', content: pokemonImages[0] }]);
    const sha = hub.commit('lab/converted', [{ path: 'default/train/0000.parquet', content: pokemonBytes }], 'refs/convert/parquet');
    const { listing } = await fetchOnce(spec({ hub: 'lab/converted', revision: 'refs/convert/parquet', caption_column: 'en_text' }));
    expect(listing.revision).toBe(sha);
    expect(listing.shards!.map((s) => s.path)).toEqual(['default/train/0000.parquet']);
    expect((await readFile(join(home, 'hub', 'datasets--lab--converted', 'refs', 'refs', 'convert', 'parquet'), 'utf8')).trim()).toBe(sha);
  });

  it('an imagefolder repo: images of the split with captions from metadata.jsonl', async () => {
    const images = await Promise.all([20, 21, 22].map((i) => pngBytes(i)));
    const metadata = [
      JSON.stringify({ file_name: '0.png', caption: 'one-line-art, a face, side view' }),
      JSON.stringify({ file_name: '1.png', caption: 'one-line-art, a cat' }),
      '',
      JSON.stringify({ file_name: 'missing.png', caption: 'one-line-art, a missing picture' }),
    ].join('\n');
    hub.addRepo('lab/folder', [
      { path: 'train/0.png', content: images[0] },
      { path: 'train/1.png', content: images[1] },
      { path: 'train/2.png', content: images[2] },
      { path: 'train/metadata.jsonl', content: Buffer.from(metadata) },
      { path: 'test/0.png', content: images[2] },
      { path: 'test/metadata.jsonl', content: Buffer.from(JSON.stringify({ file_name: '0.png', caption: 'test' })) },
    ]);
    const ds = spec({ hub: 'lab/folder', caption_column: 'caption' });
    const { listing } = await fetchOnce(ds);
    expect(listing.layout).toBe('imagefolder');
    expect(listing.entries.map((e) => e.id)).toEqual(['train/0.png', 'train/1.png', 'train/2.png', 'train/missing.png']);
    const [first, , third, missing] = listing.entries;
    expect(first.image).toEqual({ path: 'train/0.png', sha256: sha256(images[0]), size: images[0].length });
    expect(existsSync(join(home, 'hub', 'datasets--lab--folder', 'snapshots', listing.revision!, 'train', '0.png'))).toBe(true);
    expect(first.captionText).toEqual({ text: 'one-line-art, a face, side view', path: 'train/metadata.jsonl', line: 1, column: 'caption' });
    expect(third.captionText).toBeUndefined();
    expect(missing.image).toBeUndefined();
    expect(missing.captionText!.line).toBe(4);

    const items = [];
    for await (const item of readHubItems(listing, ds, new AbortController().signal)) items.push(item);
    expect(Buffer.compare(Buffer.from(items[1].image!), Buffer.from(images[1]))).toBe(0);
    expect(items[1].caption!.text).toBe('one-line-art, a cat');

    const wrong = await expectHubError(fetchOnce(spec({ hub: 'lab/folder', caption_column: 'captoin' })), 'unknown-column');
    expect(wrong.message).toContain("has no caption column 'captoin'");
    expect(wrong.hint).toContain('did you mean `caption_column: caption`?');
  });

  it('imagefolder metadata that points outside the dataset or is not JSON is refused with file and line', async () => {
    hub.addRepo('lab/folder-bad', [
      { path: 'train/0.png', content: pokemonImages[0] },
      { path: 'train/metadata.jsonl', content: Buffer.from(`${JSON.stringify({ file_name: '0.png', text: 'ok' })}\n${JSON.stringify({ file_name: '../../x.png', text: 'bad' })}\n`) },
    ]);
    const err = await expectHubError(fetchOnce(spec({ hub: 'lab/folder-bad' })), 'bad-metadata');
    expect(err.message).toContain('train/metadata.jsonl:2');
    hub.commit('lab/folder-bad', [
      { path: 'train/0.png', content: pokemonImages[0] },
      { path: 'train/metadata.csv', content: Buffer.from('file_name,text\n0.png,"a face, side view"\n') },
    ]);
    const csv = await fetchOnce(spec({ hub: 'lab/folder-bad' }));
    expect(csv.listing.entries[0].captionText).toEqual({ text: 'a face, side view', path: 'train/metadata.csv', line: 2, column: 'text' });
  });
});

