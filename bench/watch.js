// npm run bench (part 3): `lorabuild watch` write-to-diagnostics latency.
// A 1,000-item lab-layout dataset, `lorabuild watch --through validate --json`; then 100 caption
// edits, one at a time, alternating a broken caption (empty) and a fixed one. Latency = from just
// before the write to the arrival of the dataset's new `diagnostics` line on the watch's stdout
// (chokidar event + debounce + fetch/prepare/validate of one changed item + the pipe).
// Goal: p95 <= 100 ms (10,000 items), <= 50 ms (1,000). Also the watch process's RSS after the first
// build and after the edits (Linux: /proc/PID/status).
// Usage: node bench/watch.js [--images N | --items N] [--edits N] [--debounce MS] [--cpu-prof DIR]
//   --cpu-prof DIR: the watch process writes a V8 CPU profile into DIR when it stops
//   WATCH_NODE_ARGS='--max-old-space-size=200': extra node flags for the watch process (is RSS growth retained memory?)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeLabDataset } from './lab-dataset.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(repo, 'bin', 'lorabuild.js');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const images = arg('items', arg('images', 1000));
const edits = arg('edits', 100);
const debounce = arg('debounce', NaN);
const profIndex = process.argv.indexOf('--cpu-prof');
const profDir = profIndex > 0 ? resolve(process.argv[profIndex + 1]) : undefined;

const work = mkdtempSync(join(tmpdir(), 'lorabuild-bench-watch-'));
/** resident memory of a process in MB (Linux), or null elsewhere */
const rssMb = (pid) => {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return kb ? Math.round(Number(kb[1]) / 1024) : null;
  } catch {
    return null;
  }
};
/** CPU time (user + system) a process has used, in ms (Linux; assumes 100 clock ticks a second), or null */
const cpuMs = (pid) => {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return null;
  }
};
const percentile = (xs, p) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

let child;
let closed = false;
try {
  const project = join(work, 'p');
  console.error(`bench watch: generating ${images} images + captions`);
  writeLabDataset(join(project, 'data'), images);
  writeFileSync(join(project, 'lorafile.yaml'), 'version: 1\ndatasets:\n  bench:\n    folder: data\n    rules: { too_small: off }\n');
  execFileSync('find', [join(project, 'data'), '-type', 'f', '-exec', 'touch', '-d', '2024-01-01', '{}', '+']);

  const nodeArgs = (process.env.WATCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const args = [...nodeArgs, ...(profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []), cli, 'watch', '--through', 'validate', '--json', ...(Number.isFinite(debounce) ? ['--debounce', String(debounce)] : [])];
  child = spawn(process.execPath, args, { cwd: project, env: { ...process.env, LORABUILD_CACHE: join(project, 'cache') }, stdio: ['ignore', 'pipe', 'inherit'] });
  const waiters = [];
  // the last events, printed when an edit is answered wrongly
  const recent = [];
  const startedAt = performance.now();
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (chunk) => {
    const now = performance.now();
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop();
    for (const line of lines) {
      if (!line.startsWith('{"watch"')) continue;
      const event = JSON.parse(line);
      recent.push(`${(now - startedAt).toFixed(1)} ${line.slice(0, 200)}`);
      if (recent.length > 40) recent.shift();
      for (const w of [...waiters]) {
        if (w.match(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve({ event, at: now });
        }
      }
    }
  });
  let exited = null;
  child.on('close', (code) => {
    closed = true;
    exited = new Error(`lorabuild watch exited (code ${code}) while the bench was waiting for it`);
    for (const w of waiters.splice(0)) w.reject(exited);
  });
  const next = (match) =>
    new Promise((resolvePromise, reject) => (exited ? reject(exited) : waiters.push({ match, resolve: resolvePromise, reject })));

  console.error('bench watch: first build (every item)');
  const t0 = performance.now();
  await next((e) => e.watch === 'idle' && e.build === 1);
  const coldMs = performance.now() - t0;
  const rssCold = rssMb(child.pid);
  const cpuCold = cpuMs(child.pid);

  const latencies = [];
  const builds = [];
  for (let i = 0; i < edits; i++) {
    // edit 2k breaks an item's caption, edit 2k+1 fixes it again
    const item = (Math.floor(i / 2) * 37) % images;
    const broken = i % 2 === 0;
    // diagnostics marked stale come from a build that started before this write
    // the answer is the diagnostics of the build that took this save in (its `changes` name the
    // file): a build that started before the save was seen may end after it, with older diagnostics
    const rel = `data/text/${item}.txt`;
    let covered = false;
    let answered = false;
    const covering = next((e) => (covered ||= e.watch === 'build' && e.changes.includes(rel)));
    const diagnostics = next((e) => covered && (answered ||= e.watch === 'diagnostics' && !e.stale));
    const idle = next((e) => e.watch === 'idle' && answered);
    const start = performance.now();
    const writeWall = Date.now() % 100000;
    writeFileSync(join(project, 'data', 'text', `${item}.txt`), broken ? '  \n' : `one-line-art, shape ${item}, edited ${i}\n`);
    const got = await diagnostics;
    await covering;
    latencies.push(got.at - start);
    const expectErrors = broken ? 1 : 0;
    if (got.event.errors !== expectErrors) {
      console.error(`the write was at wall ${writeWall} ~ ${(start - startedAt).toFixed(1)}; the last events:\n${recent.slice(-14).join('\n')}`);
      throw new Error(`edit ${i}: expected ${expectErrors} errors, watch reported ${got.event.errors}`);
    }
    builds.push((await idle).event.durationMs);
  }
  const row = {
    images,
    edits,
    cold_build_ms: Math.round(coldMs),
    p50_ms: +percentile(latencies, 50).toFixed(1),
    p95_ms: +percentile(latencies, 95).toFixed(1),
    max_ms: +Math.max(...latencies).toFixed(1),
    build_p50_ms: percentile(builds, 50),
    // CPU the watch process spent per edit: unlike latency, not inflated by other load on the machine
    cpu_per_edit_ms: cpuCold === null ? null : Math.round((cpuMs(child.pid) - cpuCold) / edits),
    rss_after_first_build_mb: rssCold,
    rss_after_edits_mb: rssMb(child.pid),
  };
  console.log(JSON.stringify({ bench: 'watch write-to-diagnostics', ...row, goal_p95_ms: images <= 1000 ? 50 : 100 }));
  console.log(`| ${images} items | ${edits} edits | p50 ${row.p50_ms} ms | p95 ${row.p95_ms} ms | max ${row.max_ms} ms | build p50 ${row.build_p50_ms} ms | CPU/edit ${row.cpu_per_edit_ms} ms | RSS ${rssCold} -> ${row.rss_after_edits_mb} MB |`);
} finally {
  if (child && !closed) {
    child.kill('SIGINT');
    await new Promise((r) => child.on('close', r));
  }
  rmSync(work, { recursive: true, force: true });
}
