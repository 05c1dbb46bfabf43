// A dataset big enough for the chunk trees (more than 4,096 files, more than 256 items), through the
// CLI: the lock records the file list's tree root; gc keeps every tree node an entry needs; verify
// drops a build whose tree is damaged and the next run rebuilds it; status still names the edited
// caption; a fresh clone (no cache) checks the lock against its own files.
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { tinyPng } from '../bench/lab-dataset.js';
import { Cas } from '../src/cache/cas.js';
import { treeNodes } from '../src/cache/chunk-tree.js';
import { makeTempDir, runCli, type CliResult } from './helpers/cli.js';
import { itemRecordCount } from './helpers/item-records.js';

const ITEMS = 2100; // 4,200 files: past FILES_INLINE_MAX (4,096)
let tmp: { dir: string; cleanup: () => void };
let dir: string;
const run = (args: string[], cwd = dir, cache = join(cwd, 'cache')) => runCli(args, { cwd, env: { LORABUILD_CACHE: cache }, timeoutMs: 300_000 });
const outcomes = (r: CliResult) => Object.fromEntries(r.events.filter((e) => typeof e.stage === 'string' && typeof e.outcome === 'string' && !('item' in e)).map((e) => [e.stage, e.outcome]));
type Lock = { stages: Record<string, { files: Record<string, string>; filesTree?: { digest: string; root: string; count: number }; outputs: Record<string, { sha256: string }> }> };
const lock = (cwd = dir) => parseYaml(readFileSync(join(cwd, 'lorafile.lock'), 'utf8')) as Lock;
const blobJson = (sha: string) => JSON.parse(readFileSync(new Cas(join(dir, 'cache')).path(sha), 'utf8')) as Record<string, unknown>;

beforeAll(async () => {
  tmp = makeTempDir('lorabuild-trees-');
  dir = join(tmp.dir, 'p');
  mkdirSync(join(dir, 'data', 'image'), { recursive: true });
  mkdirSync(join(dir, 'data', 'text'), { recursive: true });
  const old = new Date('2024-01-01T00:00:00Z');
  for (let i = 0; i < ITEMS; i++) {
    writeFileSync(join(dir, 'data', 'image', `${i}.png`), tinyPng(i));
    writeFileSync(join(dir, 'data', 'text', `${i}.txt`), `one-line-art, a face, pose ${i}\n`);
    utimesSync(join(dir, 'data', 'image', `${i}.png`), old, old);
    utimesSync(join(dir, 'data', 'text', `${i}.txt`), old, old);
  }
  writeFileSync(join(dir, 'lorafile.yaml'), 'version: 1\ndatasets:\n  ds:\n    folder: data\n    rules: { too_small: off }\n');
  const cold = await run(['run', 'ds', '--json']);
  expect(cold.code, cold.stderr).toBe(0);
}, 600_000);
afterAll(() => tmp?.cleanup());

describe('chunk trees through the CLI', () => {
  it('the lock names the file list by its tree root, and listing and manifest keep their lists in trees', () => {
    const fetch = lock().stages['fetch:ds'];
    expect(fetch.files).toEqual({});
    expect(fetch.filesTree).toMatchObject({ count: ITEMS * 2 });
    expect(readFileSync(join(dir, 'lorafile.lock'), 'utf8').length).toBeLessThan(8192);
    const listing = blobJson(fetch.outputs['listing.json'].sha256);
    expect(listing.entries).toMatchObject({ count: ITEMS });
    const manifest = blobJson(lock().stages['prepare:ds'].outputs['manifest.json'].sha256);
    expect(manifest.items).toMatchObject({ count: ITEMS });
  });

  it('status names the edited caption (read from the tree), and the run redoes that item only', async () => {
    const caption = join(dir, 'data', 'text', '1234.txt');
    writeFileSync(caption, 'one-line-art, a face, smiling\n');
    const status = await run(['status', '--json']);
    expect(status.events.find((e) => e.stage === 'fetch:ds')).toMatchObject({ outcome: 'stale', reason: 'data/text/1234.txt changed' });
    const edited = await run(['run', 'ds', '--json']);
    expect(outcomes(edited)).toEqual({ 'fetch:ds': 'ran', 'prepare:ds': 'ran', 'validate:ds': 'ran' });
    expect(edited.events.filter((e) => e.stage === 'prepare:ds' && e.item && e.outcome === 'ran').map((e) => e.item)).toEqual(['1234']);
    expect(edited.events.filter((e) => e.stage === 'prepare:ds' && e.item && e.outcome === 'cached')).toHaveLength(ITEMS - 1);
    // validate's checks live in its item pack only (no file each): the unchanged ones come from it
    expect(edited.events.filter((e) => e.stage === 'validate:ds' && e.item && e.outcome === 'ran').map((e) => e.item)).toEqual(['1234']);
    expect(edited.events.filter((e) => e.stage === 'validate:ds' && e.item && e.outcome === 'cached')).toHaveLength(ITEMS - 1);
    expect(existsSync(join(dir, 'cache', 'items', 'validate'))).toBe(false);
    // prepare's records are in its journals: an item's and its image part's
    expect(itemRecordCount(join(dir, 'cache'), 'prepare')).toBeGreaterThan(ITEMS);
  }, 300_000);

  it('the next run reads item records from the item pack of the previous build, and a damaged pack only costs speed', async () => {
    const cacheDir = join(dir, 'cache');
    const cas = new Cas(cacheDir);
    const entryOf = (fp: string) => JSON.parse(readFileSync(join(cacheDir, 'actions', fp.slice(0, 2), `${fp}.json`), 'utf8')) as { items: string[]; itemPack?: { root: string; count: number } };
    const prepared = entryOf((lock().stages['prepare:ds'] as unknown as { fingerprint: string }).fingerprint);
    expect(prepared.items).toEqual([]);
    expect(prepared.itemPack).toMatchObject({ count: ITEMS });
    // without the journals of records, the pack alone serves every unchanged item
    const items = join(cacheDir, 'items', 'prepare');
    const saved = join(tmp.dir, 'prepare-items');
    renameSync(items, saved);
    writeFileSync(join(dir, 'data', 'text', '77.txt'), 'one-line-art, a face, asleep\n');
    const fromPack = await run(['run', 'ds', '--json']);
    expect(fromPack.code, fromPack.stderr).toBe(0);
    expect(fromPack.events.filter((e) => e.stage === 'prepare:ds' && e.item && e.outcome === 'ran').map((e) => e.item)).toEqual(['77']);
    // the old records back, into the journals that hold the one just written
    for (const name of readdirSync(saved)) appendFileSync(join(items, name), readFileSync(join(saved, name)));
    rmSync(saved, { recursive: true });
    // a damaged leaf of the pack: the records come from the journals instead, the result is the same
    const pack = entryOf((lock().stages['prepare:ds'] as unknown as { fingerprint: string }).fingerprint).itemPack!;
    const leaf = treeNodes(cas, pack).at(-1)!;
    writeFileSync(cas.path(leaf), '{"tree":1,"leaf":[]}');
    writeFileSync(join(dir, 'data', 'text', '78.txt'), 'one-line-art, a face, awake\n');
    const fromFiles = await run(['run', 'ds', '--json']);
    expect(fromFiles.code, fromFiles.stderr).toBe(0);
    expect(fromFiles.events.filter((e) => e.stage === 'prepare:ds' && e.item && e.outcome === 'ran').map((e) => e.item)).toEqual(['78']);
    // the new pack holds that leaf's records again: writing it put the whole blob back
    expect((JSON.parse(readFileSync(cas.path(leaf), 'utf8')) as { leaf: unknown[] }).leaf.length).toBeGreaterThan(0);
    const verify = await run(['cache', 'verify']);
    expect(verify.code, verify.stdout).toBe(0);
  }, 300_000);

  it('gc keeps every tree node the kept builds need: the next run is fresh and verify finds nothing', async () => {
    const gc = await run(['cache', 'gc', '--keep-last', '1']);
    expect(gc.code, gc.stderr).toBe(0);
    const again = await run(['run', 'ds', '--json']);
    expect(outcomes(again)).toEqual({ 'fetch:ds': 'fresh', 'prepare:ds': 'fresh', 'validate:ds': 'fresh' });
    const verify = await run(['cache', 'verify']);
    expect(verify.code, verify.stdout).toBe(0);
    // the manifest's tree is readable whole after gc
    const root = (blobJson(lock().stages['prepare:ds'].outputs['manifest.json'].sha256).items as { $tree: string; count: number });
    expect(treeNodes(new Cas(join(dir, 'cache')), { root: root.$tree, count: root.count }).length).toBeGreaterThan(10);
  }, 300_000);

  it('a damaged manifest leaf: verify drops that build, the next run rebuilds it with the same result', async () => {
    const cas = new Cas(join(dir, 'cache'));
    const manifestSha = lock().stages['prepare:ds'].outputs['manifest.json'].sha256;
    const ref = blobJson(manifestSha).items as { $tree: string; count: number };
    const nodes = treeNodes(cas, { root: ref.$tree, count: ref.count });
    const leaf = nodes[nodes.length - 1];
    writeFileSync(cas.path(leaf), '{"tree":1,"leaf":[]}');
    const verify = await run(['cache', 'verify']);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toContain(`corrupted blob ${leaf}`);
    expect(verify.stdout).toMatch(/dropped cached build prepare:ds [0-9a-f]{12}/);
    const rebuilt = await run(['run', 'ds', '--json']);
    expect(rebuilt.code, rebuilt.stderr).toBe(0);
    expect(outcomes(rebuilt)['prepare:ds']).toBe('ran');
    expect(lock().stages['prepare:ds'].outputs['manifest.json'].sha256).toBe(manifestSha);
    expect(JSON.parse(readFileSync(cas.path(leaf), 'utf8')).leaf.length).toBeGreaterThan(0);
  }, 300_000);

  it('a fresh clone without a cache checks clean, and an edited caption there is stale with a reason', async () => {
    const all = await run(['run', '--json']); // the report too: check verifies every stage
    expect(all.code, all.stderr).toBe(0);
    const clone = join(tmp.dir, 'clone');
    for (const entry of ['lorafile.yaml', 'lorafile.lock', 'data', 'out']) cpSync(join(dir, entry), join(clone, entry), { recursive: true });
    const cache = join(tmp.dir, 'clone-cache');
    const clean = await run(['check', '--json'], clone, cache);
    expect(clean.code, clean.stdout.slice(-2000)).toBe(0);
    writeFileSync(join(clone, 'data', 'text', '7.txt'), 'one-line-art, a face, frowning\n');
    const edited = await run(['check', '--json'], clone, join(tmp.dir, 'clone-cache-2'));
    expect(edited.code).not.toBe(0);
    const fetch = edited.events.find((e) => e.stage === 'fetch:ds') as { findings: { kind: string; message: string }[] };
    expect(fetch.findings.map((f) => f.message).join('\n')).toMatch(/input files changed \(4200 -> 4200 files; this cache does not hold the previous list/);

    // the digest in the lock edited by hand: tampered, naming the file list
    const forged = join(tmp.dir, 'forged');
    for (const entry of ['lorafile.yaml', 'lorafile.lock', 'data', 'out']) cpSync(join(dir, entry), join(forged, entry), { recursive: true });
    const text = readFileSync(join(forged, 'lorafile.lock'), 'utf8');
    const digest = lock(forged).stages['fetch:ds'].filesTree!.digest;
    writeFileSync(join(forged, 'lorafile.lock'), text.replace(digest, 'ab'.repeat(32)));
    const tampered = await run(['check', '--json'], forged, join(tmp.dir, 'forged-cache'));
    expect(tampered.code).toBe(4);
    const line = tampered.events.find((e) => e.stage === 'fetch:ds') as { findings: { kind: string; message: string }[] };
    expect(line.findings).toContainEqual(expect.objectContaining({ kind: 'tampered', message: expect.stringContaining(`edited: files (4200 files with digest abababababab in the lock, 4200 files with digest ${digest.slice(0, 12)} here)`) }));
  }, 300_000);
});
