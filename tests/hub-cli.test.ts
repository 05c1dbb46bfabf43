// `lorabuild run` on a hub dataset, end to end: the CLI as a child process with HF_ENDPOINT at a
// loopback hub, the real HF cache layout, lorafile.lock pinning, --update, offline, and errors.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeTempDir, runCli } from './helpers/cli.js';
import { HubServer } from './helpers/hub-server.js';
import { pngBytes, pokemonParquet } from './helpers/parquet-fixtures.js';

const SHARD = 'data/train-00000-of-00001.parquet';
let hub: HubServer;
let dir: string;
let cleanup: () => void;
let images: Uint8Array[];

beforeAll(async () => {
  hub = await HubServer.start();
  images = await Promise.all([0, 1, 2].map((i) => pngBytes(i, 16)));
});
afterAll(async () => hub.stop());
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-hub-cli-'));
  hub.clearLog();
});
afterEach(() => cleanup());

function parquet(captions: string[]): Uint8Array {
  return pokemonParquet(captions.map((en, i) => ({ image: images[i % images.length], path: `${i}.png`, en, zh: `${i}` })));
}

function lorafile(dataset: string): void {
  writeFileSync(join(dir, 'lorafile.yaml'), `version: 1\ndatasets:\n  pokemon:\n${dataset.replace(/^/gm, '    ')}\n`);
}

function run(args: string[], env: Record<string, string | undefined> = {}) {
  return runCli(['run', 'prepare:pokemon', '--json', ...args], {
    cwd: dir,
    env: { HF_HOME: join(dir, 'hf'), HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: undefined, HF_HUB_CACHE: undefined, HF_TOKEN: undefined, ...env },
  });
}

function outcomes(events: Record<string, unknown>[]): Record<string, unknown> {
  return Object.fromEntries(events.filter((e) => typeof e.stage === 'string' && !e.item && ['fresh', 'cached', 'ran', 'failed', 'skipped'].includes(e.outcome as string)).map((e) => [e.stage, e.outcome]));
}

describe('lorabuild run with a hub dataset', () => {
  it('downloads into the HF cache, pins the sha, reruns without requests, and moves only with --update', async () => {
    const first = hub.addRepo('lab/cli', [{ path: SHARD, content: parquet(['a pikachu', 'a bulbasaur']) }]);
    lorafile('hub: lab/cli\ncaption_column: en_text');
    const one = await run([]);
    expect(one.code, one.stderr + one.stdout).toBe(0);
    expect(outcomes(one.events)).toMatchObject({ 'fetch:pokemon': 'ran', 'prepare:pokemon': 'ran' });
    expect(readFileSync(join(dir, 'lorafile.lock'), 'utf8')).toContain(first);
    expect(existsSync(join(dir, 'hf', 'hub', 'datasets--lab--cli', 'snapshots', first, SHARD))).toBe(true);
    expect(readFileSync(join(dir, 'hf', 'hub', 'datasets--lab--cli', 'refs', 'main'), 'utf8')).toBe(first);

    hub.clearLog();
    const two = await run([]);
    expect(outcomes(two.events)).toMatchObject({ 'fetch:pokemon': 'fresh', 'prepare:pokemon': 'fresh' });
    expect(hub.log).toEqual([]);

    const second = hub.commit('lab/cli', [{ path: SHARD, content: parquet(['a charmander']) }]);
    const pinned = await run([]);
    expect(outcomes(pinned.events)).toMatchObject({ 'fetch:pokemon': 'fresh', 'prepare:pokemon': 'fresh' });
    expect(readFileSync(join(dir, 'lorafile.lock'), 'utf8')).toContain(first);

    const updated = await run(['--update', 'lab/cli']);
    expect(updated.code, updated.stderr).toBe(0);
    expect(outcomes(updated.events)).toMatchObject({ 'fetch:pokemon': 'ran', 'prepare:pokemon': 'ran' });
    const lock = readFileSync(join(dir, 'lorafile.lock'), 'utf8');
    expect(lock).toContain(second);
    expect(lock).not.toContain(first);
  });

  it('builds offline from the HF cache with the hub stopped, and fails clearly with an empty cache', async () => {
    const own = await HubServer.start();
    own.addRepo('lab/away', [{ path: SHARD, content: parquet(['one', 'two']) }]);
    lorafile('hub: lab/away\ncaption_column: en_text');
    expect((await run([], { HF_ENDPOINT: own.url })).code).toBe(0);
    await own.stop();
    const offline = await run([], { HF_ENDPOINT: own.url, HF_HUB_OFFLINE: '1', LORABUILD_CACHE: join(dir, 'cache-2') });
    expect(offline.code, offline.stderr + offline.stdout).toBe(0);
    expect(outcomes(offline.events)).toMatchObject({ 'fetch:pokemon': 'ran', 'prepare:pokemon': 'ran' });

    const empty = await run([], { HF_ENDPOINT: own.url, HF_HUB_OFFLINE: '1', HF_HOME: join(dir, 'empty-hf'), LORABUILD_CACHE: join(dir, 'cache-3') });
    expect(empty.code).not.toBe(0);
    const text = empty.stdout + empty.stderr;
    expect(text).toContain('HF_HUB_OFFLINE=1 and dataset lab/away');
    expect(text).toContain('huggingface-cli download lab/away --repo-type dataset');
  });

  it('a wrong caption column fails with the columns and a suggestion', async () => {
    hub.addRepo('lab/columns', [{ path: SHARD, content: parquet(['x']) }]);
    lorafile('hub: lab/columns\ncaption_column: text');
    const result = await run([]);
    expect(result.code).not.toBe(0);
    const text = result.stdout + result.stderr;
    expect(text).toContain('no column `text`');
    expect(text).toContain('did you mean `en_text`?');
  });

  it('an unknown repo fails the fetch and says what to check', async () => {
    lorafile('hub: lab/does-not-exist');
    const result = await run([]);
    expect(result.code).not.toBe(0);
    expect(outcomes(result.events)).toMatchObject({ 'fetch:pokemon': 'failed' });
    expect(result.stdout + result.stderr).toContain('dataset repo lab/does-not-exist not found');
  });
});
