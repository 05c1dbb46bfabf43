// train and render as Slurm jobs on a real single-node Slurm (slurm-wlm + munge on 127.0.0.1,
// scripts/services/slurm.sh): jobs are submitted, their progress streams into the run, Ctrl-C
// scancels the job with its state kept, and the next run resumes and ends bit-identical to a local
// run; a job that dies resumes from its last checkpoint; a job waiting in the queue shows as pending.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, runCli, startCli, waitForLine, writeFiles, type CliResult } from './helpers/cli.js';
import { startSlurm, type SlurmCluster } from './helpers/services.js';
import { writeRingShapes } from './helpers/shapes.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1', LORABUILD_SLURM_POLL_MS: '200' };

function lorafile(seed = 0): string {
  return `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora: { model: tiny, dataset: shapes, rank: 2, learning_rate: 1.0e-3, steps: 40, checkpoint_every: 5, seed: ${seed}, resolution: 64 }
renders:
  ab: { lora: shapes_lora, prompts: ["lineart, a circle"], seeds: [0], strengths: [0, 1], steps: 3, cfg: 5 }
`;
}

let tmp: { dir: string; cleanup: () => void };
let slurm: SlurmCluster;
const origin = () => join(tmp.dir, 'origin');
function clone(name: string, seed = 0): string {
  const dir = join(tmp.dir, name);
  cpSync(origin(), dir, { recursive: true });
  writeFileSync(join(dir, 'lorafile.yaml'), lorafile(seed));
  return dir;
}
const env = () => ({ ...ENV, ...slurm.env });
const final = (r: CliResult, stage: string) => r.events.find((e) => e.stage === stage && e.item === undefined && typeof e.outcome === 'string' && e.outcome !== 'started');
const lora = (dir: string) => readFileSync(join(dir, 'out', 'loras', 'shapes_lora', 'shapes_lora.safetensors'));
const grid = (dir: string) => readFileSync(join(dir, 'out', 'renders', 'ab', 'grid.png'));
const trainLog = (dir: string) => readFileSync(join(dir, 'out', 'loras', 'shapes_lora', 'train-log.txt'), 'utf8');
const squeue = () => execFileSync('squeue', ['-h', '-o', '%i %T %j'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).trim();
const trainStep = (line: string, atLeast: number) => {
  if (!line.includes('"train:shapes_lora"') || !line.includes('"progress"')) return false;
  const e = JSON.parse(line) as { progress?: { done: number; unit?: string } };
  return e.progress?.unit === 'step' && e.progress.done >= atLeast;
};

beforeAll(async () => {
  tmp = makeTempDir('lorabuild-slurm-');
  slurm = startSlurm(join(tmp.dir, 'slurm'));
  writeFiles(origin(), { 'lorafile.yaml': lorafile() });
  await writeRingShapes(origin(), ['lineart, shape 0', 'lineart, shape 1', 'lineart, shape 2']);
});
afterAll(() => {
  slurm?.stop();
  tmp?.cleanup();
});

describe('executor: slurm (real slurmctld + slurmd on 127.0.0.1)', () => {
  it('Ctrl-C scancels the training job with its state kept; the next run resumes and equals a local run', async () => {
    const local = clone('local');
    const reference = await runCli(['run', '--json'], { cwd: local, env: ENV, timeoutMs: 300_000 });
    expect(reference.code).toBe(0);

    const s = clone('s');
    const child = startCli(['run', '--json', '--executor', 'slurm'], { cwd: s, env: env(), timeoutMs: 300_000 });
    await waitForLine(child, (line) => trainStep(line, 12), 240_000); // progress streams from the job's event file
    expect(squeue()).toMatch(/^\d+ RUNNING lorabuild-train$/m);
    child.kill('SIGINT');
    const stopped = await child.result;
    expect(stopped.code).toBe(130);
    expect(squeue()).not.toMatch(/lorabuild-train/); // the job is gone, not left running
    // the job got SIGTERM, saved its state and said so in its event file
    const jobs = readdirSync(join(s, 'cache', 'cluster', 'jobs')).filter((name) => name.startsWith('train-'));
    expect(jobs).toHaveLength(1);
    expect(readFileSync(join(s, 'cache', 'cluster', 'jobs', jobs[0], 'events.jsonl'), 'utf8')).toMatch(/"code":"cancelled","message":"train: cancelled after step \d+; resumable state in/);

    const resumed = await runCli(['run', '--json', '--executor', 'slurm'], { cwd: s, env: env(), timeoutMs: 300_000 });
    expect(resumed.stderr).not.toMatch(/internal error/);
    expect(resumed.code).toBe(0);
    expect(final(resumed, 'train:shapes_lora')?.outcome).toBe('ran');
    expect(final(resumed, 'render:ab')?.outcome).toBe('ran');
    expect(trainLog(s)).toMatch(/resuming from step (1[2-9]|[2-3]\d) \(an interrupted run\)/);
    expect(lora(s).equals(lora(local))).toBe(true);
    expect(grid(s).equals(grid(local))).toBe(true);
    // the key names the nodes' device class (from the job's own hello), so it matches the local CPU run
    expect(readFileSync(join(s, 'lorafile.lock'), 'utf8')).toContain('device: cpu');
  }, 900_000);

  it('doctor reports the cluster of the lorafile and what sinfo says about it; bad cluster flags are usage errors', async () => {
    const dir = clone('doctor');
    writeFileSync(join(dir, 'lorafile.yaml'), `${lorafile()}cluster:\n  executor: slurm\n  partition: debug\n  time: "30:00"\n`);
    const doctor = await runCli(['doctor'], { cwd: dir, env: env(), timeoutMs: 120_000 });
    expect(doctor.stdout).toMatch(/^cluster {2}slurm \(partition debug, time 30:00\): debug \(default\) up, 1 node\(s\) idle/m);
    const bad = await runCli(['run', '--time', 'soon'], { cwd: dir, env: env() });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--time: a Slurm time limit: MINUTES, HH:MM:SS or D-HH:MM:SS/);
  }, 300_000);

  it('a job waiting in the queue shows as pending; a job that dies resumes from its last checkpoint', async () => {
    const d = clone('d', 1);
    const child = startCli(['run', '--json', '--executor', 'slurm'], { cwd: d, env: env(), timeoutMs: 300_000 });
    // once training starts (it encodes locally first), hold the whole node for a few seconds so the job has to wait
    await waitForLine(child, (line) => line.includes('"train:shapes_lora"') && line.includes('"started"'), 240_000);
    const blocker = execFileSync('sbatch', ['--parsable', '--exclusive', '-o', '/dev/null', '--wrap', 'sleep 6'], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).trim();
    const pending = await waitForLine(child, (line) => line.includes('"train:shapes_lora"') && /slurm job \d+ pending/.test(line), 120_000);
    expect(JSON.parse(pending)).toMatchObject({ progress: { done: 0, unit: 'step' } });
    await waitForLine(child, (line) => trainStep(line, 16), 240_000);
    const jobId = squeue().match(/^(\d+) RUNNING lorabuild-train$/m)![1];
    expect(jobId).not.toBe(blocker);
    // the job dies without a word (a node crash, the OOM killer): SIGKILL to its processes
    const pids = execFileSync('scontrol', ['listpids', jobId], { env: { ...process.env, ...slurm.env }, encoding: 'utf8' }).split('\n').slice(1).map((l) => Number(l.trim().split(/\s+/)[0])).filter((p) => p > 0);
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const died = await child.result;
    expect(died.code).toBe(1);
    expect(final(died, 'train:shapes_lora')).toMatchObject({ outcome: 'failed', reason: expect.stringMatching(/slurm job \d+ \(train\) ended (FAILED|COMPLETED) without a result/) });

    const again = await runCli(['run', '--json', '--executor', 'slurm'], { cwd: d, env: env(), timeoutMs: 300_000 });
    expect(again.code).toBe(0);
    expect(trainLog(d)).toMatch(/resuming from step (15|20|25|30|35) \(an interrupted run\)/);

    // and the same lorafile built locally from scratch gives the same bytes
    const ref = clone('d-local', 1);
    expect((await runCli(['run', '--json', 'shapes_lora'], { cwd: ref, env: ENV, timeoutMs: 300_000 })).code).toBe(0);
    expect(lora(d).equals(lora(ref))).toBe(true);
  }, 900_000);
});
