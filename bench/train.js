#!/usr/bin/env node
// npm run bench:train — training speed through the real worker (no lorabuild cache involved):
//   - `tiny` on the CPU at 64 px, batch 1 (what CI and the demo run);
//   - on a CUDA machine, the `sd15` architecture (random weights) at 512 px, batch 1 and 8, with
//     the fraction of the GPU's dense bf16 peak reached (a step costs ~1.73 TFLOP at batch 1).
// it/s is measured over the steps after a warm-up (first progress events are dropped); peak memory
// is what the worker reports (CUDA: max allocated; CPU: max RSS).
// Options: --steps N (default 60 tiny / 40 sd15), --only tiny|sd15, --json
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { WorkerClient } from '../dist/worker/client.js';

const STEP_TFLOP_BATCH1 = 1.73;
/** dense bf16 peak TFLOP/s by GPU name (vendor datasheets) */
const PEAK_BF16 = [
  [/H200/i, 989],
  [/H100.*PCIe/i, 756],
  [/H100/i, 989],
  [/A100/i, 312],
  [/L40S/i, 362],
  [/4090/i, 165],
  [/3050 Ti/i, 22],
];

const { values } = parseArgs({ options: { steps: { type: 'string' }, only: { type: 'string' }, json: { type: 'boolean' } } });
const python = process.env.LORABUILD_PYTHON || '/usr/bin/python3';

/** CLIP-like ids (every model reads CLIP ids; any ids < 49406 time the same) */
function clipIds(n) {
  const out = [49406];
  for (let i = 0; i < n; i++) out.push(320 + i);
  while (out.length < 77) out.push(49407);
  return out;
}

async function fixture(worker, dir, arch, resolution, count) {
  const model = join(dir, `${arch}.safetensors`);
  await worker.request('build_builtin', { arch, seed: 0, path: model });
  const items = [];
  for (let i = 0; i < count; i++) {
    const image = join(dir, `img${i}.png`);
    await sharp({ create: { width: resolution, height: resolution, channels: 3, background: { r: (37 * i) % 255, g: 90, b: 160 } } }).png().toFile(image);
    const latents = join(dir, `${arch}-lat${i}.safetensors`);
    const context = join(dir, `${arch}-ctx${i}.safetensors`);
    await worker.request('encode_latents', { model, arch, resolution, items: [{ image, out: latents }] });
    await worker.request('encode_text', { model, arch, clip_skip: 1, items: [{ ids: clipIds(8 + i), out: context }] });
    items.push({ latents, context });
  }
  return { model, items };
}

async function measure(worker, dir, { arch, resolution, batch, steps, device }) {
  const { model, items } = await fixture(worker, dir, arch, resolution, Math.max(4, batch));
  const params = {
    rank: 4, alpha: 4, learning_rate: 1e-4, batch_size: batch, seed: 0, resolution, targets: 'attention', lr_scheduler: 'constant',
    warmup_steps: 0, gradient_accumulation: 1, clip_skip: 1, noise_offset: 0, caption_dropout: 0, flip: true,
    mixed_precision: 'auto', gradient_checkpointing: 'off', compile: false, device,
  };
  const marks = [];
  const started = process.hrtime.bigint();
  const result = await worker.request(
    'train',
    { model, arch, items, params, out_dir: join(dir, `out-${arch}-${batch}`), checkpoint_every: steps * 10, steps, metadata: {} },
    { onEvent: (e) => e.type === 'progress' && marks.push([e.step, Number(process.hrtime.bigint() - started) / 1e9]) },
  );
  const warm = marks.find(([s]) => s >= Math.min(5, Math.floor(steps / 4))) ?? marks[0];
  const last = marks.at(-1);
  const its = (last[0] - warm[0]) / (last[1] - warm[1]);
  return { arch, resolution, batch, steps, its, peak_memory: result.peak_memory ?? null, final_loss: result.loss_curve?.at(-1)?.[1] ?? null };
}

const dir = mkdtempSync(join(tmpdir(), 'lorabuild-bench-'));
const worker = await WorkerClient.start({ python });
try {
  const hello = await worker.hello();
  const rows = [];
  if (values.only !== 'sd15') {
    rows.push(await measure(worker, dir, { arch: 'tiny', resolution: 64, batch: 1, steps: Number(values.steps ?? 60), device: 'cpu' }));
  }
  if (values.only !== 'tiny' && hello.cuda) {
    for (const batch of [1, 8]) {
      const row = await measure(worker, dir, { arch: 'sd15', resolution: 512, batch, steps: Number(values.steps ?? 40), device: 'cuda' });
      const peak = PEAK_BF16.find(([re]) => re.test(hello.gpu_name ?? ''))?.[1];
      row.tflops = row.its * STEP_TFLOP_BATCH1 * batch;
      row.peak_fraction = peak ? row.tflops / peak : null;
      rows.push(row);
    }
  }
  const report = { device: hello.gpu_name ?? 'CPU', torch: hello.torch, blas: hello.blas, threads: hello.threads, worker: hello.worker_version, rows };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(`device: ${report.device} · torch ${report.torch} · BLAS ${report.blas} · ${report.threads} threads · worker ${report.worker}\n`);
    process.stdout.write('| arch | px | batch | it/s | peak memory | TFLOP/s | of peak |\n|---|---|---|---|---|---|---|\n');
    for (const r of rows) {
      const mem = r.peak_memory ? `${(r.peak_memory / 2 ** 20).toFixed(0)} MiB` : 'n/a';
      const tf = r.tflops ? r.tflops.toFixed(1) : '–';
      const frac = r.peak_fraction ? `${(r.peak_fraction * 100).toFixed(1)} %` : '–';
      process.stdout.write(`| ${r.arch} | ${r.resolution} | ${r.batch} | ${r.its.toFixed(2)} | ${mem} | ${tf} | ${frac} |\n`);
    }
    if (!hello.cuda) process.stdout.write('(no CUDA GPU: the sd15 rows run only on a CUDA machine)\n');
  }
} finally {
  await worker.close();
  rmSync(dir, { recursive: true, force: true });
}
