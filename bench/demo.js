#!/usr/bin/env node
// node bench/demo.js — the demo as a newcomer runs it, and the toy model it stands on:
//   1. `lorabuild run` of the top-level lorafile.yaml + datasets/demo-lineart in a fresh folder with an
//      empty cache (what `npm run demo` does after the build), wall time and the stages' own times;
//   2. the no-op rerun;
//   3. the pretraining record of the shipped toy model (assets/toy/toy.json, written by
//      scripts/pretrain_toy.py): minutes per phase and final losses, as measured when it was made.
// Options: --json
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(repo, 'bin', 'lorabuild.js');
const asJson = process.argv.includes('--json');

function run(cwd) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [cli, 'run', '--json'], { cwd, env: { ...process.env, LORABUILD_CACHE: join(cwd, 'cache') }, encoding: 'utf8', maxBuffer: 1 << 28 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`lorabuild run exited ${r.status}\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`);
  const events = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const stages = Object.fromEntries(events.filter((e) => e.item === undefined && e.outcome === 'ran' && typeof e.durationMs === 'number').map((e) => [e.stage, e.durationMs / 1000]));
  return { seconds, stages };
}

const work = mkdtempSync(join(tmpdir(), 'lorabuild-bench-demo-'));
try {
  cpSync(join(repo, 'lorafile.yaml'), join(work, 'lorafile.yaml'));
  cpSync(join(repo, 'datasets', 'demo-lineart'), join(work, 'datasets', 'demo-lineart'), { recursive: true });
  const load = loadavg()[0];
  const cold = run(work);
  const noop = run(work);
  const card = JSON.parse(readFileSync(join(repo, 'assets', 'toy', 'toy.json'), 'utf8'));
  const report = { cpus: cpus().length, load_before: load, demo_seconds: cold.seconds, stage_seconds: cold.stages, noop_seconds: noop.seconds, pretraining: card.pretraining };
  if (asJson) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const p = card.pretraining;
    const lines = [
      `machine: ${report.cpus} CPUs, load average ${load.toFixed(1)} before the run`,
      '| what | measured |',
      '|---|---|',
      `| demo, cold (\`lorabuild run\`, empty cache) | ${cold.seconds.toFixed(1)} s |`,
      ...Object.entries(cold.stages).map(([stage, s]) => `| · ${stage} | ${s.toFixed(1)} s |`),
      `| demo, no-op rerun | ${noop.seconds.toFixed(2)} s |`,
      `| toy pretraining: drawing + tokenizing ${p.pool} pictures | ${p.drawing_minutes} min |`,
      `| toy pretraining: autoencoder, ${p.autoencoder.steps} steps × ${p.autoencoder.batch} | ${p.autoencoder.minutes} min, final loss ${p.autoencoder.final_loss} |`,
      `| toy pretraining: UNet + text encoder, ${p.diffusion.steps} steps × ${p.diffusion.batch} | ${p.diffusion.minutes} min, final loss ${p.diffusion.final_loss} |`,
      `| toy pretraining: torch ${p.torch}, ${p.threads} thread(s) | |`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
