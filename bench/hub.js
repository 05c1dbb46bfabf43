#!/usr/bin/env node
// node bench/hub.js — hub dataset throughput over loopback: a generated pokemon-schema parquet
// (image struct + en_text + zh_text, snappy) served by the test hub on 127.0.0.1, built with
// `lorabuild run` into an empty HF cache and an empty lorabuild cache.
// Reports fetch and prepare throughput (rows/s, MB/s), a no-op rerun, and the run's peak RSS.
// Rows are pokemon-sized: 512 px JPEGs of about 15 kB (--png PX: seeded-noise PNGs of PX pixels instead).
// Options: --rows N (default 2000), --png PX, --json,
//          --module-only (skip `lorabuild run`: for big row counts that only test streaming memory)
// Needs `npx tsc -p tsconfig.json` first (runs dist/ through bin/lorabuild.js).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import ts from 'typescript';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { rows: { type: 'string' }, png: { type: 'string' }, json: { type: 'boolean' }, 'module-only': { type: 'boolean' } } });
const rows = Number(values.rows ?? 2000);
const png = values.png === undefined ? undefined : Number(values.png);

const helperDir = join(repoRoot, '.lorabuild-tmp', 'bench-hub');

// Peak RSS of a child process. Linux carries getrusage's maxRSS across fork+exec (a child would
// report this bench's own size), so read VmHWM, which starts afresh with the new program.
const PEAK_RSS = `import { readFileSync } from 'node:fs';
export function peakRssKb() {
  try { return Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]); }
  catch { return process.resourceUsage().maxRSS; }
}
`;
const PEAK_RSS_HOOK = `import { peakRssKb } from './peak-rss.js';
process.on('exit', () => {
  const cpu = process.cpuUsage();
  process.stderr.write('\\n@@rss ' + peakRssKb() + '\\n@@cpu ' + (cpu.user + cpu.system) / 1000 + '\\n');
});
`;

/** The test helpers are TypeScript: transpile them next to the repo so their imports resolve. */
async function loadHelpers() {
  const out = helperDir;
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'peak-rss.js'), PEAK_RSS);
  writeFileSync(join(out, 'peak-rss-hook.js'), PEAK_RSS_HOOK);
  for (const name of ['hub-server', 'parquet-fixtures']) {
    const source = readFileSync(join(repoRoot, 'tests', 'helpers', `${name}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
    writeFileSync(join(out, `${name}.js`), outputText);
  }
  const server = await import(pathToFileURL(join(out, 'hub-server.js')).href);
  const fixtures = await import(pathToFileURL(join(out, 'parquet-fixtures.js')).href);
  return { ...server, ...fixtures };
}

/** Runs the CLI; returns its --json stage events and its peak RSS (reported from its exit hook). */
function lorabuild(args, env) {
  const hook = pathToFileURL(join(helperDir, 'peak-rss-hook.js')).href;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', hook, join(repoRoot, 'bin', 'lorabuild.js'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => {
      const rss = Number(/@@rss (\d+)/.exec(stderr)?.[1] ?? NaN) * 1024;
      // CPU of the whole process, every thread (the image pool's too): user + system, ms
      const cpuMs = Number(/@@cpu ([\d.]+)/.exec(stderr)?.[1] ?? NaN);
      if (code !== 0) return reject(new Error(`lorabuild ${args.join(' ')} exited ${code}\n${stderr}\n${stdout}`));
      const events = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      resolve({ events, rss, cpuMs });
    });
  });
}

/** The hub module alone, in this process: download + verify into a fresh HF cache, then read every row. */
async function moduleThroughput(env, rowsTotal) {
  const { hubFetchInputs, hubFetchRun } = await import(pathToFileURL(join(repoRoot, 'dist', 'datasets', 'hub', 'fetch.js')).href);
  const { readHubItems } = await import(pathToFileURL(join(repoRoot, 'dist', 'datasets', 'hub', 'items.js')).href);
  const { sha256File } = await import(pathToFileURL(join(repoRoot, 'dist', 'datasets', 'hub', 'hashing.js')).href);
  const { DatasetSchema } = await import(pathToFileURL(join(repoRoot, 'dist', 'config', 'schema.js')).href);
  Object.assign(process.env, env);
  const spec = DatasetSchema.parse({ hub: 'bench/pokemon', caption_column: 'en_text' });
  const ctx = { signal: new AbortController().signal, options: {}, previous: undefined, hashFile: sha256File, progress() {}, log() {} };
  const inputs = await hubFetchInputs(ctx, 'pokemon', spec);
  let start = performance.now();
  const listing = await hubFetchRun(ctx, 'pokemon', spec, inputs);
  writeFileSync(join(env.HF_HOME, 'listing.json'), JSON.stringify(listing));
  const fetchMs = performance.now() - start;
  start = performance.now();
  let count = 0;
  let bytes = 0;
  for await (const item of readHubItems(listing, spec, ctx.signal)) {
    count++;
    bytes += item.image?.length ?? 0;
  }
  const readMs = performance.now() - start;
  if (count !== rowsTotal) throw new Error(`read ${count} rows, expected ${rowsTotal}`);
  return { fetchMs, readMs, imageBytes: bytes };
}

/** Reads every row in a fresh process: its peak RSS shows that rows stream by row group. */
function streamingRss(listingFile) {
  const items = pathToFileURL(join(repoRoot, 'dist', 'datasets', 'hub', 'items.js')).href;
  const script = `
    import { readFileSync } from 'node:fs';
    const { readHubItems } = await import(${JSON.stringify(items)});
    const listing = JSON.parse(readFileSync(${JSON.stringify(listingFile)}, 'utf8'));
    let rows = 0;
    for await (const item of readHubItems(listing, { image_column: 'image', caption_column: 'en_text', caption_choice: 'first', caption_seed: 0 }, new AbortController().signal)) rows++;
    const { peakRssKb } = await import(${JSON.stringify(pathToFileURL(join(helperDir, 'peak-rss.js')).href)});
    process.stdout.write(JSON.stringify({ rows, rss: peakRssKb() * 1024 }));`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`streaming reader exited ${code}`))));
  });
}

function stageTime(events, id) {
  const done = events.filter((e) => e.stage === id && e.outcome === 'ran' && typeof e.durationMs === 'number');
  return done.length ? done[done.length - 1].durationMs : NaN;
}

const helpers = await loadHelpers();
const work = mkdtempSync(join(tmpdir(), 'lorabuild-bench-hub-'));
const hub = await helpers.HubServer.start();
try {
  const generateStart = performance.now();
  const images = [];
  for (let i = 0; i < rows; i++) images.push(png === undefined ? await helpers.pokemonJpeg(i) : await helpers.pngBytes(i, png));
  const parquet = helpers.pokemonParquet(
    images.map((image, i) => ({ image, path: `${i}.png`, en: `a drawing of pokemon number ${i}`, zh: `宝可梦 ${i}` })),
    { rowGroupSize: 100 },
  );
  const generateMs = performance.now() - generateStart;
  hub.addRepo('bench/pokemon', [{ path: 'data/train-00000-of-00001.parquet', content: parquet }]);

  writeFileSync(
    join(work, 'lorafile.yaml'),
    ['version: 1', 'datasets:', '  pokemon:', '    hub: bench/pokemon', '    caption_column: en_text', ''].join('\n'),
  );
  const env = { ...process.env, HF_HOME: join(work, 'hf'), HF_ENDPOINT: hub.url, LORABUILD_CACHE: join(work, 'cache') };
  delete env.HF_HUB_OFFLINE;
  delete env.HF_HUB_CACHE;
  delete env.HF_TOKEN;

  const mb = parquet.length / 1e6;
  const perSecond = (ms) => ({ s: +(ms / 1000).toFixed(3), rows_per_s: Math.round(rows / (ms / 1000)), mb_per_s: +(mb / (ms / 1000)).toFixed(1) });
  const imageKb = images.reduce((sum, b) => sum + b.length, 0) / images.length / 1000;
  const kind = png === undefined ? `512 px JPEGs of ${imageKb.toFixed(1)} kB` : `${png} px noise PNGs of ${imageKb.toFixed(1)} kB`;
  const result = { rows, images: kind, parquet_mb: +mb.toFixed(2), generate_s: +(generateMs / 1000).toFixed(2) };
  const lines = [`hub dataset: ${rows} rows, ${kind}, ${result.parquet_mb} MB parquet over loopback (generated in ${result.generate_s}s)`];

  if (!values['module-only']) {
    const args = ['run', 'prepare:pokemon', '-f', join(work, 'lorafile.yaml'), '--json'];
    const first = await lorabuild(args, env);
    const contentRequests = hub.contentRequests().length;
    hub.clearLog();
    const noopStart = performance.now();
    const second = await lorabuild(args, env);
    const noopMs = performance.now() - noopStart;
    const noopRequests = hub.contentRequests().length;
    Object.assign(result, {
      fetch: perSecond(stageTime(first.events, 'fetch:pokemon')),
      prepare: perSecond(stageTime(first.events, 'prepare:pokemon')),
      first_run_peak_rss_mb: Math.round(first.rss / 1e6),
      first_run_cpu_s: +(first.cpuMs / 1000).toFixed(2),
      load_average: +loadavg()[0].toFixed(1),
      content_requests_first_run: contentRequests,
      noop_rerun: { s: +(noopMs / 1000).toFixed(2), content_requests: noopRequests, peak_rss_mb: Math.round(second.rss / 1e6) },
    });
    lines.push(
      'lorabuild run prepare:pokemon (engine stage times):',
      `  fetch   ${result.fetch.s}s  ${result.fetch.rows_per_s} rows/s  ${result.fetch.mb_per_s} MB/s  (${contentRequests} content request(s))`,
      `  prepare ${result.prepare.s}s  ${result.prepare.rows_per_s} rows/s  ${result.prepare.mb_per_s} MB/s`,
      `  peak RSS of the run: ${result.first_run_peak_rss_mb} MB; CPU of the run (every thread): ${result.first_run_cpu_s} s, ${((first.cpuMs / rows)).toFixed(2)} ms per row`,
      `  load average while it ran: ${result.load_average} (on ${availableParallelism()} cores: above that, the rates measure the neighbours too)`,
      `  no-op rerun: ${result.noop_rerun.s}s, ${noopRequests} content requests, peak RSS ${result.noop_rerun.peak_rss_mb} MB`,
    );
  }

  const module = await moduleThroughput({ ...env, HF_HOME: join(work, 'hf-module') }, rows);
  const streamed = await streamingRss(join(work, 'hf-module', 'listing.json'));
  Object.assign(result, {
    hub_module: { download_verify: perSecond(module.fetchMs), read_rows: perSecond(module.readMs) },
    read_all_rows_peak_rss_mb: Math.round(streamed.rss / 1e6),
  });
  lines.push(
    'hub module alone (in-process):',
    `  download + verify ${result.hub_module.download_verify.s}s  ${result.hub_module.download_verify.mb_per_s} MB/s`,
    `  read rows (parquet decode) ${result.hub_module.read_rows.s}s  ${result.hub_module.read_rows.rows_per_s} rows/s  ${result.hub_module.read_rows.mb_per_s} MB/s`,
    `  peak RSS of a process reading all ${streamed.rows} rows: ${result.read_all_rows_peak_rss_mb} MB (parquet ${result.parquet_mb} MB)`,
  );
  process.stdout.write(values.json ? `${JSON.stringify(result)}\n` : `${lines.join('\n')}\n`);
} finally {
  await hub.stop();
  rmSync(work, { recursive: true, force: true });
}
