// Stopping a training the ways a student does, and resuming it exactly: `lorabuild run` started in its
// own process group (as a terminal's foreground job), stopped with Ctrl-C as a terminal sends it
// (SIGINT to the whole group: node and the Python worker at once) at three random steps, then with
// SIGTERM to lorabuild alone and with SIGHUP to the group (a closed terminal). Each stop exits 130 and
// says at which step it stopped; the next run resumes from exactly that step; the final LoRA, its
// checkpoints and the loss curve are byte for byte those of an uninterrupted run. The recipe is the
// lab's (cosine over the whole run, accumulation with a partial step per epoch, posterior sampling,
// clipping), so every random draw and the schedule have to line up on resume.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeTempDir, runCli, startCli, waitForLine, writeFiles, type CliResult } from './helpers/cli.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const STEPS = 48;
const LORAFILE = `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora:
    model: tiny
    dataset: shapes
    rank: 2
    learning_rate: 1.0e-3
    batch_size: 1
    steps: ${STEPS}
    checkpoint_every: 16
    seed: 0
    resolution: 64
    # the lab's recipe: 4 items / accumulation 3 = a full and a partial step per epoch
    gradient_accumulation: 3
    lr_scheduler: cosine
    max_grad_norm: 1
    targets: attention+proj
    lora_init: gaussian
    latents: sample
`;

async function makeProject(dir: string): Promise<void> {
  writeFiles(dir, { 'lorafile.yaml': LORAFILE });
  for (let i = 0; i < 4; i++) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/>` +
      `<rect x="${8 + i * 9}" y="${12 + i * 5}" width="${14 + i * 4}" height="20" fill="none" stroke="black" stroke-width="3"/></svg>`;
    writeFiles(dir, { [`shapes/image/${i}.png`]: await sharp(Buffer.from(svg)).png().toBuffer(), [`shapes/text/${i}.txt`]: `lineart, box ${i}` });
  }
}

const loraDir = (dir: string) => join(dir, 'out', 'loras', 'shapes_lora');

type Stop = { signal: NodeJS.Signals; group: boolean; atStep: number };

/** Three Ctrl-Cs at random steps, then SIGTERM to lorabuild alone and SIGHUP to the group, in order. */
function plannedStops(): Stop[] {
  const kinds: Omit<Stop, 'atStep'>[] = [
    { signal: 'SIGINT', group: true },
    { signal: 'SIGINT', group: true },
    { signal: 'SIGINT', group: true },
    { signal: 'SIGTERM', group: false },
    { signal: 'SIGHUP', group: true },
  ];
  // one random step in each of five windows of [2, STEPS - 6], so every stop is after the last resume
  const span = (STEPS - 8) / kinds.length;
  return kinds.map((k, i) => ({ ...k, atStep: 2 + Math.floor(i * span + Math.random() * (span - 2)) }));
}

function stepOf(line: string): number | null {
  try {
    const e = JSON.parse(line) as { stage?: string; progress?: { done: number; unit?: string } };
    return e.stage === 'train:shapes_lora' && e.progress?.unit === 'step' ? e.progress.done : null;
  } catch {
    return null;
  }
}

function diagnostic(r: CliResult, code: string): { message: string } | undefined {
  for (const e of r.events) {
    const found = ((e.diagnostics ?? []) as { code?: string; message: string }[]).find((d) => d.code === code);
    if (found) return found;
  }
  return undefined;
}

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-interrupt-');
});
afterAll(() => tmp.cleanup());

describe('stopping a training and running again', () => {
  it('Ctrl-C to the process group at 3 random steps, SIGTERM and SIGHUP: exit 130 each time, resume at the exact step, the same bytes', async () => {
    const reference = join(tmp.dir, 'reference');
    await makeProject(reference);
    const uninterrupted = await runCli(['run', '--json', 'train:shapes_lora'], { cwd: reference, env: ENV, timeoutMs: 400_000 });
    expect(uninterrupted.code, uninterrupted.stderr).toBe(0);

    const dir = join(tmp.dir, 'stopped');
    await makeProject(dir);
    const stops = plannedStops();
    console.log(`stops: ${stops.map((s) => `${s.signal}${s.group ? ' (group)' : ''} at step >= ${s.atStep}`).join(', ')}`);
    let resumedFrom = 0;
    for (const stop of stops) {
      const child = startCli(['run', '--json', 'train:shapes_lora'], { cwd: dir, env: ENV, timeoutMs: 400_000, detached: true });
      let seen = 0;
      await waitForLine(child, (line) => {
        seen = stepOf(line) ?? seen;
        return seen >= stop.atStep;
      }, 400_000);
      if (stop.group) process.kill(-child.pid!, stop.signal);
      else child.kill(stop.signal);
      const result = await child.result;
      expect(result.code, `${stop.signal}: ${result.stderr.slice(-2000)}`).toBe(130);
      expect(result.stderr).not.toMatch(/KeyboardInterrupt|Traceback|internal error/);
      const said = diagnostic(result, 'training_interrupted')?.message ?? '';
      const stopped = Number(/stopped after step (\d+) of 48/.exec(said)?.[1]);
      // the worker finishes the step it is in (and the few it ran before the signal arrived), then stops
      expect(stopped, `${stop.signal} at step ${seen}: "${said}"`).toBeGreaterThanOrEqual(seen);
      expect(stopped).toBeLessThan(STEPS);
      if (resumedFrom > 0) expect(result.events.some((e) => e.stage === 'train:shapes_lora' && e.outcome === 'started')).toBe(true);
      expect(existsSync(join(loraDir(dir), 'shapes_lora.safetensors'))).toBe(false);
      resumedFrom = stopped;

      // the resume state stays in the cache; the next run starts from exactly that step
      const states = readdirSync(join(dir, 'cache', 'train-resume'), { recursive: true }).filter((f) => String(f).endsWith('.json'));
      expect(states.length).toBe(1);
      const index = JSON.parse(readFileSync(join(dir, 'cache', 'train-resume', String(states[0])), 'utf8')) as { records: { steps: number; complete: boolean }[] };
      expect(index.records.filter((r) => !r.complete).map((r) => r.steps)).toContain(stopped);
    }

    const finished = await runCli(['run', '--json', 'train:shapes_lora'], { cwd: dir, env: ENV, timeoutMs: 400_000 });
    expect(finished.code, finished.stderr).toBe(0);
    const log = readFileSync(join(loraDir(dir), 'train-log.txt'), 'utf8');
    expect(log).toContain(`resuming from step ${resumedFrom} (an interrupted run)`);
    for (const name of ['shapes_lora.safetensors', 'shapes_lora-step00016.safetensors', 'shapes_lora-step00032.safetensors', 'loss.json']) {
      expect(readFileSync(join(loraDir(dir), name)).equals(readFileSync(join(loraDir(reference), name))), name).toBe(true);
    }
    // students commit out/: the resume state is not there
    expect(readdirSync(loraDir(dir)).sort()).toEqual(['loss.json', 'shapes_lora-step00016.safetensors', 'shapes_lora-step00032.safetensors', 'shapes_lora.safetensors', 'train-log.txt']);
  }, 1_800_000);
});
