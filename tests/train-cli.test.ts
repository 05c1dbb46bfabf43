// `lorabuild run` end to end on `builtin: tiny` and a small generated lab-layout dataset: trains,
// checkpoints, writes a LoRA that fits the tiny UNet; a second run runs nothing; growing steps
// 40 -> 60 continues from the cached state and equals a from-scratch 60-step run byte for byte;
// SIGTERM mid-training, then a re-run resumes from the interrupted state.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import sharp from 'sharp';
import { parse } from 'yaml';
import { makeTempDir, runCli, startCli, waitForLine, writeFiles, type CliResult } from './helpers/cli.js';
import { inspectSafetensors } from '../src/safetensors/inspect.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const CAPTIONS = ['lineart, a circle', 'lineart, a square', 'lineart, a cross', 'lineart, two bars'];

function lorafile(steps: number): string {
  return `version: 1
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
    steps: ${steps}
    checkpoint_every: 20
    seed: 0
    resolution: 64
`;
}

async function makeProject(dir: string, steps: number): Promise<void> {
  writeFiles(dir, { 'lorafile.yaml': lorafile(steps) });
  for (const [i, caption] of CAPTIONS.entries()) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/>` +
      `<circle cx="${16 + i * 10}" cy="32" r="${8 + i * 3}" fill="none" stroke="black" stroke-width="3"/></svg>`;
    writeFiles(dir, { [`shapes/image/${i}.png`]: await sharp(Buffer.from(svg)).png().toBuffer(), [`shapes/text/${i}.txt`]: caption });
  }
}

const run = (cwd: string, args: string[] = [], cache?: string): Promise<CliResult> =>
  runCli(['run', '--json', ...args], { cwd, env: { ...ENV, ...(cache ? { LORABUILD_CACHE: cache } : {}) }, timeoutMs: 300_000 });

const trainEvent = (r: CliResult) => r.events.find((e) => e.stage === 'train:shapes_lora' && e.item === undefined && typeof e.outcome === 'string' && e.outcome !== 'started');
const loraPath = (dir: string, name = 'shapes_lora.safetensors') => join(dir, 'out', 'loras', 'shapes_lora', name);

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-train-');
});
afterAll(() => tmp.cleanup());

describe('lorabuild run: train stage on builtin tiny', () => {
  const project = () => join(tmp.dir, 'p');

  it('trains, checkpoints and writes a LoRA; the second run runs nothing', async () => {
    await makeProject(project(), 40);
    const first = await run(project());
    expect(first.stderr).not.toMatch(/internal error/);
    expect(first.code).toBe(0);
    expect(trainEvent(first)?.outcome).toBe('ran');
    // encodings and the builtin model are steps of the stage, not items: nothing is counted as one
    expect(trainEvent(first)?.items).toEqual({ ran: 0, cached: 0 });
    expect(first.events.filter((e) => e.stage === 'train:shapes_lora' && e.item !== undefined)).toEqual([]);
    expect(existsSync(loraPath(project()))).toBe(true);
    expect(existsSync(loraPath(project(), 'shapes_lora-step00020.safetensors'))).toBe(true);
    const loss = JSON.parse(readFileSync(loraPath(project(), 'loss.json'), 'utf8')) as { loss: [number, number][] };
    expect(loss.loss.at(-1)?.[0]).toBe(40);
    // an estimate from the first timed steps, at the lorafile's steps line; the resume state stays in the cache
    const estimate = first.events.flatMap((e) => (e.diagnostics ?? []) as { code: string; message: string; line?: number }[]).find((d) => d.code === 'training_estimate');
    expect(estimate?.message).toMatch(/^lora 'shapes_lora': about .+ left, .+ for all 40 steps \(.+ on cpu, timed over \d+ steps?\)$/);
    expect(estimate?.line).toBe(lorafile(40).split('\n').findIndex((l) => l.trim().startsWith('steps:')) + 1);
    expect(existsSync(loraPath(project(), 'resume-state.safetensors'))).toBe(false);

    const info = await inspectSafetensors(loraPath(project()));
    expect(info.kind).toBe('lora');
    expect(info.lora?.fit).toMatchObject({ arch: 'tiny', fits: true });
    expect(info.lora?.ranks).toEqual([2]);
    expect(info.metadata).toMatchObject({ ss_network_dim: '2', ss_steps: '40', ss_base_model_version: 'sd_v1' });
    expect(JSON.parse(info.metadata.ss_tag_frequency)).toEqual({ shapes: { lineart: 4, 'a circle': 1, 'a square': 1, 'a cross': 1, 'two bars': 1 } });
    expect(info.metadata.sshs_model_hash).toMatch(/^[0-9a-f]{64}$/);

    const second = await run(project());
    expect(second.code).toBe(0);
    expect(second.events.filter((e) => e.outcome === 'ran')).toEqual([]);
    expect(trainEvent(second)?.outcome).toBe('fresh');
  }, 600_000);

  it('growing steps 40 -> 60 resumes, and equals a from-scratch 60-step run byte for byte', async () => {
    writeFileSync(join(project(), 'lorafile.yaml'), lorafile(60));
    const extended = await run(project());
    expect(extended.code).toBe(0);
    expect(trainEvent(extended)?.outcome).toBe('ran');
    expect(readFileSync(loraPath(project(), 'train-log.txt'), 'utf8')).toContain('resuming from step 40');

    const scratch = join(tmp.dir, 'scratch');
    await makeProject(scratch, 60);
    const fresh = await run(scratch);
    expect(fresh.code).toBe(0);
    expect(readFileSync(loraPath(scratch, 'train-log.txt'), 'utf8')).not.toContain('resuming');
    expect(readFileSync(loraPath(project())).equals(readFileSync(loraPath(scratch)))).toBe(true);
    expect(readFileSync(loraPath(project(), 'shapes_lora-step00040.safetensors')).equals(readFileSync(loraPath(scratch, 'shapes_lora-step00040.safetensors')))).toBe(true);
  }, 600_000);

  it('publish: copies the final LoRA without retraining, says where, keeps a foreign file, never grows a ComfyUI tree', async () => {
    // HOME is a temp folder: `~/ComfyUI/...` lands there, and the lock says `~/...`, not the folder
    const home = join(tmp.dir, 'home');
    const target = join(home, 'ComfyUI', 'models', 'loras', 'shapes.safetensors');
    const runHome = (args: string[] = []) => runCli(['run', '--json', ...args], { cwd: project(), env: { ...ENV, HOME: home }, timeoutMs: 300_000 });
    writeFileSync(join(project(), 'lorafile.yaml'), `${lorafile(60)}    publish: ~/ComfyUI/models/loras/shapes.safetensors\n`);
    mkdirSync(home);
    const noComfy = await runHome();
    expect(noComfy.code).toBe(2);
    expect(noComfy.stderr).toContain("lorafile.yaml:17:14: error: lora 'shapes_lora': publish: the folder ~/ComfyUI/models/loras does not exist");
    expect(noComfy.events.filter((e) => e.outcome === 'ran')).toEqual([]);
    expect(readdirSync(home)).toEqual([]);

    mkdirSync(join(home, 'ComfyUI', 'models'), { recursive: true });
    const published = await runHome();
    expect(published.code, published.stderr).toBe(0);
    expect(readFileSync(loraPath(project(), 'train-log.txt'), 'utf8')).toContain('restored the 60-step LoRA trained earlier');
    expect(readFileSync(target).equals(readFileSync(loraPath(project())))).toBe(true);
    const summary = published.events.find((e) => e.summary)!.summary as { published: Record<string, string> };
    expect(summary.published).toEqual({ shapes_lora: '~/ComfyUI/models/loras/shapes.safetensors' });
    const lockText = readFileSync(join(project(), 'lorafile.lock'), 'utf8');
    expect((parse(lockText) as { stages: Record<string, { meta: { published: string } }> }).stages['train:shapes_lora'].meta.published).toBe('~/ComfyUI/models/loras/shapes.safetensors');
    expect(lockText).not.toContain(tmp.dir);
    const plain = await runCli(['run'], { cwd: project(), env: { ...ENV, HOME: home } });
    expect(plain.stdout.trimEnd().split('\n').at(-1)).toBe('report: out/report.html');

    const foreign = join(tmp.dir, 'foreign.safetensors');
    writeFileSync(foreign, 'somebody else');
    writeFileSync(join(project(), 'lorafile.yaml'), `${lorafile(60)}    publish: ${foreign}\n`);
    const refused = await run(project());
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain(`${foreign} already exists and is not an earlier version of lora 'shapes_lora'`);
    expect(readFileSync(foreign, 'utf8')).toBe('somebody else');
  }, 600_000);

  it('compile: true on a torch without torch.compile is a warning in the terminal, the log and the report', async () => {
    const probe = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(hasattr(torch, "compile"))'], { encoding: 'utf8' });
    if (probe.stdout.trim() !== 'False') return; // torch 2.x compiles instead: nothing to warn about
    const dir = join(tmp.dir, 'compile');
    await makeProject(dir, 40);
    const text = lorafile(40).replace('steps: 40', 'steps: 4').replace('checkpoint_every: 20', 'checkpoint_every: 4') + '    compile: true\n';
    writeFileSync(join(dir, 'lorafile.yaml'), text);
    const r = await run(dir);
    expect(r.code, r.stderr).toBe(0);
    const said = r.events.flatMap((e) => (e.diagnostics ?? []) as { code: string; message: string; line?: number }[]).find((d) => d.code === 'setting_ignored');
    expect(said?.message).toMatch(/^lora 'shapes_lora': compile: true has no effect: torch \S+ has no torch.compile/);
    expect(said?.line).toBe(text.split('\n').indexOf('    compile: true') + 1);
    expect(readFileSync(loraPath(dir, 'train-log.txt'), 'utf8')).toContain('warning: compile: true has no effect');
    expect(readFileSync(join(dir, 'out', 'report.html'), 'utf8')).toMatch(/<p class="warn">warning: lora &#39;shapes_lora&#39;: compile: true has no effect/);
  }, 600_000);

  it('SIGTERM mid-training keeps a resumable state; the next run resumes from it', async () => {
    const dir = join(tmp.dir, 'term');
    await makeProject(dir, 400);
    const child = startCli(['run', '--json'], { cwd: dir, env: ENV, timeoutMs: 300_000 });
    await waitForLine(child, (line) => {
      try {
        const e = JSON.parse(line) as { stage?: string; progress?: { done: number; unit?: string } };
        return e.stage === 'train:shapes_lora' && e.progress?.unit === 'step' && e.progress.done >= 25;
      } catch {
        return false;
      }
    }, 300_000);
    child.kill('SIGTERM');
    const interrupted = await child.result;
    expect(interrupted.code).toBe(130);
    expect(existsSync(loraPath(dir))).toBe(false);
    // every progress line of long work carries its rate and time left once measurable
    const steps = interrupted.events.filter((e) => e.stage === 'train:shapes_lora' && (e.progress as { unit?: string } | undefined)?.unit === 'step');
    const late = steps.map((e) => e.progress as { done: number; total: number; rate?: number; eta_s?: number }).filter((p) => p.done >= 25);
    expect(late.length).toBeGreaterThan(0);
    for (const p of late) {
      expect(p.rate).toBeGreaterThan(0);
      expect(p.eta_s).toBeCloseTo((p.total - p.done) / p.rate!, -1);
    }
    const encoding = interrupted.events.filter((e) => e.stage === 'train:shapes_lora' && (e.progress as { unit?: string } | undefined)?.unit === 'item');
    expect(encoding.length).toBeGreaterThan(0);

    // finish at 60 steps: the result must be the same bytes as the uninterrupted 60-step run
    writeFileSync(join(dir, 'lorafile.yaml'), lorafile(60));
    const resumed = await run(dir);
    expect(resumed.code).toBe(0);
    expect(readFileSync(loraPath(dir, 'train-log.txt'), 'utf8')).toMatch(/resuming from step \d+ \(an interrupted run\)/);
    expect(readFileSync(loraPath(dir)).equals(readFileSync(loraPath(join(tmp.dir, 'scratch'))))).toBe(true);
  }, 600_000);
});
