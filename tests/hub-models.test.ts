// Base models from the hub, end to end through the CLI and a loopback hub: a single-file model
// (`hub:` + `file:`) and a diffusers repo (`hub:` alone), both lorabuild's tiny architecture with
// the same weights (written by tests/worker_py/diffusers_fixture.py under real diffusers names).
// They download into the HF cache (only the files a build needs), train and render; the second run
// makes no request; offline works with the hub gone; a gated repo needs the token; a fresh clone's
// `check` needs neither the hub nor the weights. LDM single file and diffusers layout give
// byte-identical LoRA tensors and identical pixels.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import sharp from 'sharp';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensorsHeader, readTensorBytes } from '../src/safetensors/io.js';
import { makeTempDir, REPO_ROOT, runCli, writeFiles, type CliResult } from './helpers/cli.js';
import { HubServer, type FixtureFile } from './helpers/hub-server.js';
import { writeRingShapes } from './helpers/shapes.js';

const PYTHON = process.env.LORABUILD_TEST_PYTHON ?? '/usr/bin/python3';
const ENV = { LORABUILD_PYTHON: PYTHON, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const CAPTIONS = ['lineart, a circle', 'lineart, a square', 'lineart, a cross'];

let hub: HubServer;
let tmp: { dir: string; cleanup: () => void };
let singleSha: string;
let diffusersSha: string;
/** repo path -> bytes of the diffusers fixture, and of the junk a real repo also carries */
let diffusersFiles: FixtureFile[];

function filesUnder(root: string): FixtureFile[] {
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
  return walk(root).map((abs) => ({ path: relative(root, abs).split('\\').join('/'), content: readFileSync(abs) }));
}

function lorafile(models: string, loras: string[]): string {
  return [
    'version: 1',
    'models:',
    models.replace(/^/gm, '  '),
    'datasets:',
    '  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }',
    'loras:',
    ...loras.map((name) => `  l_${name}: { model: ${name}, dataset: shapes, rank: 2, learning_rate: 1.0e-3, steps: 3, checkpoint_every: 3, resolution: 64 }`),
    'renders:',
    ...loras.map((name) => `  r_${name}: { lora: l_${name}, prompts: ["lineart, a circle"], seeds: [1], strengths: [0, 1], steps: 3, sampler: euler }`),
    '',
  ].join('\n');
}

async function project(dir: string, models: string, loras: string[]): Promise<void> {
  writeFiles(dir, { 'lorafile.yaml': lorafile(models, loras) });
  await writeRingShapes(dir, CAPTIONS);
}

function run(cwd: string, args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(['run', '--json', ...args], {
    cwd,
    timeoutMs: 400_000,
    env: { ...ENV, HF_HOME: join(cwd, 'hf'), HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: undefined, HF_HUB_CACHE: undefined, HF_TOKEN: undefined, ...env },
  });
}

const outcomes = (r: CliResult) =>
  Object.fromEntries(r.events.filter((e) => typeof e.stage === 'string' && !e.item && ['fresh', 'cached', 'ran', 'failed', 'skipped'].includes(e.outcome as string)).map((e) => [e.stage, e.outcome]));

const snapshotFiles = (cwd: string, repo: string, sha: string): string[] => {
  const root = join(cwd, 'hf', 'hub', `models--${repo.replace('/', '--')}`, 'snapshots', sha);
  const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [relative(root, join(dir, e.name))]));
  return walk(root).sort();
};

async function loraTensors(file: string): Promise<Map<string, Buffer>> {
  const header = await readSafetensorsHeader(file);
  const out = new Map<string, Buffer>();
  for (const [name, info] of header.tensors) out.set(name, await readTensorBytes(file, info));
  return out;
}

async function pixels(dir: string): Promise<Buffer[]> {
  const cells = join(dir, 'cells');
  const files = existsSync(cells) ? readdirSync(cells).filter((f) => f.endsWith('.png')).sort() : [];
  return Promise.all(files.map((f) => sharp(join(cells, f)).raw().toBuffer()));
}

beforeAll(async () => {
  tmp = makeTempDir('lorabuild-hub-models-');
  const fixture = join(tmp.dir, 'fixture');
  const made = spawnSync(PYTHON, [join(REPO_ROOT, 'tests', 'worker_py', 'diffusers_fixture.py'), 'tiny', fixture, '--seed', '5'], { encoding: 'utf8', env: { ...process.env, ...ENV } });
  if (made.status !== 0) throw new Error(`diffusers_fixture.py failed: ${made.stderr}`);
  hub = await HubServer.start();
  singleSha = hub.addRepo('lab/tiny-single', [
    { path: 'tiny-sd.safetensors', content: readFileSync(join(fixture, 'ldm.safetensors')) },
    { path: 'README.md', content: Buffer.from('# tiny\n') },
  ], { kind: 'model' });
  diffusersFiles = filesUnder(join(fixture, 'diffusers'));
  const unet = diffusersFiles.find((f) => f.path === 'unet/diffusion_pytorch_model.safetensors')!;
  diffusersSha = hub.addRepo('lab/tiny-diffusers', [
    ...diffusersFiles,
    // what real repos also hold, which a CPU build must not download
    { path: 'unet/diffusion_pytorch_model.fp16.safetensors', content: unet.content },
    { path: 'unet/diffusion_pytorch_model.bin', content: Buffer.from('not loaded') },
    { path: 'safety_checker/model.safetensors', content: Buffer.from('x'.repeat(1000)) },
    { path: 'tiny-sd-single.safetensors', content: readFileSync(join(fixture, 'ldm.safetensors')) },
    { path: 'README.md', content: Buffer.from('# tiny diffusers\n') },
  ], { kind: 'model' });
  hub.addRepo('lab/tiny-gated', [{ path: 'tiny-sd.safetensors', content: readFileSync(join(fixture, 'ldm.safetensors')) }], { kind: 'model', gated: ['hf_student'] });
}, 120_000);

afterAll(async () => {
  await hub?.stop();
  tmp?.cleanup();
});

describe('hub models through the CLI', () => {
  const dir = () => join(tmp.dir, 'p');

  it('a single-file and a diffusers model download into the HF cache, train and render; the second run makes no request', async () => {
    await project(dir(), 'single: { hub: lab/tiny-single, file: tiny-sd.safetensors }\ndiff: { hub: lab/tiny-diffusers }', ['single', 'diff']);
    const first = await run(dir(), []);
    expect(first.code, first.stderr + first.stdout).toBe(0);
    expect(outcomes(first)).toMatchObject({ 'train:l_single': 'ran', 'train:l_diff': 'ran', 'render:r_single': 'ran', 'render:r_diff': 'ran' });

    // the standard HF cache layout, only the files a CPU build needs, refs/main written after the links
    expect(snapshotFiles(dir(), 'lab/tiny-single', singleSha)).toEqual(['tiny-sd.safetensors']);
    expect(snapshotFiles(dir(), 'lab/tiny-diffusers', diffusersSha)).toEqual(
      ['model_index.json', 'text_encoder/config.json', 'text_encoder/model.safetensors', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.safetensors'].map((p) => join(...p.split('/'))),
    );
    expect(readFileSync(join(dir(), 'hf', 'hub', 'models--lab--tiny-diffusers', 'refs', 'main'), 'utf8')).toBe(diffusersSha);
    // each file once; the header of the single file came by two small Range requests before its download
    const downloads = hub.contentRequests().filter((r) => !r.range).map((r) => r.path);
    expect(new Set(downloads).size).toBe(downloads.length);
    expect(hub.contentRequests().filter((r) => r.range).map((r) => r.range)).toEqual(['bytes=0-7', expect.stringMatching(/^bytes=8-\d+$/)]);

    // the lock pins both commits and every file's hash
    const lock = parseYaml(readFileSync(join(dir(), 'lorafile.lock'), 'utf8')) as { stages: Record<string, { params: Record<string, { commit?: string; arch?: string; files?: Record<string, unknown> }> }> };
    expect(lock.stages['train:l_single'].params.model_hub).toMatchObject({ hub: 'lab/tiny-single', revision: 'main', commit: singleSha, file: 'tiny-sd.safetensors', arch: 'tiny' });
    expect(lock.stages['train:l_diff'].params.model_hub).toMatchObject({ hub: 'lab/tiny-diffusers', commit: diffusersSha, file: null, arch: 'tiny' });
    expect(lock.stages['render:r_diff'].params.model_hub).toMatchObject({ commit: diffusersSha });
    expect(lock.stages['validate:shapes'].params.model_hub).toMatchObject({ commit: singleSha });

    hub.clearLog();
    const second = await run(dir(), []);
    expect(second.code).toBe(0);
    expect(second.events.filter((e) => e.outcome === 'ran')).toEqual([]);
    expect(hub.log).toEqual([]);
  }, 600_000);

  it('the LDM single file and the diffusers layout of the same weights give identical LoRAs and images', async () => {
    const single = join(dir(), 'out', 'loras', 'l_single', 'l_single.safetensors');
    const diff = join(dir(), 'out', 'loras', 'l_diff', 'l_diff.safetensors');
    const [a, b] = await Promise.all([loraTensors(single), loraTensors(diff)]);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    expect(a.size).toBeGreaterThan(10);
    for (const [name, bytes] of a) expect(bytes.equals(b.get(name)!), name).toBe(true);
    const [pa, pb] = await Promise.all([pixels(join(dir(), 'out', 'renders', 'r_single')), pixels(join(dir(), 'out', 'renders', 'r_diff'))]);
    expect(pa.length).toBe(2);
    pa.forEach((p, i) => expect(p.equals(pb[i])).toBe(true));
  });

  it('offline with the hub gone: builds from the HF cache alone', async () => {
    const stopped = await HubServer.start();
    try {
      const away = join(tmp.dir, 'away');
      cpSync(dir(), away, { recursive: true });
      // no lock, no outputs, no lorabuild cache: the pins come from the HF cache's refs and file lists
      for (const gone of ['cache', 'out', 'lorafile.lock']) rmSync(join(away, gone), { recursive: true, force: true });
      await stopped.stop();
      const offline = await run(away, [], { HF_HUB_OFFLINE: '1', HF_ENDPOINT: stopped.url });
      expect(offline.code, offline.stderr + offline.stdout).toBe(0);
      expect(outcomes(offline)).toMatchObject({ 'train:l_single': 'ran', 'train:l_diff': 'ran', 'render:r_diff': 'ran' });
      // the same commits as online, and the same LoRA
      expect(readFileSync(join(away, 'lorafile.lock'), 'utf8')).toContain(diffusersSha);
      const [a, b] = await Promise.all([loraTensors(join(away, 'out', 'loras', 'l_diff', 'l_diff.safetensors')), loraTensors(join(dir(), 'out', 'loras', 'l_diff', 'l_diff.safetensors'))]);
      for (const [name, bytes] of a) expect(bytes.equals(b.get(name)!), name).toBe(true);
    } finally {
      await stopped.stop().catch(() => undefined);
    }
  }, 600_000);

  it('a fresh clone checks with neither the hub, nor the HF cache, nor the weights', async () => {
    const clone = join(tmp.dir, 'clone');
    cpSync(dir(), clone, { recursive: true });
    rmSync(join(clone, 'cache'), { recursive: true, force: true });
    rmSync(join(clone, 'hf'), { recursive: true, force: true });
    hub.clearLog();
    const check = await runCli(['check'], { cwd: clone, env: { ...ENV, HF_HOME: join(clone, 'hf'), HF_HUB_OFFLINE: '1', HF_ENDPOINT: hub.url } });
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain('ok: the lock, the inputs and the artifacts agree');
    expect(hub.log).toEqual([]);
    expect(existsSync(join(clone, 'hf', 'hub', 'models--lab--tiny-single'))).toBe(false);
  }, 300_000);

  it('a gated model repo needs the token; with it, the model downloads', async () => {
    const gated = join(tmp.dir, 'gated');
    await project(gated, 'g: { hub: lab/tiny-gated, file: tiny-sd.safetensors }', ['g']);
    const refused = await run(gated, ['train:l_g']);
    expect(refused.code).not.toBe(0);
    const text = refused.stdout + refused.stderr;
    expect(text).toContain("model 'g': model lab/tiny-gated is gated (401)");
    expect(text).toContain(`accept the conditions at ${hub.url}/lab/tiny-gated, then set HF_TOKEN`);
    expect(existsSync(join(gated, 'hf', 'hub', 'models--lab--tiny-gated', 'blobs'))).toBe(false);
    const allowed = await run(gated, ['train:l_g'], { HF_TOKEN: 'hf_student' });
    expect(allowed.code, allowed.stdout + allowed.stderr).toBe(0);
    expect(statSync(join(gated, 'hf', 'hub', 'models--lab--tiny-gated', 'snapshots', readFileSync(join(gated, 'hf', 'hub', 'models--lab--tiny-gated', 'refs', 'main'), 'utf8'), 'tiny-sd.safetensors')).size).toBeGreaterThan(1000);
  }, 600_000);

  it('names a file the repo does not have, and a repo that is not a diffusers model, before downloading anything', async () => {
    const wrong = join(tmp.dir, 'wrong-file');
    await project(wrong, 'wrong: { hub: lab/tiny-single, file: tiny-sd-v2.safetensors }', ['wrong']);
    hub.clearLog();
    const missing = await run(wrong, []);
    expect(missing.code).not.toBe(0);
    expect(missing.stdout + missing.stderr).toContain(`model 'wrong': model lab/tiny-single at ${singleSha} has no file tiny-sd-v2.safetensors`);
    expect(missing.stdout + missing.stderr).toContain('its weight files: tiny-sd.safetensors');
    const notDiffusers = join(tmp.dir, 'not-diffusers');
    await project(notDiffusers, 'plain: { hub: lab/tiny-single }', ['plain']);
    const plain = await run(notDiffusers, []);
    expect(plain.code).not.toBe(0);
    expect(plain.stdout + plain.stderr).toContain(`model 'plain': model lab/tiny-single at ${singleSha} is not a diffusers model (no model_index.json or unet/)`);
    expect(plain.stdout + plain.stderr).toContain('set `file:` to one of tiny-sd.safetensors');
    expect(hub.contentRequests()).toEqual([]);
  }, 300_000);

  it('refuses an SDXL file by its header, before downloading its weights', async () => {
    const { writeSafetensors } = await import('../src/safetensors/io.js');
    const xl = join(tmp.dir, 'xl.safetensors');
    const zeros = (shape: number[]) => ({ dtype: 'F16' as const, shape, data: Buffer.alloc(shape.reduce((a, b) => a * b, 1) * 2) });
    await writeSafetensors(xl, { 'model.diffusion_model.input_blocks.0.0.weight': zeros([320, 4, 3, 3]), 'conditioner.embedders.0.transformer.text_model.final_layer_norm.weight': zeros([768]), 'model.diffusion_model.out.2.weight': zeros([4, 320, 3, 3, 64]) });
    hub.addRepo('lab/sdxl', [{ path: 'sdxl.safetensors', content: readFileSync(xl) }], { kind: 'model' });
    const project2 = join(tmp.dir, 'sdxl');
    await project(project2, 'xl: { hub: lab/sdxl, file: sdxl.safetensors }', ['xl']);
    hub.clearLog();
    const result = await run(project2, []);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toContain("model 'xl': lab/sdxl/sdxl.safetensors is an SDXL model; lorabuild trains SD1.x");
    expect(hub.contentRequests().every((r) => r.range !== undefined)).toBe(true);
  }, 300_000);
});
