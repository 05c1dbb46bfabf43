#!/usr/bin/env node
// node bench/lora-apply.js — what applying a downloaded LoRA costs a render, on the CPU:
// a rank-32 LoCon over every UNet Linear/Conv2d of the sd15 layout (fp16, as files come), planned by
// lorabuild's key analysis (TypeScript: header, spellings, shapes, alphas), then loaded, checked and
// patched into the weights by the worker as the sample op does, restored, and set against one guided
// UNet step (cond + uncond) at 512 px on the same machine. Random weights; nothing is downloaded.
// Build first (npx tsc -p tsconfig.json). Options: --arch sd15|tiny, --rank N, --size PX, --json
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { analyzeLoraFile } from '../dist/loras/analyze.js';
import { workerLoraFile } from '../dist/loras/worker-plan.js';

const { values } = parseArgs({ options: { arch: { type: 'string' }, rank: { type: 'string' }, size: { type: 'string' }, json: { type: 'boolean' } } });
const arch = values.arch ?? 'sd15';
const rank = Number(values.rank ?? 32);
const size = Number(values.size ?? (arch === 'tiny' ? 64 : 512));
const python = process.env.LORABUILD_PYTHON || '/usr/bin/python3';
const env = { ...process.env, PYTHONPATH: join(import.meta.dirname, '..', 'src', 'worker') };

function worker(args) {
  const run = spawnSync(python, ['-m', 'lorabuild_worker.bench_lora', ...args], { env, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (run.status !== 0) throw new Error(`bench_lora ${args[0]} failed:\n${run.stderr.slice(-3000)}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1));
}

const dir = mkdtempSync(join(tmpdir(), 'lorabuild-bench-lora-'));
try {
  const file = join(dir, `locon-r${rank}.safetensors`);
  const written = worker(['write', '--arch', arch, '--rank', String(rank), '--out', file]);
  let t0 = performance.now();
  const analysis = await analyzeLoraFile(file, arch);
  const planMs = performance.now() - t0;
  t0 = performance.now();
  const plan = workerLoraFile(file, analysis);
  const json = JSON.stringify(plan);
  const specMs = performance.now() - t0;
  writeFileSync(join(dir, 'plan.json'), json);
  const applied = worker(['apply', '--arch', arch, '--plan', join(dir, 'plan.json'), '--size', String(size)]);
  const result = {
    arch,
    rank,
    modules: written.modules,
    file_mib: Number((statSync(file).size / 2 ** 20).toFixed(1)),
    plan_ms: Number(planMs.toFixed(1)),
    worker_spec_ms: Number(specMs.toFixed(1)),
    worker_spec_kib: Number((json.length / 1024).toFixed(1)),
    ...applied,
  };
  if (values.json) console.log(JSON.stringify(result));
  else {
    console.log(`${arch}: rank-${rank} LoCon, ${result.modules} modules, ${result.file_mib} MiB fp16`);
    console.log(`  plan (TypeScript: header, key spellings, shapes, alphas): ${result.plan_ms} ms; worker spec ${result.worker_spec_kib} KiB`);
    console.log(`  worker: load + check ${result.load_and_check_s} s, patch ${result.patch_s} s (${result.modules_patched} weights), restore ${result.restore_s} s`);
    console.log(`  one guided UNet step at ${size} px (batch 2): ${result.unet_step_s} s -> patching costs ${result.patch_per_unet_step} steps`);
    console.log(`  memory: model ${result.rss_model_mib} MiB, peak ${result.peak_mib} MiB (+${result.added_by_lora_mib} MiB for the LoRA and the saved weights); ${result.threads} threads`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
