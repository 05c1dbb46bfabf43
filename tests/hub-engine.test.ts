// hub datasets through the real executor and the real fetch/prepare stages, against the loopback
// hub: the lock pins the commit, reruns are fresh with no content requests, --update moves the pin,
// offline builds from the HF cache, and undecodable rows are reported by row.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Cas } from '../src/cache/cas.js';
import { DatasetSchema, type Config } from '../src/config/schema.js';
import type { Listing, Manifest } from '../src/datasets/manifest.js';
import { execute } from '../src/engine/executor.js';
import { lockPathFor, readLockfile } from '../src/engine/lockfile.js';
import type { Json, Plan, StageKind, StageNode } from '../src/engine/types.js';
import { stage as fetchStage } from '../src/stages/fetch.js';
import { stage as prepareStage } from '../src/stages/prepare.js';
import { makeTempDir } from './helpers/cli.js';
import { HubServer } from './helpers/hub-server.js';
import { pngBytes, pokemonParquet } from './helpers/parquet-fixtures.js';

const SHARD = 'data/train-00000-of-00001.parquet';
let hub: HubServer;
let dir: string;
let cleanup: () => void;
let images: Uint8Array[];

beforeAll(async () => {
  hub = await HubServer.start();
  images = await Promise.all([0, 1, 2, 3].map((i) => pngBytes(i, 20)));
});
afterAll(async () => hub.stop());

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-hub-engine-'));
  for (const key of ['HF_HUB_CACHE', 'HF_HUB_OFFLINE', 'HF_TOKEN']) delete process.env[key];
  process.env.HF_HOME = join(dir, 'hf');
  process.env.HF_ENDPOINT = hub.url;
  hub.clearLog();
});
afterEach(() => cleanup());

function config(dataset: Record<string, unknown>): Config {
  return { version: 1, out: 'out', models: {}, datasets: { ds: DatasetSchema.parse(dataset) }, loras: {}, renders: {}, file: join(dir, 'lorafile.yaml'), root: dir, source: '' };
}

function plan(): Plan {
  const nodes: StageNode[] = [
    { id: 'fetch:ds', kind: 'fetch', target: 'ds', deps: [], resource: 'net' },
    { id: 'prepare:ds', kind: 'prepare', target: 'ds', deps: ['fetch:ds'], resource: 'cpu' },
  ];
  return { stages: new Map(nodes.map((n) => [n.id, n])), order: nodes.map((n) => n.id), selected: [] };
}

const registry = async (kind: StageKind) => {
  if (kind === 'fetch') return fetchStage;
  if (kind === 'prepare') return prepareStage;
  throw new Error(`no ${kind} stage in this test`);
};

async function build(dataset: Record<string, unknown>, options: Record<string, Json> = {}) {
  const cfg = config(dataset);
  const result = await execute({ config: cfg, plan: plan(), registry, cacheDir: join(dir, 'cache'), lockFile: lockPathFor(cfg.file), mode: 'run', options });
  const lock = async () => (await readLockfile(lockPathFor(cfg.file), join(dir, 'cache'))).lock;
  const output = async <T>(stageId: string, name: string): Promise<T> => {
    const entry = (await lock()).stages[stageId];
    return JSON.parse(readFileSync(new Cas(join(dir, 'cache')).path(entry.outputs[name].sha256), 'utf8')) as T;
  };
  const outcome = (id: string) => result.reports.get(id)!.outcome;
  const reason = (id: string) => result.reports.get(id)!.reason;
  return { outcome, reason, output, lock };
}

function rows(texts: string[]) {
  return texts.map((en, i) => ({ image: images[i % images.length], path: `${i}.png`, en, zh: `${i}` }));
}

describe('hub dataset through the executor', () => {
  it('pins the sha in the lock; a rerun is fresh with no requests; main moving changes nothing until --update', async () => {
    const first = hub.addRepo('lab/engine', [{ path: SHARD, content: pokemonParquet(rows(['a pikachu', 'a bulbasaur', 'a squirtle'])) }]);
    const ds = { hub: 'lab/engine', caption_column: 'en_text' };
    const one = await build(ds);
    expect([one.outcome('fetch:ds'), one.outcome('prepare:ds')]).toEqual(['ran', 'ran']);
    expect((await one.lock()).stages['fetch:ds'].params.sha).toBe(first);
    const manifest = await one.output<Manifest>('prepare:ds', 'manifest.json');
    expect(manifest.items.map((i) => [i.id, i.caption?.text, i.image?.origin, i.image?.format])).toEqual([
      ['row 0', 'a pikachu', `${SHARD} row 0`, 'png'],
      ['row 1', 'a bulbasaur', `${SHARD} row 1`, 'png'],
      ['row 2', 'a squirtle', `${SHARD} row 2`, 'png'],
    ]);
    expect((await one.output<Listing>('fetch:ds', 'listing.json')).revision).toBe(first);

    hub.clearLog();
    const two = await build(ds);
    expect([two.outcome('fetch:ds'), two.outcome('prepare:ds')]).toEqual(['fresh', 'fresh']);
    expect(hub.log).toEqual([]);

    const second = hub.commit('lab/engine', [{ path: SHARD, content: pokemonParquet(rows(['a pikachu', 'a charmander'])) }]);
    const pinned = await build(ds);
    expect([pinned.outcome('fetch:ds'), pinned.outcome('prepare:ds')]).toEqual(['fresh', 'fresh']);
    expect((await pinned.lock()).stages['fetch:ds'].params.sha).toBe(first);

    const updated = await build(ds, { update: ['lab/engine'] });
    expect(updated.outcome('fetch:ds')).toBe('ran');
    expect(updated.reason('fetch:ds')).toContain(second.slice(0, 7));
    expect((await updated.lock()).stages['fetch:ds'].params.sha).toBe(second);
    expect((await updated.output<Manifest>('prepare:ds', 'manifest.json')).items.map((i) => i.caption?.text)).toEqual(['a pikachu', 'a charmander']);
  });

  it('builds offline from the HF cache once the hub is gone', async () => {
    const own = await HubServer.start();
    own.addRepo('lab/away', [{ path: SHARD, content: pokemonParquet(rows(['one', 'two'])) }]);
    process.env.HF_ENDPOINT = own.url;
    const ds = { hub: 'lab/away', caption_column: 'en_text' };
    expect((await build(ds)).outcome('prepare:ds')).toBe('ran');
    await own.stop();
    process.env.HF_HUB_OFFLINE = '1';
    const again = await build(ds);
    expect([again.outcome('fetch:ds'), again.outcome('prepare:ds')]).toEqual(['fresh', 'fresh']);
    // a new cache for lorabuild (CI restores only the HF cache): fetch and prepare rebuild offline
    const fresh = await execute({ config: config(ds), plan: plan(), registry, cacheDir: join(dir, 'cache2'), lockFile: join(dir, 'other.lock'), mode: 'run' });
    expect(fresh.reports.get('prepare:ds')!.outcome).toBe('ran');
  });

  it('fails the fetch with the hub error, and reports an undecodable row by its index', async () => {
    const missing = await build({ hub: 'lab/missing' });
    expect(missing.outcome('fetch:ds')).toBe('failed');
    expect(missing.reason('fetch:ds')).toContain('dataset repo lab/missing not found');

    const broken = rows(['good', 'good too', 'broken']);
    broken[2].image = new TextEncoder().encode('this is not an image');
    hub.addRepo('lab/broken', [{ path: SHARD, content: pokemonParquet(broken) }]);
    const skip = await build({ hub: 'lab/broken', caption_column: 'en_text', bad_images: 'skip' });
    const manifest = await skip.output<Manifest>('prepare:ds', 'manifest.json');
    expect(manifest.items.map((i) => i.id)).toEqual(['row 0', 'row 1']);
    expect(manifest.skipped).toHaveLength(1);
    expect(manifest.skipped[0].origin).toContain(`${SHARD} row 2`);
  });
});
