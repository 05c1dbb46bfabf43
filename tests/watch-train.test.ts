// `lorabuild watch` with a real worker on builtin tiny: a caption saved while training runs stops
// the training at the next step with a resumable state (a `cancel` event), and the rerun resumes
// from that step; with --no-cancel the training finishes and one rerun follows. Ctrl-C exits 130
// with no half-written LoRA and no staging folder left behind.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, writeFiles } from './helpers/cli.js';
import { isStage, isWatch, WatchProcess, type WatchLine } from './watch-stream.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const CAPTIONS = ['lineart, a circle', 'lineart, a square', 'lineart, a cross'];
const tmp = makeTempDir('lorabuild-watch-train-');
afterAll(tmp.cleanup);

async function makeProject(name: string, steps: number): Promise<string> {
  const dir = join(tmp.dir, name);
  const files: Record<string, string | Buffer> = {
    'lorafile.yaml': `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora: { model: tiny, dataset: shapes, rank: 2, learning_rate: 1.0e-3, steps: ${steps}, checkpoint_every: 10, seed: 0, resolution: 64 }
`,
  };
  for (const [i, caption] of CAPTIONS.entries()) {
    files[`shapes/image/${i}.png`] = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 60 * i, g: 120, b: 200 } } }).png().toBuffer();
    files[`shapes/text/${i}.txt`] = caption;
  }
  writeFiles(dir, files);
  return dir;
}

const trainStep = (min: number) => (e: WatchLine) => {
  const p = e.progress as { done: number; unit?: string } | undefined;
  return e.stage === 'train:shapes_lora' && p?.unit === 'step' && p.done >= min;
};

describe('lorabuild watch: a training whose inputs change', { timeout: 600_000 }, () => {
  it('is stopped with a resumable state and the rerun resumes from it', async () => {
    const dir = await makeProject('cancel', 400);
    const w = new WatchProcess([], { cwd: dir, env: ENV });
    const before = (await w.next(trainStep(3), 'training progress', 300_000)).progress as { done: number };

    // an editor save without changes: the inputs are the same, so the rerun can resume
    writeFileSync(join(dir, 'shapes/text/0.txt'), CAPTIONS[0]);
    const cancel = await w.next(isWatch('cancel'), 'the cancel');
    expect(cancel).toMatchObject({ build: 1, stages: ['train:shapes_lora'], path: 'shapes/text/0.txt' });
    expect(await w.next(isStage('train:shapes_lora'), 'the stopped training')).toMatchObject({ outcome: 'failed', reason: 'interrupted' });
    expect(await w.next(isWatch('idle'), 'the end of build 1')).toMatchObject({ build: 1, verdict: 'interrupted' });

    await w.next(isWatch('build', (e) => e.build === 2), 'the rerun');
    await w.next(isStage('validate:shapes'), 'validation before training');
    await w.next(isStage('train:shapes_lora', 'started'), 'the training to start again');
    const resumed = (await w.next(trainStep(1), 'resumed progress', 300_000)).progress as { done: number };
    expect(resumed.done).toBeGreaterThan(before.done);

    const result = await w.interrupt();
    expect(result.code).toBe(130);
    expect(existsSync(join(dir, 'out', 'loras', 'shapes_lora', 'shapes_lora.safetensors'))).toBe(false);
    const staging = join(dir, 'cache', 'tmp');
    expect(existsSync(staging) ? readdirSync(staging) : []).toEqual([]);
    expect(w.events.filter((e) => e.watch === 'cancel')).toHaveLength(1);
  });

  it('with --no-cancel finishes the training, then reruns once', async () => {
    const dir = await makeProject('no-cancel', 30);
    const w = new WatchProcess(['--no-cancel'], { cwd: dir, env: ENV });
    await w.next(trainStep(2), 'training progress', 300_000);
    writeFileSync(join(dir, 'shapes/text/1.txt'), 'lineart, a square, bold');
    await w.next(isWatch('queued'), 'the queued rerun');
    expect(await w.next(isStage('train:shapes_lora'), 'the training to finish')).toMatchObject({ outcome: 'ran' });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
    await w.next(isWatch('build', (e) => e.build === 2), 'the rerun');
    // the caption changed, so the rerun trains again (on the new caption)
    expect(await w.next(isStage('train:shapes_lora', 'started'), 'the retraining')).toMatchObject({ reason: expect.stringContaining('shapes/text/1.txt') });
    await w.next(isWatch('idle', (e) => e.build === 2), 'the end of build 2', 300_000);
    const result = await w.interrupt();
    expect(result.code).toBe(130);
    expect(w.events.filter((e) => e.watch === 'cancel')).toEqual([]);
    expect(w.events.filter((e) => e.watch === 'build')).toHaveLength(2);
    expect(existsSync(join(dir, 'out', 'loras', 'shapes_lora', 'shapes_lora.safetensors'))).toBe(true);
  });
});
