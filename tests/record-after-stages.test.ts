// What a stage leaves for later builds (its action entry, log and last-run record) is written right
// after its final event (src/engine/executor.ts recordStages): that event, which `lorabuild watch`
// turns into a save's diagnostics, does not wait for those writes, and a later stage of the build
// finds the earlier ones recorded. All are there when the build returns, the next build finds
// everything fresh, and a write that fails is reported without stopping the others.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { execute, recordStages, type StageRegistry } from '../src/engine/executor.js';
import { CacheLayout } from '../src/cache/layout.js';
import type { Config } from '../src/config/schema.js';
import type { Plan, StageEvent, StageImpl, StageNode } from '../src/engine/types.js';
import { makeTempDir, writeFiles } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-record-after-');
afterAll(tmp.cleanup);

const config = (dir: string) => ({ version: 1, out: 'out', models: {}, datasets: {}, loras: {}, renders: {}, file: join(dir, 'lorafile.yaml'), root: dir, source: '' }) as unknown as Config;

const fetchStage: StageImpl = {
  kind: 'fetch',
  version: 1,
  materializeTo: () => null,
  async inputs(ctx) {
    return { params: {}, files: { 'ds/a.txt': await ctx.hashFile(join(ctx.root, 'ds', 'a.txt')) } };
  },
  async run(ctx, inputs) {
    ctx.log('listed one file');
    writeFileSync(join(ctx.outDir, 'listing.json'), JSON.stringify(inputs.files));
    return { meta: null };
  },
};
const prepareStage: StageImpl = {
  kind: 'prepare',
  version: 1,
  materializeTo: () => null,
  async inputs() {
    return { params: {}, files: {} };
  },
  async run(ctx) {
    writeFileSync(join(ctx.outDir, 'manifest.json'), readFileSync(ctx.upstreamPath('fetch:ds', 'listing.json')));
    return { meta: null };
  },
};
const registry: StageRegistry = async (kind) => ({ fetch: fetchStage, prepare: prepareStage })[kind as 'fetch'];
const nodes: StageNode[] = [
  { id: 'fetch:ds', kind: 'fetch', target: 'ds', deps: [], resource: 'cpu' },
  { id: 'prepare:ds', kind: 'prepare', target: 'ds', deps: ['fetch:ds'], resource: 'cpu' },
];
const plan: Plan = { stages: new Map(nodes.map((n) => [n.id, n])), order: nodes.map((n) => n.id), selected: [] };

/** action entry files under the cache */
const entries = (cache: string) => {
  const dir = join(cache, 'actions');
  return existsSync(dir) ? readdirSync(dir).flatMap((shard) => readdirSync(join(dir, shard))) : [];
};

describe('stage records', () => {
  it("are written right after each stage's final event, and are all there when the build returns", async () => {
    const dir = join(tmp.dir, 'p');
    writeFiles(dir, { 'ds/a.txt': 'a caption' });
    const cache = join(dir, 'cache');
    const layout = new CacheLayout(cache);
    const seenAtFinal: Record<string, { entries: number; lastRun: boolean }> = {};
    const onEvent = (e: StageEvent) => {
      if (e.outcome === 'ran' && e.item === undefined) seenAtFinal[e.stage] = { entries: entries(cache).length, lastRun: existsSync(layout.lastRun(e.stage)) };
    };
    const first = await execute({ config: config(dir), plan, registry, cacheDir: cache, lockFile: join(dir, 'lorafile.lock'), mode: 'run', onEvent });
    expect([...first.reports.values()].map((r) => r.outcome)).toEqual(['ran', 'ran']);
    expect(seenAtFinal).toEqual({ 'fetch:ds': { entries: 0, lastRun: false }, 'prepare:ds': { entries: 1, lastRun: false } });
    expect(entries(cache)).toHaveLength(2);
    const fetchFp = first.reports.get('fetch:ds')!.fingerprint!;
    expect(readFileSync(layout.log(fetchFp), 'utf8')).toContain('listed one file');
    expect(JSON.parse(readFileSync(layout.lastRun('prepare:ds'), 'utf8'))).toMatchObject({ stage: 'prepare:ds', outcome: 'ran' });
    expect(first.lockProblem).toBeUndefined();
    const again = await execute({ config: config(dir), plan, registry, cacheDir: cache, lockFile: join(dir, 'lorafile.lock'), mode: 'run' });
    expect([...again.reports.values()].map((r) => r.outcome)).toEqual(['fresh', 'fresh']);
  });

  it('a write that fails is reported once, and the others are still made', () => {
    const done: number[] = [];
    const problem = recordStages([
      () => done.push(1),
      () => {
        throw new Error('ENOSPC: no space left on device');
      },
      () => done.push(3),
      () => {
        throw new Error('a second failure');
      },
    ]);
    expect(done).toEqual([1, 3]);
    expect(problem).toBe("could not record a stage's result in the cache (ENOSPC: no space left on device); it will run again next time");
    expect(recordStages([() => done.push(5)])).toBeUndefined();
  });
});
