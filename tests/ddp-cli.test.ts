// `devices: 2` through the CLI: the train stage launches two gloo processes with torch's launcher,
// the LoRA is written once (rank 0), and `devices` is part of the stage's key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';
import { inspectSafetensors } from '../src/safetensors/inspect.js';
import { writeRingShapes } from './helpers/shapes.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', LORABUILD_THREADS: '1', LORABUILD_CONFIG: '/nonexistent/lorabuild.yaml' };

let tmp: { dir: string; cleanup: () => void };
beforeAll(async () => {
  tmp = makeTempDir('lorabuild-ddp-');
  writeFiles(tmp.dir, {
    'lorafile.yaml': `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora: { model: tiny, dataset: shapes, rank: 2, learning_rate: 1.0e-3, batch_size: 2, devices: 2, steps: 6, checkpoint_every: 3, seed: 0, resolution: 64 }
`,
  });
  await writeRingShapes(tmp.dir, ['lineart, shape 0', 'lineart, shape 1', 'lineart, shape 2']);
});
afterAll(() => tmp.cleanup());

describe('devices: 2 (torch.distributed.run + DDP, gloo)', () => {
  it('trains through two processes and keys the result by devices', async () => {
    const r = await runCli(['run', '--json'], { cwd: tmp.dir, env: ENV, timeoutMs: 400_000 });
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const dir = join(tmp.dir, 'out', 'loras', 'shapes_lora');
    expect(readFileSync(join(dir, 'train-log.txt'), 'utf8')).toContain('train: 2 processes through torch.distributed.run (gloo)');
    const info = await inspectSafetensors(join(dir, 'shapes_lora.safetensors'));
    expect(info.lora?.fit).toMatchObject({ arch: 'tiny', fits: true });
    expect(info.metadata.ss_steps).toBe('6');
    const lock = parse(readFileSync(join(tmp.dir, 'lorafile.lock'), 'utf8')) as { stages: Record<string, { params: Record<string, unknown> }> };
    expect(lock.stages['train:shapes_lora'].params).toMatchObject({ devices: 2, batch_size: 2 });
  }, 600_000);
});
