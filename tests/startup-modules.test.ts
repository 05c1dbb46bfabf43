// Start-up cost: what a no-op `lorabuild run`, `status` and `plan` load. Every module costs
// start-up time (resolve, read, compile, link; node:http and node:https several ms), so code that
// only a stale stage, a remote cache, a worker or an error needs is imported where it is used.
// A preload records every module the CLI process loads (ESM resolves and CommonJS requires). Both
// entries: dist/'s ES modules (each module seen), and the bundle bin/lorabuild.js runs, which holds
// lorabuild's own modules but must still require npm packages and node: modules only where used.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeLabDataset } from '../bench/lab-dataset.js';
import { makeTempDir, runCli, type CliResult } from './helpers/cli.js';

// runs in the loader-hooks thread: one line per resolved module URL
const HOOK = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(process.env.LORABUILD_TEST_MODULE_LOG, result.url + '\\n');
  return result;
}
`;
const PRELOAD = `const { register, Module } = require('node:module');
const { appendFileSync } = require('node:fs');
const { pathToFileURL } = require('node:url');
register(pathToFileURL(__dirname + '/hook.mjs'));
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const loaded = load.apply(this, arguments);
  let id = request;
  if (Module.isBuiltin(request)) id = 'node:' + request.replace(/^node:/, '');
  else try { id = pathToFileURL(Module._resolveFilename(request, parent, isMain)).href; } catch {}
  appendFileSync(process.env.LORABUILD_TEST_MODULE_LOG, id + '\\n');
  return loaded;
};
`;

/** what the process loaded, as paths relative to the repository (dist/…, node_modules/…) or node:… */
function loadedBy(log: string): Set<string> {
  const mods = new Set<string>();
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (!line) continue;
    const inRepo = /\/(dist\/.*|node_modules\/.*)$/.exec(line);
    mods.add(inRepo ? inRepo[1].replace(/^node_modules\/.*node_modules\//, 'node_modules/') : line);
  }
  return mods;
}

/** modules of `mods` under any of the prefixes */
const matching = (mods: Set<string>, prefixes: string[]) => [...mods].filter((m) => prefixes.some((p) => m === p || m.startsWith(p))).sort();

// what a run whose stages are all fresh never uses
const NOT_ON_A_NO_OP = [
  'node:http',
  'node:https',
  'node:child_process',
  'node:readline',
  'node_modules/yaml/',
  'node_modules/zod/',
  // a CommonJS event emitter under it: ~7 ms of loading (engine/limiter.ts)
  'node_modules/p-queue/',
  'node_modules/eventemitter3/',
  'dist/cache/remote/http.js',
  'dist/worker/client.js',
  'dist/worker/start.js',
  'dist/report/',
  'dist/text/validation-report.js',
  'dist/text/validation-markdown.js',
  'dist/text/check-item.js',
  'dist/text/rules/',
  'dist/safetensors/',
  'dist/stages/toy-model.js',
  'dist/stages/train.js',
  'dist/engine/lock-yaml.js',
];

const ENTRIES = [
  { entry: 'the ES modules of dist/', env: { LORABUILD_NO_BUNDLE: '1' }, esm: true },
  { entry: 'the bundle (dist/lorabuild.cjs)', env: {}, esm: false },
];

describe.each(ENTRIES)('modules loaded at start-up, from $entry', ({ env, esm }) => {
  let dir: string;
  let cleanup: () => void;
  let count = 0;

  beforeEach(() => {
    ({ dir, cleanup } = makeTempDir());
    writeFileSync(join(dir, 'hook.mjs'), HOOK);
    writeFileSync(join(dir, 'preload.cjs'), PRELOAD);
    writeLabDataset(join(dir, 'data'), 12);
    writeFileSync(join(dir, 'lorafile.yaml'), 'version: 1\ndatasets:\n  bench:\n    folder: data\n    rules: { too_small: off }\n');
  });
  afterEach(() => cleanup());

  async function traced(args: string[]): Promise<{ result: CliResult; mods: Set<string> }> {
    const log = join(dir, `modules-${count++}.log`);
    writeFileSync(log, '');
    const result = await runCli(args, { cwd: dir, env: { ...env, NODE_OPTIONS: `--require ${join(dir, 'preload.cjs')}`, LORABUILD_TEST_MODULE_LOG: log, LORABUILD_DEBUG_ENTRY: '1' } });
    expect(result.stderr).toContain(esm ? 'lorabuild: entry dist/cli/main.js' : 'lorabuild: entry bundle');
    return { result, mods: loadedBy(log) };
  }

  it('a no-op run and status load none of the code only stale stages, remotes, workers or reports need', async () => {
    // the first run builds: the trace sees the lazily imported rules, report writer and yaml
    const first = await traced(['run', '--json']);
    expect(first.result.code, first.result.stderr).toBe(0);
    expect(first.result.events.find((e) => e.summary)?.summary).toMatchObject({ ran: 4, fresh: 0 });
    const usedFirst = ['node_modules/yaml/', 'node_modules/zod/', ...(esm ? ['dist/text/validation-report.js', 'dist/text/rules/dataset.js', 'dist/report/html.js'] : [])];
    for (const used of usedFirst) {
      expect(matching(first.mods, [used]), used).not.toEqual([]);
    }

    const noop = await traced(['run', '--json']);
    expect(noop.result.code, noop.result.stderr).toBe(0);
    expect(noop.result.events.find((e) => e.summary)?.summary).toMatchObject({ ran: 0, fresh: 4 });
    if (esm) expect(noop.mods).toContain('dist/stages/validate.js');
    expect(matching(noop.mods, NOT_ON_A_NO_OP)).toEqual([]);

    const status = await traced(['status']);
    expect(status.result.code, status.result.stderr).toBe(0);
    expect(status.result.stdout).toMatch(/validate:bench\s+fresh/);
    if (esm) expect(status.mods).toContain('dist/stages/report.js');
    expect(matching(status.mods, [...NOT_ON_A_NO_OP, 'dist/cache/remote/', 'dist/cache/writer-lock.js', 'dist/engine/preflight.js'])).toEqual([]);
  });

  it('plan loads neither the engine nor the lock code, with the lorafile memoised by the other entry', async () => {
    // the memo is keyed by the config code: both entries hash dist/config, so either one's memo serves
    const other = ENTRIES.find((e) => e.esm !== esm)!.env;
    expect((await runCli(['plan'], { cwd: dir, env: other })).code).toBe(0); // parses the lorafile and memoises it
    const plan = await traced(['plan']);
    expect(plan.result.code, plan.result.stderr).toBe(0);
    expect(plan.result.stdout).toContain('validate:bench');
    if (esm) expect(plan.mods).toContain('dist/graph/plan.js');
    expect(matching(plan.mods, [...NOT_ON_A_NO_OP, 'dist/engine/executor.js', 'dist/engine/lockfile.js', 'dist/stages/', 'dist/cache/cas.js'])).toEqual([]);
  });
});
