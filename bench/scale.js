// npm run bench (scale): lorabuild on lab-layout datasets of growing size, through the real CLI.
// For each size: the cold build (fetch + prepare + validate) and prepare's items/s from the stage
// events; the no-op `run` (median wall of --runs, peak RSS by `/usr/bin/time -f %M`); a one-caption
// edit (wall, and the bytes that run wrote into the cache: files new or changed by (size, mtime));
// `status` and `plan` (median wall); `watch` save -> diagnostics p50/p95 (bench/watch-latency.js).
// Goals (issue 20): no-op <= 200 ms at 10k and <= 1 s at 100k, RSS <= 300 MB at 100k, watch p95
// <= 100 ms at 10k and <= 50 ms at 1k, prepare >= 1,000 items/s.
// Usage: node bench/scale.js [--sizes 1000,10000,100000] [--runs N] [--saves N] [--dir DIR]
//          [--json FILE] [--svg FILE]
//   --dir DIR keeps the generated datasets in DIR/n<size> and reuses them (the cache is always
//   rebuilt cold). A size that fails reports its error in its row; the other sizes still run.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labCaption, writeLabDataset } from './lab-dataset.js';
import { editedItem, watchLatency } from './watch-latency.js';
import { scaleSvg } from './scale-svg.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(repo, 'bin', 'lorabuild.js');
const TIME = '/usr/bin/time';

function option(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = process.argv[i + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`--${name} needs a value`);
  return value;
}
function positive(name, fallback) {
  const raw = option(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return n;
}

const sizes = (option('sizes') ?? '1000,10000,100000').split(',').map((s) => {
  const n = Number(s.trim());
  if (!Number.isInteger(n) || n < 1) throw new Error(`--sizes: ${JSON.stringify(s)} is not a dataset size`);
  return n;
});
const runs = positive('runs', 5);
const saves = positive('saves', 20);
const keepDir = option('dir') === undefined ? undefined : resolve(option('dir'));
const jsonOut = option('json');
const svgOut = option('svg');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const load1 = () => +loadavg()[0].toFixed(2);
const log = (line) => console.error(`bench scale: ${line}`);
const LORAFILE = 'version: 1\ndatasets:\n  bench:\n    folder: data\n    rules: { too_small: off }\n';
// captions and images get this mtime: files written seconds ago are "racy" for the stat memo
const OLD = new Date('2024-01-01T00:00:00Z');

// NODE_EXTRA_CA_CERTS makes every Node process parse that file and build its root certificate
// store before any script runs: ~55 ms of each start on the bench VM, whose environment sets it
// (a fresh Debian machine does not). Where it is set, the no-op runs are measured again without it.
const CLEAN_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_EXTRA_CA_CERTS'));
const extraCaCerts = process.env.NODE_EXTRA_CA_CERTS !== undefined;

/** median wall ms of `node -e 0`, the floor under every CLI run */
function nodeStartMs(env) {
  const ms = [];
  for (let i = 0; i < Math.max(runs, 9); i++) {
    const t0 = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0'], { env });
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return Math.round(median(ms));
}

/** one CLI run: wall ms (the whole child, from spawn to exit), stdout, and peak RSS (KB) under /usr/bin/time */
function lorabuild(project, args, { rss = false, timeoutMs = 10 * 60_000, cleanEnv = false } = {}) {
  const env = { ...(cleanEnv ? CLEAN_ENV : process.env), LORABUILD_CACHE: join(project, 'cache') };
  const rssFile = join(project, '.rss');
  const [cmd, argv] = rss ? [TIME, ['-o', rssFile, '-f', '%M', process.execPath, cli, ...args]] : [process.execPath, [cli, ...args]];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, argv, { cwd: project, env, encoding: 'utf8', maxBuffer: 1 << 30, timeout: timeoutMs });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) throw new Error(`lorabuild ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`lorabuild ${args.join(' ')} exited ${r.status ?? r.signal}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ').slice(0, 400)}`);
  let rssKb = null;
  if (rss) {
    rssKb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').at(-1));
    rmSync(rssFile, { force: true });
  }
  return { ms, stdout: r.stdout, rssKb };
}

function events(stdout) {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}
const summaryOf = (stdout) => events(stdout).find((e) => e.summary)?.summary;

/** path -> "size mtimeMs" of every file under dir */
function snapshot(dir) {
  const files = new Map();
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const st = lstatSync(p);
        files.set(p, { size: st.size, mtimeMs: st.mtimeMs });
      }
    }
  };
  if (existsSync(dir)) walk(dir);
  return files;
}

const JOURNAL = /^items\/[^/]+\/[0-9a-f]{2}\.log$/;

/**
 * what a run wrote into the cache: files that are new or whose size or mtime moved, whole; an item
 * journal (append-only, cache/item-journal.ts) by what it grew
 */
function written(before, after, root) {
  const changed = [];
  for (const [p, st] of after) {
    const old = before.get(p);
    if (old && old.size === st.size && old.mtimeMs === st.mtimeMs) continue;
    const path = relative(root, p);
    changed.push({ path, bytes: old && JOURNAL.test(path) && st.size > old.size ? st.size - old.size : st.size });
  }
  const removed = [...before.keys()].filter((p) => !after.has(p)).length;
  const bytes = changed.reduce((sum, f) => sum + f.bytes, 0);
  // the largest: where a one-item change still costs in proportion to the dataset
  const largest = changed.sort((a, b) => b.bytes - a.bytes).slice(0, 6);
  return { bytes, files: changed.length, removed, largest };
}

function restoreCaptions(project, items) {
  for (const i of items) {
    const file = join(project, 'data', 'text', `${i}.txt`);
    writeFileSync(file, labCaption(i));
    utimesSync(file, OLD, OLD);
  }
}

/** the captions this bench may edit at `size` (restored before and after, so a kept dataset stays as generated) */
const editableItems = (size) => [...new Set([Math.floor(size / 2), ...Array.from({ length: saves }, (_, i) => editedItem(i, size))])];

function prepareProject(project, size) {
  const marker = join(project, '.bench-scale.json');
  if (existsSync(marker) && JSON.parse(readFileSync(marker, 'utf8')).size === size) {
    restoreCaptions(project, editableItems(size));
    return { generated: false, generate_s: 0 };
  }
  rmSync(project, { recursive: true, force: true });
  log(`generating ${size} images + captions in ${project}`);
  const t0 = performance.now();
  writeLabDataset(join(project, 'data'), size);
  writeFileSync(join(project, 'lorafile.yaml'), LORAFILE);
  execFileSync('find', [join(project, 'data'), '-type', 'f', '-exec', 'touch', '-d', '2024-01-01', '{}', '+']);
  writeFileSync(marker, JSON.stringify({ size }));
  return { generated: true, generate_s: +((performance.now() - t0) / 1000).toFixed(1) };
}

async function measure(project, size, row) {
  Object.assign(row, prepareProject(project, size));
  row.load_before = load1();

  log(`${size}: cold build (fetch, prepare, validate)`);
  // a kept project starts cold too: no cache, no lock, no materialized outputs (lorabuild leaves
  // alone an out/ file it did not write, and a new cache did not write it)
  for (const path of ['cache', 'lorafile.lock', 'out']) rmSync(join(project, path), { recursive: true, force: true });
  const cold = lorabuild(project, ['run', 'bench', '--json'], { timeoutMs: 60 * 60_000 });
  row.cold_build_ms = Math.round(cold.ms);
  const stages = events(cold.stdout).filter((e) => e.stage && e.durationMs !== undefined && e.item === undefined && e.outcome === 'ran');
  row.cold_stage_ms = Object.fromEntries(stages.map((e) => [e.stage.split(':')[0], e.durationMs]));
  const prepare = stages.find((e) => e.stage === 'prepare:bench');
  if (!prepare) throw new Error('the cold build reported no prepare:bench stage that ran');
  row.prepare_items = prepare.items?.ran ?? 0;
  row.prepare_items_per_s = Math.round(row.prepare_items / (prepare.durationMs / 1000));

  lorabuild(project, ['run', 'bench', '--json']); // settles the stat memo for the outputs just written
  // the cold build leaves ~100s of MB of dirty pages: their writeback (kernel threads, the journal)
  // would otherwise run during the no-op runs and be measured as theirs
  execFileSync('sync');
  log(`${size}: no-op run x${runs}`);
  const noop = [];
  const rss = [];
  for (let i = 0; i < runs; i++) {
    const r = lorabuild(project, ['run', 'bench', '--json'], { rss: true });
    const summary = summaryOf(r.stdout);
    if (summary?.ran !== 0) throw new Error(`the no-op run ran ${summary?.ran} stages`);
    noop.push(r.ms);
    rss.push(r.rssKb);
    row.noop_files_hashed = summary.hashing?.filesHashed ?? null;
  }
  row.noop_runs_ms = noop.map((ms) => Math.round(ms));
  row.noop_ms = Math.round(median(noop));
  row.node_start_ms = nodeStartMs(process.env);
  if (extraCaCerts) {
    const clean = Array.from({ length: runs }, () => lorabuild(project, ['run', 'bench', '--json'], { cleanEnv: true }).ms);
    row.noop_no_extra_ca_ms = Math.round(median(clean));
    row.node_start_no_extra_ca_ms = nodeStartMs(CLEAN_ENV);
  }
  row.noop_rss_mb = Math.round(Math.max(...rss) / 1024);

  log(`${size}: status, plan x${runs}`);
  row.status_ms = Math.round(median(Array.from({ length: runs }, () => lorabuild(project, ['status']).ms)));
  row.plan_ms = Math.round(median(Array.from({ length: runs }, () => lorabuild(project, ['plan']).ms)));

  log(`${size}: one caption edited`);
  const item = Math.floor(size / 2);
  const before = snapshot(join(project, 'cache'));
  writeFileSync(join(project, 'data', 'text', `${item}.txt`), `one-line-art, shape ${item}, scale bench edit\n`);
  const edit = lorabuild(project, ['run', 'bench', '--json']);
  const after = snapshot(join(project, 'cache'));
  if (!(summaryOf(edit.stdout)?.ran > 0)) throw new Error('the run after a caption edit ran no stage');
  row.one_edit_ms = Math.round(edit.ms);
  const w = written(before, after, join(project, 'cache'));
  row.one_edit_cache_bytes = w.bytes;
  row.one_edit_cache_files = w.files;
  row.one_edit_cache_removed = w.removed;
  row.one_edit_cache_largest = w.largest;
  row.cache_files = after.size;

  log(`${size}: watch, ${saves} saves`);
  const watch = await watchLatency({ project, images: size, edits: saves, timeoutMs: 10 * 60_000, log });
  row.watch_saves = watch.edits;
  row.watch_first_build_ms = watch.first_build_ms;
  row.watch_warm_ms = watch.warm_ms;
  row.watch_first_save_ms = watch.first_save_ms;
  row.watch_p50_ms = watch.p50_ms;
  row.watch_p95_ms = watch.p95_ms;
  row.watch_max_ms = watch.max_ms;
  // every save, in order: which saves make the p95 (the first ones after the warm-up, or a GC)
  row.watch_latencies_ms = watch.latencies;
  row.load_after = load1();
}

const FIELDS = [
  'size', 'generated', 'generate_s', 'load_before', 'cold_build_ms', 'cold_stage_ms', 'prepare_items', 'prepare_items_per_s',
  'noop_ms', 'noop_runs_ms', 'node_start_ms', 'noop_no_extra_ca_ms', 'node_start_no_extra_ca_ms', 'noop_rss_mb', 'noop_files_hashed', 'status_ms', 'plan_ms', 'one_edit_ms', 'one_edit_cache_bytes',
  'one_edit_cache_files', 'one_edit_cache_removed', 'one_edit_cache_largest', 'cache_files', 'watch_saves', 'watch_first_build_ms', 'watch_warm_ms', 'watch_first_save_ms', 'watch_p50_ms',
  'watch_p95_ms', 'watch_max_ms', 'watch_latencies_ms', 'load_after', 'error',
];

const work = keepDir ?? mkdtempSync(join(tmpdir(), 'lorabuild-bench-scale-'));
mkdirSync(work, { recursive: true });
const rows = [];
try {
  for (const size of sizes) {
    const row = Object.fromEntries(FIELDS.map((f) => [f, null]));
    row.size = size;
    try {
      await measure(join(work, `n${size}`), size, row);
    } catch (err) {
      row.error = (err instanceof Error ? err.message : String(err)).split('\n')[0];
      log(`${size}: failed: ${row.error}`);
    } finally {
      if (keepDir) {
        try {
          restoreCaptions(join(work, `n${size}`), editableItems(size));
        } catch {
          // a size that failed before its dataset was written has nothing to restore
        }
      }
    }
    rows.push(row);
  }
} finally {
  if (!keepDir) rmSync(work, { recursive: true, force: true });
}

const cell = (v, unit = '') => (v === null || v === undefined ? '-' : `${typeof v === 'number' ? v.toLocaleString('en-US') : v}${unit}`);
const table = [
  '| images | cold build | prepare | no-op run (median) | node -e 0 | no-op peak RSS | one-edit run | one-edit cache writes | status | plan | watch p50 / p95 | watch warm-up, first save | load | error |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ...rows.map((r) =>
    [
      '',
      cell(r.size),
      r.cold_build_ms === null ? '-' : `${(r.cold_build_ms / 1000).toFixed(1)} s`,
      cell(r.prepare_items_per_s, ' items/s'),
      r.noop_no_extra_ca_ms == null ? cell(r.noop_ms, ' ms') : `${cell(r.noop_ms, ' ms')} (${cell(r.noop_no_extra_ca_ms, ' ms')} without NODE_EXTRA_CA_CERTS)`,
      r.node_start_no_extra_ca_ms == null ? cell(r.node_start_ms, ' ms') : `${cell(r.node_start_ms, ' ms')} (${cell(r.node_start_no_extra_ca_ms, ' ms')})`,
      cell(r.noop_rss_mb, ' MB'),
      cell(r.one_edit_ms, ' ms'),
      r.one_edit_cache_bytes === null ? '-' : `${r.one_edit_cache_bytes.toLocaleString('en-US')} B in ${r.one_edit_cache_files} files`,
      cell(r.status_ms, ' ms'),
      cell(r.plan_ms, ' ms'),
      r.watch_p95_ms === null ? '-' : `${r.watch_p50_ms} / ${r.watch_p95_ms} ms`,
      r.watch_warm_ms === null ? '-' : `${r.watch_warm_ms} ms, ${r.watch_first_save_ms} ms`,
      `${cell(r.load_before)} -> ${cell(r.load_after)}`,
      r.error ? r.error.replace(/\|/g, '\\|').slice(0, 160) : '',
      '',
    ].join(' | ').trim(),
  ),
];
console.log(table.join('\n'));
console.log(`\nno-op: median of ${runs}, wall of the whole child process; RSS: ${TIME} -f %M, the most over those runs. Goals: no-op <= 200 ms @10k, <= 1 s @100k; RSS <= 300 MB @100k; watch p95 <= 100 ms @10k, <= 50 ms @1k; prepare >= 1,000 items/s.`);

const report = {
  bench: 'scale',
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
  runs,
  saves,
  rss_method: `${TIME} -f %M (peak RSS of the lorabuild process, the most over the no-op runs)`,
  wall_method: 'spawn to exit of the lorabuild child, as seen by the bench process',
  node_start_method: 'median wall of `node -e 0` spawned the same way; *_no_extra_ca_*: the same with NODE_EXTRA_CA_CERTS removed from the environment (measured only where it is set)',
  node_extra_ca_certs_set: extraCaCerts,
  cache_bytes_method: 'files under the cache folder new or changed (size or mtime) across the one-edit run',
  goals: { noop_ms: { 10000: 200, 100000: 1000 }, noop_rss_mb: { 100000: 300 }, watch_p95_ms: { 1000: 50, 10000: 100 }, prepare_items_per_s: 1000 },
  sizes: rows,
};
if (jsonOut) writeFileSync(jsonOut, `${JSON.stringify(report, null, 2)}\n`);
if (svgOut) writeFileSync(svgOut, scaleSvg(rows, { title: `lorabuild at scale (${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, node ${process.version})` }));
// a failed size is in its row and in the JSON; the exit status stays 0 so that `npm run bench` goes on
