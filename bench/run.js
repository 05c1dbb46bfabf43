// npm run bench: the engine's numbers.
//  1. no-op `lorabuild run` on a generated 10,000-image lab-layout dataset (goal <= 200 ms wall)
//  2. cold hashing throughput (empty stat memo) in MB/s against `sha256sum` on the same files
// Usage: node bench/run.js [--images N] [--runs N] [--big-mb N] [--dir DIR]
//   --dir DIR keeps the generated project in DIR and reuses it next time (skips the cold run)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomFillSync } from 'node:crypto';
import { writeLabDataset } from './lab-dataset.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(repo, 'bin', 'lorabuild.js');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const keepDirIndex = process.argv.indexOf('--dir');
const keepDir = keepDirIndex > 0 ? resolve(process.argv[keepDirIndex + 1]) : undefined;
const images = arg('images', 10_000);
const runs = arg('runs', 7);
const bigMb = arg('big-mb', 256);

const work = mkdtempSync(join(tmpdir(), 'lorabuild-bench-'));
const rows = [];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function lorabuild(args, cwd) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, env: { ...process.env, LORABUILD_CACHE: join(cwd, 'cache') }, encoding: 'utf8', maxBuffer: 1 << 30 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`lorabuild ${args.join(' ')} exited ${r.status}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  return { ms, stdout: r.stdout };
}

function summaryOf(stdout) {
  const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{"summary"'));
  return line ? JSON.parse(line).summary : undefined;
}

try {
  // 1. no-op run
  const project = keepDir ?? join(work, 'noop');
  const reuse = keepDir !== undefined && existsSync(join(project, 'lorafile.lock'));
  if (!reuse) {
    console.error(`bench: generating ${images} images + captions in ${project}`);
    writeLabDataset(join(project, 'data'), images);
    writeFileSync(join(project, 'lorafile.yaml'), 'version: 1\ndatasets:\n  bench:\n    folder: data\n    rules: { too_small: off }\n');
    // old mtimes: files written seconds ago are "racy" for the stat memo and get re-hashed once
    execFileSync('find', [join(project, 'data'), '-type', 'f', '-exec', 'touch', '-d', '2024-01-01', '{}', '+']);
  }
  console.error(reuse ? `bench: reusing ${project}` : 'bench: cold run (fetch + prepare + validate of every item)');
  const cold = lorabuild(['run', 'bench', '--json'], project);
  lorabuild(['run', 'bench', '--json'], project); // settles the memo for freshly written outputs
  // node's own start-up, measured between the runs so both see the same machine load
  const nodeStarts = [];
  const times = [];
  let last;
  for (let i = 0; i < runs; i++) {
    const r = lorabuild(['run', 'bench', '--json'], project);
    times.push(r.ms);
    last = summaryOf(r.stdout);
    const t0 = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0']);
    nodeStarts.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const nodeStart = median(nodeStarts);
  if (!reuse) rows.push(['cold run (fetch, prepare, validate), ' + images + ' images', `${(cold.ms / 1000).toFixed(1)} s`, '']);
  rows.push([`no-op run (median of ${runs})`, `${median(times).toFixed(0)} ms`, 'goal <= 200 ms']);
  rows.push(['  min / max', `${Math.min(...times).toFixed(0)} / ${Math.max(...times).toFixed(0)} ms`, '']);
  rows.push(['  of which node startup (node -e 0)', `${nodeStart.toFixed(0)} ms`, '']);
  rows.push(['  files read during the no-op', String(last?.hashing?.filesHashed ?? '?'), `${last?.hashing?.memoHits ?? '?'} stat-memo hits`]);

  // 2. cold hashing throughput
  const { StatMemo } = await import(join(repo, 'dist', 'engine', 'stat-memo.js'));
  const big = join(work, 'big');
  mkdirSync(big);
  const chunkMb = 16;
  const buf = Buffer.alloc(chunkMb * 1024 * 1024);
  for (let i = 0; i < Math.max(1, Math.round(bigMb / chunkMb)); i++) writeFileSync(join(big, `f${i}.bin`), randomFillSync(buf));
  const sets = [
    [`${images * 2} dataset files`, [...readdirSync(join(project, 'data', 'image')).map((f) => join(project, 'data', 'image', f)), ...readdirSync(join(project, 'data', 'text')).map((f) => join(project, 'data', 'text', f))]],
    [`${readdirSync(big).length} x ${chunkMb} MB files`, readdirSync(big).map((f) => join(big, f))],
  ];
  for (const [label, files] of sets) {
    const bytes = files.reduce((s, f) => s + statSync(f).size, 0);
    const ours = [];
    const theirs = [];
    for (let rep = 0; rep < 3; rep++) {
      const memo = StatMemo.inMemory();
      let t0 = process.hrtime.bigint();
      for (const f of files) await memo.hashFile(f);
      ours.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const list = join(work, 'list.txt');
      writeFileSync(list, files.join('\0'));
      t0 = process.hrtime.bigint();
      execFileSync('sh', ['-c', `xargs -0 sha256sum < '${list}' > /dev/null`]);
      theirs.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const mbps = (ms) => (bytes / 1024 / 1024 / (ms / 1000)).toFixed(0);
    rows.push([`hash ${label} (${(bytes / 1024 / 1024).toFixed(1)} MB): lorabuild`, `${mbps(median(ours))} MB/s`, `${median(ours).toFixed(0)} ms`]);
    rows.push([`hash ${label}: sha256sum`, `${mbps(median(theirs))} MB/s`, `${median(theirs).toFixed(0)} ms`]);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}

const w0 = Math.max(...rows.map((r) => r[0].length));
const w1 = Math.max(...rows.map((r) => r[1].length));
console.log(`${'measure'.padEnd(w0)}  ${'value'.padEnd(w1)}  note`);
for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`);
