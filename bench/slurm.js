#!/usr/bin/env node
// node bench/slurm.js — what running a stage as a Slurm job costs on top of running it here, on the
// single-node Slurm of scripts/services/slurm.sh: the time from submitting a job that only says
// hello (python + torch start, one request) to its result, against starting the local worker and
// asking it the same. The difference is the submission overhead per stage (sbatch, scheduling,
// slurmd launch, the event-file polling). Options: --repeat N (default 5), --json
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SlurmWorker } from '../dist/cluster/slurm-worker.js';
import { WorkerClient } from '../dist/worker/client.js';

const { values } = parseArgs({ options: { repeat: { type: 'string' }, json: { type: 'boolean' } } });
const REPEAT = Number(values.repeat ?? 5);
const python = process.env.LORABUILD_PYTHON || '/usr/bin/python3';
const script = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'services', 'slurm.sh');
const work = mkdtempSync(join(tmpdir(), 'lorabuild-bench-slurm-'));
const conf = execFileSync('bash', [script, 'start', join(work, 'slurm')], { encoding: 'utf8' }).trim();
const env = { ...process.env, SLURM_CONF: conf, LORABUILD_THREADS: '1' };
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cluster = { executor: 'slurm', sbatch_args: [] };

try {
  const rows = {};
  for (const pollMs of [1000, 200]) {
    const times = [];
    for (let i = 0; i < REPEAT; i++) {
      const cacheDir = join(work, `cache-${pollMs}-${i}`);
      const worker = new SlurmWorker({ cluster, cacheDir, python: async () => python, local: async () => { throw new Error('not used'); }, env, pollMs });
      const t0 = performance.now();
      await worker.hello();
      times.push(performance.now() - t0);
    }
    rows[`job_poll${pollMs}`] = times;
  }
  const local = [];
  for (let i = 0; i < REPEAT; i++) {
    const t0 = performance.now();
    const client = await WorkerClient.start({ python, env: { LORABUILD_THREADS: '1' } });
    await client.hello();
    local.push(performance.now() - t0);
    await client.close();
  }
  const result = {
    localMs: Math.round(median(local)),
    jobMs: { poll1000: Math.round(median(rows.job_poll1000)), poll200: Math.round(median(rows.job_poll200)) },
    overheadMs: { poll1000: Math.round(median(rows.job_poll1000) - median(local)), poll200: Math.round(median(rows.job_poll200) - median(local)) },
    runs: { local: local.map(Math.round), poll1000: rows.job_poll1000.map(Math.round), poll200: rows.job_poll200.map(Math.round) },
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(`Slurm submission overhead per stage (hello job vs local worker start + hello; median of ${REPEAT})`);
    console.log(`  local worker start + hello          ${result.localMs} ms   runs ${result.runs.local.join(', ')}`);
    console.log(`  job, squeue/event poll every 1 s    ${result.jobMs.poll1000} ms   overhead ${result.overheadMs.poll1000} ms   runs ${result.runs.poll1000.join(', ')}`);
    console.log(`  job, poll every 200 ms              ${result.jobMs.poll200} ms   overhead ${result.overheadMs.poll200} ms   runs ${result.runs.poll200.join(', ')}`);
  }
} finally {
  execFileSync('bash', [script, 'stop', join(work, 'slurm')]);
  rmSync(work, { recursive: true, force: true });
}
