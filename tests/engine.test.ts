// The executor on real files in a temp folder, with small stage implementations defined here
// (a lab-layout lister, a per-item caption "prepare", and a materializing "train").
import { readFileSync, writeFileSync, utimesSync, existsSync, rmSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { execute, type StageRegistry } from '../src/engine/executor.js';
import { lockPathFor } from '../src/engine/lockfile.js';
import type { Config } from '../src/config/schema.js';
import type { Json, Plan, StageEvent, StageImpl, StageKind, StageNode } from '../src/engine/types.js';
import { makeTempDir, writeFiles } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
const runs: Record<string, number> = {};

beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-engine-'));
  for (const k of Object.keys(runs)) delete runs[k];
  const files: Record<string, string> = {};
  for (let i = 0; i < 5; i++) {
    files[`ds/image/${i}.png`] = `png bytes ${i}`;
    files[`ds/text/${i}.txt`] = `lineart, shape ${i}`;
  }
  writeFiles(dir, files);
  const old = new Date('2024-01-01T00:00:00Z');
  for (const f of Object.keys(files)) utimesSync(join(dir, f), old, old);
});
afterEach(() => cleanup());

function config(params: { lr?: number; failTrain?: boolean } = {}): Config {
  return { version: 1, out: 'out', models: {}, datasets: {}, loras: {}, renders: {}, file: join(dir, 'lorafile.yaml'), root: dir, source: '', test: params } as unknown as Config;
}

const listStage: StageImpl = {
  kind: 'fetch',
  version: 1,
  materializeTo: () => null,
  async inputs(ctx) {
    const files: Record<string, string> = {};
    for (const sub of ['image', 'text']) {
      for (const name of readdirSync(join(ctx.root, 'ds', sub)).sort()) files[`ds/${sub}/${name}`] = await ctx.hashFile(join(ctx.root, 'ds', sub, name));
    }
    return { params: { folder: 'ds' }, files };
  },
  async run(ctx, inputs) {
    runs.fetch = (runs.fetch ?? 0) + 1;
    writeFileSync(join(ctx.outDir, 'listing.json'), JSON.stringify(inputs.files));
    return { meta: { count: Object.keys(inputs.files).length } };
  },
};

const prepareStage: StageImpl = {
  kind: 'prepare',
  version: 1,
  materializeTo: () => null,
  async inputs() {
    return { params: { policy: 'none' }, files: {} };
  },
  async run(ctx) {
    runs.prepare = (runs.prepare ?? 0) + 1;
    const listing = JSON.parse(readFileSync(ctx.upstreamPath('fetch:ds', 'listing.json'), 'utf8')) as Record<string, string>;
    const items: Json[] = [];
    for (const path of Object.keys(listing).filter((p) => p.includes('/text/'))) {
      const id = path.split('/').pop()!.replace('.txt', '');
      items.push(
        await ctx.item(id, { caption: listing[path] }, async () => {
          const blob = await ctx.putBlob(readFileSync(join(ctx.root, path)));
          return { id, caption: blob.sha256 };
        }),
      );
    }
    writeFileSync(join(ctx.outDir, 'manifest.json'), JSON.stringify(items));
    return { meta: { items: items.length } };
  },
};

const trainStage: StageImpl = {
  kind: 'train',
  version: 1,
  materializeTo: (node) => `loras/${node.target}`,
  async inputs(ctx) {
    const test = (ctx.config as unknown as { test: { lr?: number } }).test;
    return { params: { learning_rate: test.lr ?? 0.0001 }, files: {} };
  },
  async run(ctx, inputs) {
    runs.train = (runs.train ?? 0) + 1;
    ctx.log(`training with lr ${String(inputs.params.learning_rate)}`);
    if ((ctx.config as unknown as { test: { failTrain?: boolean } }).test.failTrain) throw new Error('loss became NaN');
    const manifest = readFileSync(ctx.upstreamPath('prepare:ds', 'manifest.json'), 'utf8');
    writeFileSync(join(ctx.outDir, 'x.safetensors'), `weights for ${manifest.length} lr=${String(inputs.params.learning_rate)}`);
    return { meta: null };
  },
};

const registry: StageRegistry = async (kind: StageKind) => ({ fetch: listStage, prepare: prepareStage, train: trainStage })[kind as 'fetch'];

function plan(): Plan {
  const nodes: StageNode[] = [
    { id: 'fetch:ds', kind: 'fetch', target: 'ds', deps: [], resource: 'cpu' },
    { id: 'prepare:ds', kind: 'prepare', target: 'ds', deps: ['fetch:ds'], resource: 'cpu' },
    { id: 'train:x', kind: 'train', target: 'x', deps: ['prepare:ds'], resource: 'gpu' },
  ];
  return { stages: new Map(nodes.map((n) => [n.id, n])), order: nodes.map((n) => n.id), selected: [] };
}

async function build(mode: 'run' | 'status' = 'run', cfg = config()) {
  const events: StageEvent[] = [];
  const result = await execute({ config: cfg, plan: plan(), registry, cacheDir: join(dir, 'cache'), lockFile: lockPathFor(cfg.file), mode, onEvent: (e) => events.push(e) });
  const outcome = (id: string) => result.reports.get(id)!.outcome;
  const reason = (id: string) => result.reports.get(id)!.reason;
  return { result, events, outcome, reason };
}

describe('executor', () => {
  it('refuses a stage whose inputs name a file without a sha256, naming the file', async () => {
    const bad: StageImpl = { ...listStage, inputs: async () => ({ params: {}, files: { 'ds/a.txt': 'a'.repeat(64), 'ds/b.txt': 'not-a-hash' } }) };
    const result = await execute({ config: config(), plan: plan(), registry: async (k) => (k === 'fetch' ? bad : registry(k)), cacheDir: join(dir, 'cache'), lockFile: join(dir, 'lorafile.lock'), mode: 'run' });
    expect(result.reports.get('fetch:ds')).toMatchObject({ outcome: 'failed', reason: 'fetch:ds: input file ds/b.txt has no sha256 (got "not-a-hash")' });
  });

  it('builds everything once, then finds it all fresh without reading a file', async () => {
    const first = await build();
    expect([...first.result.reports.values()].map((r) => r.outcome)).toEqual(['ran', 'ran', 'ran']);
    expect(readFileSync(join(dir, 'out/loras/x/x.safetensors'), 'utf8')).toMatch(/^weights for/);
    expect(existsSync(join(dir, 'lorafile.lock'))).toBe(true);
    const third = await build();
    expect([...third.result.reports.values()].map((r) => r.outcome)).toEqual(['fresh', 'fresh', 'fresh']);
    expect(third.result.hashing.filesHashed).toBe(0);
    expect(third.result.hashing.memoHits).toBeGreaterThanOrEqual(10);
    expect(runs).toEqual({ fetch: 1, prepare: 1, train: 1 });
  });

  it('re-hashes only touched files and runs nothing when their content is the same', async () => {
    await build();
    const later = new Date('2024-06-01T00:00:00Z');
    utimesSync(join(dir, 'ds/text/3.txt'), later, later);
    const touched = await build();
    expect(touched.result.hashing.filesHashed).toBe(1);
    expect([...touched.result.reports.values()].map((r) => r.outcome)).toEqual(['fresh', 'fresh', 'fresh']);
    const again = await build();
    expect(again.result.hashing.filesHashed).toBe(0);
  });

  it('re-runs one item after a caption edit, names the file, and restores the old build on revert', async () => {
    await build();
    const original = readFileSync(join(dir, 'out/loras/x/x.safetensors'), 'utf8');
    writeFileSync(join(dir, 'ds/text/3.txt'), 'lineart, a different shape');
    const status = await build('status');
    expect(status.outcome('fetch:ds')).toBe('stale');
    expect(status.reason('fetch:ds')).toBe('ds/text/3.txt changed');
    expect(status.reason('prepare:ds')).toBe('upstream fetch:ds is stale');
    const edited = await build();
    expect(edited.outcome('prepare:ds')).toBe('ran');
    const itemEvents = edited.events.filter((e) => e.stage === 'prepare:ds' && e.item);
    expect(itemEvents.filter((e) => e.outcome === 'ran').map((e) => e.item)).toEqual(['3']);
    expect(itemEvents.filter((e) => e.outcome === 'cached')).toHaveLength(4);
    expect(edited.reason('prepare:ds')).toBe('upstream fetch:ds changed');
    expect(edited.outcome('train:x')).toBe('ran');
    expect(runs.train).toBe(2);

    writeFileSync(join(dir, 'ds/text/3.txt'), 'lineart, shape 3');
    const reverted = await build();
    expect([...reverted.result.reports.values()].map((r) => r.outcome)).toEqual(['cached', 'cached', 'cached']);
    expect(runs).toEqual({ fetch: 2, prepare: 2, train: 2 });
    expect(readFileSync(join(dir, 'out/loras/x/x.safetensors'), 'utf8')).toBe(original);
  });

  it('says which parameter changed', async () => {
    await build();
    const status = await build('status', config({ lr: 0.0002 }));
    expect(status.outcome('train:x')).toBe('stale');
    expect(status.reason('train:x')).toBe('learning_rate 0.0001 -> 0.0002');
    expect(status.outcome('prepare:ds')).toBe('fresh');
  });

  it('restores a deleted or edited output from the cache without running', async () => {
    await build();
    const out = join(dir, 'out/loras/x/x.safetensors');
    const original = readFileSync(out, 'utf8');
    rmSync(out);
    const status = await build('status');
    expect(status.reason('train:x')).toBe('out/loras/x/x.safetensors deleted (restorable from cache)');
    const restored = await build();
    expect(restored.outcome('train:x')).toBe('cached');
    expect(readFileSync(out, 'utf8')).toBe(original);
    writeFileSync(out, 'edited by hand');
    const afterEdit = await build();
    expect(afterEdit.reason('train:x')).toBe('out/loras/x/x.safetensors changed after lorabuild wrote it; restored from cache');
    expect(readFileSync(out, 'utf8')).toBe(original);
    expect(runs.train).toBe(1);
  });

  it('a failed stage keeps its log, is not locked, and the next run retries it', async () => {
    const failed = await build('run', config({ failTrain: true }));
    expect(failed.outcome('train:x')).toBe('failed');
    expect(failed.reason('train:x')).toBe('loss became NaN');
    const lock = readFileSync(join(dir, 'lorafile.lock'), 'utf8');
    expect(lock).toContain('prepare:ds');
    expect(lock).not.toContain('train:x');
    const fixed = await build();
    expect(fixed.outcome('train:x')).toBe('ran');
    expect(fixed.reason('train:x')).toBe('never built');
  });
});

describe('scheduling', () => {
  function sleeper(kind: StageKind, active: { now: Record<string, number>; max: Record<string, number> }, opts: { fail?: string; slow?: string; abortAfter?: AbortController } = {}): StageImpl {
    return {
      kind,
      version: 1,
      materializeTo: () => null,
      async inputs(ctx) {
        return { params: { id: ctx.node.id }, files: {} };
      },
      async run(ctx) {
        const resource = ctx.node.resource;
        active.now[resource] = (active.now[resource] ?? 0) + 1;
        active.max[resource] = Math.max(active.max[resource] ?? 0, active.now[resource]);
        await new Promise((r) => setTimeout(r, ctx.node.id === opts.slow ? 400 : 100));
        active.now[resource]--;
        if (opts.fail === ctx.node.id) throw new Error('boom');
        if (opts.abortAfter && ctx.node.id === 'fetch:a') opts.abortAfter.abort();
        writeFileSync(join(ctx.outDir, 'out.txt'), ctx.node.id);
        return { meta: null };
      },
    };
  }
  const node = (id: string, kind: StageKind, deps: string[], resource: 'cpu' | 'gpu'): StageNode => ({ id, kind, target: id.split(':')[1], deps, resource });
  const graph = (): Plan => {
    const nodes = [
      node('fetch:a', 'fetch', [], 'cpu'),
      node('fetch:b', 'fetch', [], 'cpu'),
      node('train:a', 'train', ['fetch:a'], 'gpu'),
      node('train:b', 'train', ['fetch:b'], 'gpu'),
      node('render:a', 'render', ['train:a'], 'gpu'),
    ];
    return { stages: new Map(nodes.map((n) => [n.id, n])), order: nodes.map((n) => n.id), selected: [] };
  };
  const go = (registryFor: StageRegistry, extra: { keepGoing?: boolean; signal?: AbortSignal } = {}) =>
    execute({ config: config(), plan: graph(), registry: registryFor, cacheDir: join(dir, 'cache'), lockFile: join(dir, 'lorafile.lock'), mode: 'run', concurrency: { cpu: 2 }, ...extra });

  it('runs cpu stages side by side but never two gpu stages at once', async () => {
    const active = { now: {}, max: {} as Record<string, number> };
    const result = await go(async (kind) => sleeper(kind, active));
    expect([...result.reports.values()].every((r) => r.outcome === 'ran')).toBe(true);
    expect(active.max.cpu).toBe(2);
    expect(active.max.gpu).toBe(1);
  });

  it('a failure skips dependents; without --keep-going nothing new starts, with it independent branches finish', async () => {
    // fetch:b is slow, so train:b is due only after train:a has failed
    const halted = await go(async (kind) => sleeper(kind, { now: {}, max: {} }, { fail: 'train:a', slow: 'fetch:b' }));
    expect(halted.reports.get('train:a')).toMatchObject({ outcome: 'failed', reason: 'boom' });
    expect(halted.reports.get('render:a')).toMatchObject({ outcome: 'skipped', reason: 'train:a failed' });
    expect(halted.reports.get('train:b')).toMatchObject({ outcome: 'skipped', reason: 'not started: train:a failed (--keep-going builds the independent stages)' });
    rmSync(join(dir, 'cache'), { recursive: true, force: true });
    rmSync(join(dir, 'lorafile.lock'), { force: true });
    const kept = await go(async (kind) => sleeper(kind, { now: {}, max: {} }, { fail: 'train:a', slow: 'fetch:b' }), { keepGoing: true });
    expect(kept.reports.get('train:b')!.outcome).toBe('ran');
    expect(kept.reports.get('render:a')!.outcome).toBe('skipped');
  });

  it('an abort stops starting stages and locks only what completed', async () => {
    const controller = new AbortController();
    const result = await go(async (kind) => sleeper(kind, { now: {}, max: {} }, { abortAfter: controller }), { signal: controller.signal });
    expect(result.interrupted).toBe(true);
    expect(result.reports.get('fetch:a')!.outcome).toBe('failed');
    expect(result.reports.get('render:a')!.outcome).toBe('skipped');
    const lockText = readFileSync(join(dir, 'lorafile.lock'), 'utf8');
    expect(lockText).not.toContain('fetch:a');
    expect(lockText).not.toContain('render:a');
  });
});

describe('warm-up (mode warm, for lorabuild watch)', () => {
  /** size and mtime of every file under `root` but the store, the item memo, the stat memo and temp files */
  function recorded(root: string): Record<string, string> {
    const out: Record<string, string> = {};
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const abs = join(d, e.name);
        const rel = abs.slice(root.length + 1);
        if (/^cache\/(cas|items|tmp|statmemo)/.test(rel)) continue;
        if (e.isDirectory()) walk(abs);
        else out[rel] = `${statSync(abs).size} ${statSync(abs).mtimeMs}`;
      }
    };
    walk(root);
    return out;
  }
  const warmUp = (warm: string[], cfg = config()) => execute({ config: cfg, plan: plan(), registry, cacheDir: join(dir, 'cache'), lockFile: lockPathFor(cfg.file), mode: 'warm', warm: new Set(warm) });

  it('reruns the named stages though they are fresh, and records nothing', async () => {
    await build();
    const before = recorded(dir);
    expect(Object.keys(before)).toEqual(expect.arrayContaining(['lorafile.lock', 'out/loras/x/x.safetensors']));
    const warmed = await warmUp(['fetch:ds', 'prepare:ds']);
    expect([...warmed.reports.values()].map((r) => [r.stage, r.outcome])).toEqual([['fetch:ds', 'ran'], ['prepare:ds', 'ran'], ['train:x', 'fresh']]);
    expect(runs).toEqual({ fetch: 2, prepare: 2, train: 1 });
    expect(recorded(dir)).toEqual(before);
    const after = await build();
    expect([...after.result.reports.values()].map((r) => r.outcome)).toEqual(['fresh', 'fresh', 'fresh']);
  });

  it('only decides the stages it is not given: a stale one stays stale, and does not run', async () => {
    await build();
    const warmed = await warmUp(['fetch:ds'], config({ lr: 0.5 }));
    expect([...warmed.reports.values()].map((r) => r.outcome)).toEqual(['ran', 'fresh', 'stale']);
    expect(runs).toEqual({ fetch: 2, prepare: 1, train: 1 });
  });
});

describe('fresh clone', () => {
  it('adopts committed out/ files that match the lock instead of rebuilding when the cache is empty', async () => {
    await build();
    rmSync(join(dir, 'cache'), { recursive: true, force: true });
    const status = await build('status');
    // fetch and prepare keep no copy outside the cache: they must run again; train's copy is in out/
    expect(status.outcome('fetch:ds')).toBe('stale');
    const again = await build();
    expect(again.outcome('fetch:ds')).toBe('ran');
    expect(again.outcome('train:x')).toBe('cached');
    expect(again.reason('train:x')).toBe('the cache lacked it; adopted its outputs from out/ (they match lorafile.lock)');
    expect(runs.train).toBe(1);
    const third = await build();
    expect(third.outcome('train:x')).toBe('fresh');
  });
});
