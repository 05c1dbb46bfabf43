#!/usr/bin/env node
// node bench/hostile.js — what hostile input of a large size costs (issue 21 item 15):
//   - `lorabuild inspect` of a LoRA-shaped header at the tensor limit (99,000 tensors), and the time
//     to refuse one over it (840,000 tensors, an 86 MB header; it used to be parsed and inspected);
//   - the worker's header check (Python) on the same two files;
//   - `lorabuild run validate:ds` on N empty image/caption pairs (every item has two errors): wall
//     time, peak RSS (GNU time), bytes printed to the terminal and the size of validation.md.
// Options: --items N (default 20000), --json. Needs `npx tsc -p tsconfig.json` first (runs dist/).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(repoRoot, 'bin', 'lorabuild.js');
const { values } = parseArgs({ options: { items: { type: 'string' }, json: { type: 'boolean' } } });
const items = Number(values.items ?? 20000);
const work = mkdtempSync(join(os.tmpdir(), 'lorabuild-bench-hostile-'));

/** a kohya-named LoRA header of `modules` x (down, up, alpha), one F16 element each */
function loraFile(path, modules) {
  const parts = [];
  let offset = 0;
  for (let i = 0; i < modules; i++) {
    for (const [suffix, shape] of [['lora_down.weight', [1, 1]], ['lora_up.weight', [1, 1]], ['alpha', []]]) {
      parts.push(`${JSON.stringify(`lora_unet_b_${i}.${suffix}`)}:{"dtype":"F16","shape":${JSON.stringify(shape)},"data_offsets":[${offset},${offset + 2}]}`);
      offset += 2;
    }
  }
  const header = Buffer.from(`{${parts.join(',')}}`);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(path, Buffer.concat([prefix, header, Buffer.alloc(offset)]));
  return { tensors: modules * 3, headerMB: header.length / 1e6 };
}

function timed(command, args, options = {}) {
  const gnuTime = existsSync('/usr/bin/time');
  const started = performance.now();
  const r = gnuTime
    ? spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', command, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options })
    : spawnSync(command, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, ...options });
  const ms = performance.now() - started;
  const rss = /maxrss_kb=(\d+)/.exec(r.stderr ?? '')?.[1];
  const stderr = (r.stderr ?? '').replace(/maxrss_kb=\d+\n?$/, '');
  return { ms, code: r.status, rssMB: rss ? Number(rss) / 1024 : null, stdoutBytes: Buffer.byteLength(r.stdout ?? ''), stderrBytes: Buffer.byteLength(stderr), stderr };
}

const PY_CHECK = `import sys, time
sys.path.insert(0, ${JSON.stringify(join(repoRoot, 'src', 'worker'))})
from lorabuild_worker.safetensors_io import read_header, SafetensorsError
t = time.perf_counter()
try:
    read_header(sys.argv[1]); verdict = "read"
except SafetensorsError as exc:
    verdict = "refused"
print(f"{verdict} {(time.perf_counter() - t) * 1000:.0f}")`;

const results = {};
try {
  const atLimit = join(work, 'at-limit.safetensors');
  const over = join(work, 'over-limit.safetensors');
  const a = loraFile(atLimit, 33_000);
  const b = loraFile(over, 280_000);
  for (const [label, file, shape] of [['inspect 99,000 tensors', atLimit, a], ['inspect 840,000 tensors (refused)', over, b]]) {
    const r = timed(process.execPath, [cli, 'inspect', file]);
    results[label] = { ms: Math.round(r.ms), exit: r.code, rssMB: r.rssMB && Math.round(r.rssMB), headerMB: Number(shape.headerMB.toFixed(1)) };
    const py = spawnSync('/usr/bin/python3', ['-c', PY_CHECK, file], { encoding: 'utf8' });
    const [verdict, ms] = (py.stdout ?? '').trim().split(' ');
    results[`worker header check, ${label.replace('inspect ', '')}`] = { ms: Number(ms), verdict };
  }

  const project = join(work, 'empty');
  mkdirSync(join(project, 'ds/image'), { recursive: true });
  mkdirSync(join(project, 'ds/text'), { recursive: true });
  for (let i = 0; i < items; i++) {
    writeFileSync(join(project, `ds/image/${i}.png`), '');
    writeFileSync(join(project, `ds/text/${i}.txt`), '');
  }
  writeFileSync(join(project, 'lorafile.yaml'), 'version: 1\ndatasets:\n  ds:\n    folder: ds\n    layout: lab\n');
  const run = timed(process.execPath, [cli, 'run', 'validate:ds'], { cwd: project, env: { ...process.env, LORABUILD_CACHE: join(project, 'cache') } });
  results[`run validate:ds, ${items} empty image/caption pairs`] = {
    ms: Math.round(run.ms),
    exit: run.code,
    rssMB: run.rssMB && Math.round(run.rssMB),
    terminalKB: Math.round((run.stdoutBytes + run.stderrBytes) / 1024),
    validationMdKB: Math.round(statSync(join(project, 'out/datasets/ds/validation.md')).size / 1024),
    validationJsonKB: Math.round(statSync(join(project, 'out/datasets/ds/validation.json')).size / 1024),
  };
} finally {
  rmSync(work, { recursive: true, force: true });
}

if (values.json) console.log(JSON.stringify({ bench: 'hostile', load: os.loadavg()[0], results }));
else {
  console.log(`hostile input at scale (load ${os.loadavg()[0].toFixed(1)}, ${os.cpus().length} cores)`);
  for (const [label, r] of Object.entries(results)) console.log(`  ${label}: ${Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ')}`);
}
