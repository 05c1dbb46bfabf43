// Diffusers models on the TypeScript side: which files a build uses (variants, shards, pickles),
// `checkpoint:` naming a local diffusers folder (the worker sees exactly the chosen files), a
// diffusers model's own tokenizer/ taking precedence (local folder and pinned hub snapshot), the
// hubModelFile primitive, and validation/check of a DreamShaper-style lorafile on a machine with
// no tokenizer anywhere.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import type { LockEntry, StageContext } from '../src/engine/types.js';
import { hubModelFile, hubModelFilePin } from '../src/datasets/hub/model-repo.js';
import { chooseDiffusersFiles, DiffusersLayoutError, shardsOf } from '../src/models/diffusers-files.js';
import { modelFacts, resolveModel } from '../src/stages/model.js';
import { clipTokenizerFiles, resolveTokenizer, SHIPPED_CLIP_BPE } from '../src/text/resolve.js';
import { makeTempDir, REPO_ROOT, runCli, writeFiles } from './helpers/cli.js';
import { HubServer, type FixtureFile } from './helpers/hub-server.js';
import { CLIP_TOKENIZER_DIR } from './helpers/reference.js';

const PYTHON = process.env.LORABUILD_TEST_PYTHON ?? '/usr/bin/python3';
let tmp: { dir: string; cleanup: () => void };
let fixture: string;
let hub: HubServer;

/** A CLIP-style tokenizer with only the first `keep` merges: it splits words differently, so it is told apart by ids and identity. */
function truncatedTokenizer(dir: string, keep: number): void {
  const merges = readFileSync(join(CLIP_TOKENIZER_DIR, 'merges.txt'), 'utf8').split('\n').slice(1, 1 + keep);
  const full = JSON.parse(readFileSync(join(CLIP_TOKENIZER_DIR, 'vocab.json'), 'utf8')) as Record<string, number>;
  const byId = Object.entries(full).sort((a, b) => a[1] - b[1]).map(([t]) => t);
  const tokens = [...byId.slice(0, 512), ...merges.map((m) => m.split(' ').join('')), '<|startoftext|>', '<|endoftext|>'];
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(Object.fromEntries(tokens.map((t, i) => [t, i]))));
  writeFileSync(join(dir, 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
}

function contextFor(dir: string, models: string, extra: { previous?: LockEntry; options?: Record<string, unknown> } = {}): StageContext {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'lorafile.yaml');
  const source = `version: 1\nmodels:\n${models}\n`;
  writeFileSync(file, source);
  const config = parseConfig(source, file);
  const hashFile = async (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
  return {
    config,
    root: dir,
    cacheDir: join(dir, 'cache'),
    signal: new AbortController().signal,
    previous: extra.previous,
    options: extra.options ?? {},
    hashFile,
    progress: () => undefined,
    log: () => undefined,
  } as unknown as StageContext;
}

beforeAll(async () => {
  tmp = makeTempDir('lorabuild-models-diffusers-');
  fixture = join(tmp.dir, 'fixture');
  for (const [name, args] of [['plain', []], ['sharded', ['--shards', '2']], ['pickled', ['--pickle-text-encoder']]] as const) {
    const made = spawnSync(PYTHON, [join(REPO_ROOT, 'tests', 'worker_py', 'diffusers_fixture.py'), 'tiny', join(fixture, name), ...args], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(made.stderr);
  }
  hub = await HubServer.start();
}, 120_000);
afterAll(async () => {
  await hub?.stop();
  tmp?.cleanup();
});

describe('which files of a diffusers model a build uses', () => {
  const repo = [
    'model_index.json', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'unet/diffusion_pytorch_model.fp16.safetensors', 'unet/diffusion_pytorch_model.bin',
    'vae/config.json', 'vae/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.fp16.safetensors',
    'text_encoder/config.json', 'text_encoder/model.safetensors', 'text_encoder/model.fp16.safetensors', 'text_encoder/pytorch_model.bin',
    'tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer/special_tokens_map.json', 'safety_checker/model.safetensors', 'v1-5-pruned.safetensors',
  ];

  it('full precision on CPU, the fp16 variant on CUDA; configs and tokenizer; nothing else', () => {
    const cpu = chooseDiffusersFiles(repo, { preferHalf: false, allowPickle: false, where: 'm' });
    expect(cpu.weights.map((w) => w.file)).toEqual(['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors']);
    expect(cpu.small).toEqual(['model_index.json', 'unet/config.json', 'vae/config.json', 'text_encoder/config.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer/special_tokens_map.json']);
    const cuda = chooseDiffusersFiles(repo, { preferHalf: true, allowPickle: false, where: 'm' });
    expect(cuda.weights.map((w) => w.file)).toEqual(['unet/diffusion_pytorch_model.fp16.safetensors', 'vae/diffusion_pytorch_model.fp16.safetensors', 'text_encoder/model.fp16.safetensors']);
    // a repo with only the other variant gets that one
    const halfOnly = repo.filter((p) => !p.endsWith('model.safetensors') || p.includes('fp16') || p.startsWith('safety'));
    expect(chooseDiffusersFiles(halfOnly, { preferHalf: false, allowPickle: true, where: 'm' }).weights.map((w) => w.file)[2]).toBe('text_encoder/model.fp16.safetensors');
  });

  it('sharded weights by their index; pickles only with allow_pickle, named', () => {
    const sharded = ['unet/diffusion_pytorch_model.safetensors.index.json', 'unet/diffusion_pytorch_model-00001-of-00002.safetensors', 'unet/diffusion_pytorch_model-00002-of-00002.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/pytorch_model.bin'];
    expect(() => chooseDiffusersFiles(sharded, { preferHalf: false, allowPickle: false, where: 'model o/n' })).toThrow('model o/n: text_encoder/pytorch_model.bin is a pickled checkpoint and the model has no .safetensors text_encoder weights');
    const choice = chooseDiffusersFiles(sharded, { preferHalf: false, allowPickle: true, where: 'm' });
    expect(choice.weights[0]).toMatchObject({ file: 'unet/diffusion_pytorch_model.safetensors.index.json', sharded: true });
    const index = { weight_map: { a: 'diffusion_pytorch_model-00002-of-00002.safetensors', b: 'diffusion_pytorch_model-00001-of-00002.safetensors' } };
    expect(shardsOf(choice.weights[0].file, index, new Set(sharded))).toEqual(['unet/diffusion_pytorch_model-00001-of-00002.safetensors', 'unet/diffusion_pytorch_model-00002-of-00002.safetensors']);
    expect(() => shardsOf(choice.weights[0].file, { weight_map: { a: '../../evil.safetensors' } }, new Set(sharded))).toThrow(DiffusersLayoutError);
    expect(() => shardsOf(choice.weights[0].file, { weight_map: { a: 'gone.safetensors' } }, new Set(sharded))).toThrow('names unet/gone.safetensors, which the model does not have');
    expect(() => chooseDiffusersFiles(['model_index.json', 'unet/config.json'], { preferHalf: false, allowPickle: false, where: 'model o/n' })).toThrow('model o/n has no unet weights');
  });
});

describe('checkpoint: a local diffusers folder', () => {
  it('trains from exactly the chosen files: a view of links in the lorabuild cache; sharded too', async () => {
    const dir = join(tmp.dir, 'local');
    mkdirSync(dir, { recursive: true });
    cpSync(join(fixture, 'plain', 'diffusers'), join(dir, 'sd'), { recursive: true });
    // the other variant beside it: a CPU build must not pick it up
    cpSync(join(dir, 'sd', 'unet', 'diffusion_pytorch_model.safetensors'), join(dir, 'sd', 'unet', 'diffusion_pytorch_model.fp16.safetensors'));
    const ctx = contextFor(dir, '  sd: { checkpoint: sd }');
    const facts = await modelFacts(ctx, 'sd', { device: 'cpu' });
    expect(facts).toMatchObject({ arch: 'tiny', tokenizerDir: join(dir, 'sd') });
    expect(facts.identity).toMatch(/^diffusers:[0-9a-f]{64}$/);
    const model = await resolveModel(ctx, 'sd', 'cpu');
    expect(model.arch).toBe('tiny');
    expect(model.path.startsWith(join(dir, 'cache', 'models'))).toBe(true);
    const view = (root: string): string[] => readdirSync(root, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? view(join(root, e.name)) : [relative(model.path, join(root, e.name))])).sort();
    expect(view(model.path)).toEqual(['model_index.json', 'text_encoder/config.json', 'text_encoder/model.safetensors', 'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.safetensors'].map((p) => join(...p.split('/'))));
    expect(readlinkSync(join(model.path, 'unet', 'diffusion_pytorch_model.safetensors'))).toBe(join(dir, 'sd', 'unet', 'diffusion_pytorch_model.safetensors'));
    // a CUDA build chooses the fp16 file: another identity
    const cuda = await modelFacts(contextFor(dir, '  sd: { checkpoint: sd }'), 'sd', { device: 'cuda' });
    expect(cuda.identity).not.toBe(facts.identity);

    cpSync(join(fixture, 'sharded', 'diffusers'), join(dir, 'sharded'), { recursive: true });
    const sharded = await resolveModel(contextFor(dir, '  sd: { checkpoint: sharded }'), 'sd', 'cpu');
    expect(readdirSync(join(sharded.path, 'unet')).sort()).toEqual(['config.json', 'diffusion_pytorch_model-00001-of-00002.safetensors', 'diffusion_pytorch_model-00002-of-00002.safetensors', 'diffusion_pytorch_model.safetensors.index.json']);
  });

  it("the folder's tokenizer/ takes precedence over LORABUILD_CLIP_TOKENIZER and the shipped vocabulary", async () => {
    const dir = join(tmp.dir, 'tokenizer-local');
    mkdirSync(join(dir, 'sd15', 'unet'), { recursive: true });
    writeFileSync(join(dir, 'sd15', 'model_index.json'), '{}');
    writeFileSync(join(dir, 'sd15', 'unet', 'config.json'), JSON.stringify({ block_out_channels: [320, 640, 1280, 1280], cross_attention_dim: 768 }));
    truncatedTokenizer(join(dir, 'sd15', 'tokenizer'), 3000);
    const ctx = contextFor(dir, '  sd: { checkpoint: sd15 }');
    const previous = process.env.LORABUILD_CLIP_TOKENIZER;
    process.env.LORABUILD_CLIP_TOKENIZER = CLIP_TOKENIZER_DIR;
    try {
      expect(clipTokenizerFiles(ctx.config, 'sd')).toEqual({ kind: 'hf', vocab: join(dir, 'sd15', 'tokenizer', 'vocab.json'), merges: join(dir, 'sd15', 'tokenizer', 'merges.txt') });
      const own = await resolveTokenizer(ctx.config, 'sd');
      const shipped = await resolveTokenizer(contextFor(join(tmp.dir), '  sd: { checkpoint: nowhere.safetensors }').config, 'sd');
      expect(own.id).not.toBe(shipped.id);
      expect(own.encode('a photograph of a cat').ids).not.toEqual(shipped.encode('a photograph of a cat').ids);
    } finally {
      if (previous === undefined) delete process.env.LORABUILD_CLIP_TOKENIZER;
      else process.env.LORABUILD_CLIP_TOKENIZER = previous;
    }
  });
});

describe('pickled diffusers weights', () => {
  it('are refused by name without allow_pickle, before any compute; with it, the model trains', async () => {
    const dir = join(tmp.dir, 'pickled-project');
    cpSync(join(fixture, 'pickled', 'diffusers'), join(dir, 'sd'), { recursive: true });
    const image = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
    const lorafile = (allow: boolean) =>
      `version: 1\nmodels:\n  sd: { checkpoint: sd${allow ? ', allow_pickle: true' : ''} }\ndatasets:\n  d: { folder: d, rules: { min_size: 64 } }\nloras:\n  l: { model: sd, dataset: d, resolution: 64, rank: 2, steps: 2, checkpoint_every: 2 }\n`;
    writeFiles(dir, { 'lorafile.yaml': lorafile(false), 'd/image/0.png': image, 'd/text/0.txt': 'a red square' });
    const env = { LORABUILD_PYTHON: PYTHON, OMP_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
    const refused = await runCli(['run', 'train:l'], { cwd: dir, env, timeoutMs: 300_000 });
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain('text_encoder/pytorch_model.bin is a pickled checkpoint and the model has no .safetensors text_encoder weights');
    writeFileSync(join(dir, 'lorafile.yaml'), lorafile(true));
    const trained = await runCli(['run', 'train:l'], { cwd: dir, env, timeoutMs: 300_000 });
    expect(trained.code, trained.stdout + trained.stderr).toBe(0);
    expect(existsSync(join(dir, 'out', 'loras', 'l', 'l.safetensors'))).toBe(true);
  }, 300_000);
});

describe('a hub diffusers model brings its own tokenizer', () => {
  it('validation downloads only the small files and tokenizes with the pinned tokenizer/', async () => {
    const dir = join(tmp.dir, 'hub-tokenizer');
    mkdirSync(dir, { recursive: true });
    truncatedTokenizer(join(dir, 'tok'), 3000);
    const files: FixtureFile[] = [
      { path: 'model_index.json', content: Buffer.from('{}') },
      { path: 'unet/config.json', content: Buffer.from(JSON.stringify({ block_out_channels: [320, 640, 1280, 1280], cross_attention_dim: 768 })) },
      { path: 'unet/diffusion_pytorch_model.safetensors', content: Buffer.alloc(5000, 1) },
      { path: 'vae/diffusion_pytorch_model.safetensors', content: Buffer.alloc(4000, 2) },
      { path: 'text_encoder/model.safetensors', content: Buffer.alloc(3000, 3) },
      { path: 'tokenizer/vocab.json', content: readFileSync(join(dir, 'tok', 'vocab.json')) },
      { path: 'tokenizer/merges.txt', content: readFileSync(join(dir, 'tok', 'merges.txt')) },
    ];
    const sha = hub.addRepo('lab/sd15-own-tokenizer', files, { kind: 'model' });
    const image = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 9, g: 9, b: 9 } } }).png().toBuffer();
    writeFiles(dir, {
      'lorafile.yaml': 'version: 1\nmodels:\n  sd: { hub: lab/sd15-own-tokenizer }\ndatasets:\n  d: { folder: d, rules: { min_size: 64 } }\nloras:\n  l: { model: sd, dataset: d, resolution: 64 }\n',
      'd/image/0.png': image,
      'd/text/0.txt': 'a photograph of a cat',
    });
    const env = { HF_HOME: join(dir, 'hf'), HF_ENDPOINT: hub.url, HF_HUB_OFFLINE: undefined, HF_TOKEN: undefined, LORABUILD_CLIP_TOKENIZER: undefined };
    const result = await runCli(['run', 'validate:d', '--json'], { cwd: dir, env });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const snapshot = join(dir, 'hf', 'hub', 'models--lab--sd15-own-tokenizer', 'snapshots', sha);
    // the tokenizer and unet/config.json (what kind of model), no weights
    expect(readdirSync(snapshot).sort()).toEqual(['tokenizer', 'unet']);
    expect(readdirSync(join(snapshot, 'unet'))).toEqual(['config.json']);
    const lock = parseYaml(readFileSync(join(dir, 'lorafile.lock'), 'utf8')) as { stages: Record<string, { params: Record<string, unknown> }> };
    const params = lock.stages['validate:d'].params;
    const own = await resolveTokenizer(contextFor(join(dir, 'tok-check'), '  sd: { checkpoint: x, tokenizer: ../tok }').config, 'sd');
    expect(params.tokenizer).toBe(own.id);
    expect(params.model_hub).toMatchObject({ hub: 'lab/sd15-own-tokenizer', commit: sha, arch: 'sd15' });
    hub.clearLog();
    expect((await runCli(['run', 'validate:d', '--json'], { cwd: dir, env })).code).toBe(0);
    expect(hub.log).toEqual([]);
  }, 120_000);
});

describe('hubModelFile: one pinned file of a model repo, for any stage', () => {
  it('downloads into the HF cache and pins the commit; a stage that recorded the pin makes no request; --update moves it', async () => {
    const dir = join(tmp.dir, 'primitive');
    mkdirSync(dir, { recursive: true });
    const lora = Buffer.from('pretend LoRA bytes, any file works');
    const first = hub.addRepo('lab/loras', [{ path: '80s_offset.safetensors', content: lora }], { kind: 'model' });
    const previousHome = process.env.HF_HOME;
    const previousEndpoint = process.env.HF_ENDPOINT;
    process.env.HF_HOME = join(dir, 'hf');
    process.env.HF_ENDPOINT = hub.url;
    try {
      const ref = { repo: 'lab/loras', file: '80s_offset.safetensors' };
      hub.clearLog();
      const pin = await hubModelFilePin(contextFor(dir, '  m: { builtin: tiny }'), ref);
      expect(pin).toMatchObject({ hub: 'lab/loras', revision: 'main', commit: first, file: '80s_offset.safetensors' });
      expect(hub.contentRequests()).toEqual([]);
      const got = await hubModelFile(contextFor(dir, '  m: { builtin: tiny }'), ref);
      expect(got).toEqual({ path: join(dir, 'hf', 'hub', 'models--lab--loras', 'snapshots', first, '80s_offset.safetensors'), sha256: createHash('sha256').update(lora).digest('hex'), commit: first });
      expect(readFileSync(got.path).equals(lora)).toBe(true);

      // main moves; a stage whose params hold the pin (anywhere in them) stays on it without a request
      const second = hub.commit('lab/loras', [{ path: '80s_offset.safetensors', content: Buffer.from('v2') }], 'main', 'model');
      const previous = { fingerprint: 'x', params: { loras: [{ name: 'a', pin: pin as never }] }, files: {}, upstream: {}, outputs: {}, meta: null } as LockEntry;
      hub.clearLog();
      expect((await hubModelFile(contextFor(dir, '  m: { builtin: tiny }', { previous }), ref)).commit).toBe(first);
      expect(hub.log).toEqual([]);
      const moved = await hubModelFile(contextFor(dir, '  m: { builtin: tiny }', { previous, options: { update: ['lab/loras'] } }), ref);
      expect(moved.commit).toBe(second);
    } finally {
      if (previousHome === undefined) delete process.env.HF_HOME;
      else process.env.HF_HOME = previousHome;
      if (previousEndpoint === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = previousEndpoint;
    }
  });
});

describe('a DreamShaper-style lorafile on a machine without any tokenizer', () => {
  it('validates with the shipped CLIP vocabulary, and check re-runs validation the same in a fresh clone', async () => {
    const dir = join(tmp.dir, 'dreamshaper');
    const home = join(tmp.dir, 'empty-home');
    mkdirSync(home, { recursive: true });
    const image = await sharp({ create: { width: 512, height: 512, channels: 3, background: { r: 200, g: 10, b: 10 } } }).png().toBuffer();
    const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
    writeFiles(dir, {
      'lorafile.yaml': [
        'version: 1',
        'models:',
        '  dreamshaper8:',
        '    checkpoint: ~/ComfyUI/models/checkpoints/DreamShaper_8_pruned.safetensors',
        'datasets:',
        '  one-line-art: { folder: one-line-art, trigger: one-line-art }',
        'loras:',
        '  line_lora: { model: dreamshaper8, dataset: one-line-art }',
        '',
      ].join('\n'),
      'one-line-art/image/0.png': image,
      'one-line-art/text/0.txt': 'one-line-art, a photo of a cat',
      'one-line-art/image/1.png': image,
      'one-line-art/text/1.txt': `one-line-art, ${long}`,
    });
    // nothing anywhere: no HOME caches, no HF cache, no LORABUILD_CLIP_TOKENIZER, no ComfyUI
    const env = { HOME: home, XDG_CACHE_HOME: undefined, HF_HOME: undefined, HF_HUB_CACHE: undefined, LORABUILD_CLIP_TOKENIZER: undefined, HF_HUB_OFFLINE: '1' };
    const validated = await runCli(['run', 'validate:one-line-art', '--json'], { cwd: dir, env });
    expect(validated.code, validated.stdout + validated.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, 'out', 'datasets', 'one-line-art', 'validation.json'), 'utf8')) as { tokenizer: { id: string; reason: string }; items: Array<{ tokens?: number }> };
    const shipped = await resolveTokenizer(contextFor(join(tmp.dir, 'shipped'), `  sd: { checkpoint: nowhere.safetensors, tokenizer: ${SHIPPED_CLIP_BPE} }`).config, 'sd');
    expect(report.tokenizer.id).toBe(shipped.id);
    expect(JSON.stringify(report)).toContain('too_long');
    expect(validated.stdout + validated.stderr).not.toContain('no CLIP tokenizer');

    // a grader's fresh clone: the same validation again, from nothing but the repository
    const clone = join(tmp.dir, 'dreamshaper-clone');
    cpSync(dir, clone, { recursive: true });
    rmSync(join(clone, 'cache'), { recursive: true, force: true });
    const check = await runCli(['check', '--json'], { cwd: clone, env });
    const stages = check.events.filter((e) => typeof e.stage === 'string');
    expect(stages.find((s) => s.stage === 'validate:one-line-art')).toMatchObject({ status: 'ok', mode: 'rerun' });
    expect(check.stdout + check.stderr).not.toContain('no CLIP tokenizer');
    // the LoRA (and so the report) was never built here (no checkpoint on this machine), which check says, and nothing else
    expect(stages.filter((s) => s.status !== 'ok').map((s) => s.stage)).toEqual(['train:line_lora', 'report']);
    expect(existsSync(join(home, '.cache'))).toBe(false);
  }, 120_000);
});

