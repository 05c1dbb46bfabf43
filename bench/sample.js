#!/usr/bin/env node
// node bench/sample.js — sampling speed through the real worker's `sample` op (no lorabuild cache):
//   - `tiny` on the CPU at 64 px, batch 1, CFG 7.5, for a spread of ComfyUI samplers and schedulers
//     (heun, dpm_2 and dpmpp_2s_ancestral make two guided UNet calls per step);
//   - on a CUDA machine, the `sd15` architecture (random weights) at 512 px, batch 1 and 4, CFG 7.5
//     (cond + uncond run as one UNet batch of 2 × batch), Euler.
// it/s = sampler steps per second for the whole batch (one step = one guided UNet call), measured
// between the first and the last progress event, so model loading, text encoding and the VAE
// decode are left out (as diffusers' progress bar does).
// Build first (npx tsc -p tsconfig.json). Options: --steps N (default 20 tiny / 25 sd15), --only tiny|sd15, --json
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WorkerClient } from '../dist/worker/client.js';

const { values } = parseArgs({ options: { steps: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean' } } });
const python = process.env.LORABUILD_PYTHON || '/usr/bin/python3';
const SAMPLERS = [
  ['euler', 'normal'],
  ['euler_ancestral', 'normal'],
  ['heun', 'normal'],
  ['dpm_2', 'karras'],
  ['lms', 'karras'],
  ['dpmpp_2s_ancestral', 'karras'],
  ['dpmpp_2m', 'karras'],
];

/** padded CLIP-like ids (every model reads CLIP ids; any ids < 49406 time the same) */
function ids(text) {
  const out = [49406, ...[...text].map((_, i) => 320 + i).slice(0, 75), 49407];
  while (out.length < 77) out.push(49407);
  return out;
}

async function measure(worker, dir, { arch, model, size, batch, sampler, scheduler = 'normal', steps }) {
  const cells = [];
  for (let i = 0; i < batch; i++) {
    cells.push({
      cond_ids: ids('a drawing of a mouse'),
      uncond_ids: ids(''),
      seed: i,
      width: size,
      height: size,
      sampler,
      scheduler,
      steps,
      cfg: 7.5,
      loras: [],
      out: join(dir, `${arch}-${sampler}-${scheduler}-${batch}-${i}.png`),
      parameters: 'bench',
    });
  }
  const marks = [];
  const started = Date.now();
  await worker.request('sample', { model, arch, max_batch: batch, cells }, { onEvent: (e) => e.type === 'progress' && marks.push(performance.now()) });
  const total = (Date.now() - started) / 1000;
  // progress counts cell-steps: `batch` per sampler step
  const its = marks.length > 1 ? (marks.length - 1) / ((marks.at(-1) - marks[0]) / 1000) : NaN;
  return { arch, size, batch, sampler: `${sampler} ${scheduler}`, steps, its: Number(its.toFixed(2)), seconds_total: Number(total.toFixed(2)) };
}

const dir = mkdtempSync(join(tmpdir(), 'lorabuild-bench-sample-'));
const worker = await WorkerClient.start({ python });
try {
  const hello = await worker.hello();
  const rows = [];
  if (values.only !== 'sd15') {
    const model = join(dir, 'tiny.safetensors');
    await worker.request('build_builtin', { arch: 'tiny', seed: 0, path: model });
    const steps = Number(values.steps ?? 20);
    for (const [sampler, scheduler] of SAMPLERS) rows.push(await measure(worker, dir, { arch: 'tiny', model, size: 64, batch: 1, sampler, scheduler, steps }));
  }
  if (values.only !== 'tiny' && hello.cuda) {
    const model = join(dir, 'sd15.safetensors');
    await worker.request('build_builtin', { arch: 'sd15', seed: 0, path: model });
    const steps = Number(values.steps ?? 25);
    for (const batch of [1, 4]) rows.push(await measure(worker, dir, { arch: 'sd15', model, size: 512, batch, sampler: 'euler', steps }));
  }
  const report = { device: hello.gpu_name ?? 'CPU', torch: hello.torch, threads: hello.threads, worker: hello.worker_version, rows };
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    process.stdout.write(`device ${report.device} · torch ${report.torch} · ${report.threads} threads · worker ${report.worker}\n`);
    process.stdout.write('arch   size  batch  sampler                    steps   it/s   total s\n');
    for (const r of rows) {
      process.stdout.write(`${r.arch.padEnd(6)} ${String(r.size).padStart(4)}  ${String(r.batch).padStart(5)}  ${r.sampler.padEnd(26)} ${String(r.steps).padStart(5)}  ${String(r.its).padStart(6)}  ${String(r.seconds_total).padStart(7)}\n`);
    }
    if (!hello.cuda) process.stdout.write('(no CUDA GPU: the sd15 rows run only on a CUDA machine)\n');
  }
} finally {
  await worker.close();
  rmSync(dir, { recursive: true, force: true });
}
