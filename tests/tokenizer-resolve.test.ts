// Where the CLIP tokenizer files are found for a model: real folders in a temp dir that link to the
// reference files (shared/reference is test data and is never copied into the project).
import { CLIP_TOKENIZER_DIR } from './helpers/reference.js';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { resolveClipTokenizer, resolveTokenizer, tokenizerForDataset, TokenizerNotFoundError } from '../src/text/resolve.js';
import { loadClipTokenizer } from '../src/text/load.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const REF = CLIP_TOKENIZER_DIR;
const tmp = makeTempDir('lorabuild-resolve-');
const EMPTY_ENV = { HF_HUB_CACHE: join(tmp.dir, 'empty-hf-cache') };
let clipId: string;

function linkHfFiles(folder: string): void {
  mkdirSync(folder, { recursive: true });
  symlinkSync(join(REF, 'vocab.json'), join(folder, 'vocab.json'));
  symlinkSync(join(REF, 'merges.txt'), join(folder, 'merges.txt'));
}

function config(dir: string, models: string, extra = ''): ReturnType<typeof parseConfig> {
  const file = join(dir, 'lorafile.yaml');
  const source = `version: 1\nmodels:\n${models}\n${extra}`;
  writeFileSync(file, source);
  return parseConfig(source, file);
}

beforeAll(async () => {
  clipId = (await loadClipTokenizer({ kind: 'openai', bpe: join(REF, 'bpe_simple_vocab_16e6.txt.gz') })).id;
});
afterAll(tmp.cleanup);

describe('resolveTokenizer', () => {
  it('gives builtin tiny models the byte tokenizer', async () => {
    const dir = join(tmp.dir, 'tiny');
    mkdirSync(dir);
    expect((await resolveTokenizer(config(dir, '  tiny: { builtin: tiny }'), 'tiny')).id).toBe('byte-v1');
  });

  it('uses the model tokenizer: setting (a .gz file), relative to the lorafile', async () => {
    const dir = join(tmp.dir, 'setting');
    mkdirSync(join(dir, 'tok'), { recursive: true });
    symlinkSync(join(REF, 'bpe_simple_vocab_16e6.txt.gz'), join(dir, 'tok', 'bpe_simple_vocab_16e6.txt.gz'));
    const c = config(dir, '  sd: { checkpoint: nowhere/model.safetensors, tokenizer: tok/bpe_simple_vocab_16e6.txt.gz }');
    const t = await resolveTokenizer(c, 'sd');
    expect(t.id).toBe(clipId);
    expect(t.encode('a photo of a cat').ids).toEqual([320, 1125, 539, 320, 2368]);
  });

  it('reports a tokenizer: setting that holds no tokenizer instead of looking elsewhere', async () => {
    const dir = join(tmp.dir, 'bad-setting');
    mkdirSync(join(dir, 'empty'), { recursive: true });
    const c = config(dir, '  sd: { checkpoint: m.safetensors, tokenizer: empty }');
    await expect(resolveTokenizer(c, 'sd')).rejects.toThrow(`tokenizer: empty (${join(dir, 'empty')}) holds no vocab.json + merges.txt`);
  });

  it("finds vocab.json + merges.txt in the checkpoint's tokenizer/ subfolder", async () => {
    const dir = join(tmp.dir, 'diffusers');
    linkHfFiles(join(dir, 'models', 'tokenizer'));
    const c = config(dir, '  sd: { checkpoint: models/model.safetensors }');
    expect((await resolveClipTokenizer(c, 'sd', EMPTY_ENV)).id).toBe(clipId);
  });

  it("finds ComfyUI's comfy/sd1_tokenizer from a checkpoint in ComfyUI/models/checkpoints/", async () => {
    const dir = join(tmp.dir, 'comfy');
    linkHfFiles(join(dir, 'ComfyUI', 'comfy', 'sd1_tokenizer'));
    mkdirSync(join(dir, 'ComfyUI', 'models', 'checkpoints', 'sd15'), { recursive: true });
    const c = config(dir, '  sd: { checkpoint: ComfyUI/models/checkpoints/sd15/DreamShaper_8_pruned.safetensors }');
    expect((await resolveClipTokenizer(c, 'sd', EMPTY_ENV)).id).toBe(clipId);
  });

  it('falls back to LORABUILD_CLIP_TOKENIZER, then the Hugging Face cache', async () => {
    const dir = join(tmp.dir, 'env');
    mkdirSync(dir);
    const c = config(dir, '  sd: { checkpoint: m.safetensors }');
    expect((await resolveClipTokenizer(c, 'sd', { ...EMPTY_ENV, LORABUILD_CLIP_TOKENIZER: REF })).id).toBe(clipId);
    const hf = join(tmp.dir, 'hf');
    linkHfFiles(join(hf, 'models--openai--clip-vit-large-patch14', 'snapshots', '0123abc'));
    expect((await resolveClipTokenizer(c, 'sd', { HF_HUB_CACHE: hf })).id).toBe(clipId);
  });

  it('lists every place it looked when nothing is found', async () => {
    const dir = join(tmp.dir, 'none');
    mkdirSync(join(dir, 'ComfyUI', 'models', 'checkpoints'), { recursive: true });
    const c = config(dir, '  sd: { checkpoint: ComfyUI/models/checkpoints/x.safetensors }');
    const err = await resolveClipTokenizer(c, 'sd', EMPTY_ENV).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenizerNotFoundError);
    const message = (err as Error).message;
    expect(message).toContain("no CLIP tokenizer found for model 'sd'; looked in:");
    expect(message).toContain(`  - the checkpoint's folder: ${join(dir, 'ComfyUI', 'models', 'checkpoints')}`);
    expect(message).toContain(`  - the ComfyUI install of the checkpoint: ${join(dir, 'ComfyUI', 'comfy', 'sd1_tokenizer')}`);
    expect(message).toContain('  - LORABUILD_CLIP_TOKENIZER: (not set)');
    expect(message).toContain(`  - the Hugging Face cache (openai/clip-vit-large-patch14): ${join(tmp.dir, 'empty-hf-cache', 'models--openai--clip-vit-large-patch14', 'snapshots', '*')}`);
    expect(message).toContain('fix: set `tokenizer:` on the model');
  });

  it('picks the tokenizer of the first lora that trains on a dataset', async () => {
    const dir = join(tmp.dir, 'dataset');
    mkdirSync(dir);
    const c = config(dir, '  tiny: { builtin: tiny }', 'datasets:\n  d: { folder: d }\n  unused: { folder: u }\nloras:\n  l: { model: tiny, dataset: d }\n');
    const used = await tokenizerForDataset(c, 'd');
    expect(used.tokenizer.id).toBe('byte-v1');
    expect(used.reason).toBe("byte tokenizer of model 'tiny' (lora 'l')");
  });

  it('validates a dataset no lora uses with CLIP when its files are found, else with bytes', async () => {
    const dir = join(tmp.dir, 'unused');
    mkdirSync(dir);
    const c = config(dir, '  tiny: { builtin: tiny }', 'datasets:\n  d: { folder: d }\n');
    const saved = { tok: process.env.LORABUILD_CLIP_TOKENIZER, hf: process.env.HF_HUB_CACHE };
    try {
      process.env.HF_HUB_CACHE = EMPTY_ENV.HF_HUB_CACHE;
      process.env.LORABUILD_CLIP_TOKENIZER = REF;
      expect(await tokenizerForDataset(c, 'd')).toMatchObject({ tokenizer: { id: clipId }, reason: 'CLIP BPE tokenizer (no lora trains on this dataset)' });
      delete process.env.LORABUILD_CLIP_TOKENIZER;
      expect(await tokenizerForDataset(c, 'd')).toMatchObject({
        tokenizer: { id: 'byte-v1' },
        reason: 'byte tokenizer (no lora trains on this dataset and no CLIP tokenizer files were found)',
      });
    } finally {
      for (const [key, value] of [['LORABUILD_CLIP_TOKENIZER', saved.tok], ['HF_HUB_CACHE', saved.hf]] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});

describe('tokenizer identity memo', () => {
  it('remembers the identity in the cache, and a fresh process trusts it without parsing the vocabulary', async () => {
    const dir = join(tmp.dir, 'memo');
    const cache = join(dir, 'cache');
    mkdirSync(cache, { recursive: true });
    linkHfFiles(join(dir, 'tok'));
    const files = { kind: 'hf' as const, vocab: join(dir, 'tok', 'vocab.json'), merges: join(dir, 'tok', 'merges.txt') };
    const first = await loadClipTokenizer(files, cache);
    const memo = JSON.parse(readFileSync(join(cache, 'tokenizers.json'), 'utf8')) as Record<string, { id: string; vocabSize: number; bos: number; eos: number }>;
    expect(Object.values(memo)).toEqual([{ id: clipId, vocabSize: 49408, bos: 49406, eos: 49407 }]);
    expect(first.id).toBe(clipId);

    // a planted identity shows that the next process reads the memo, not the vocabulary;
    // encoding then loads the files, finds another identity and refuses
    const [key] = Object.keys(memo);
    writeFileSync(join(cache, 'tokenizers.json'), JSON.stringify({ [key]: { id: 'clip-bpe:planted', vocabSize: 49408, bos: 49406, eos: 49407 } }));
    const script = `
      const { loadClipTokenizer } = await import(${JSON.stringify(join(REPO_ROOT, 'dist/text/load.js'))});
      const t = await loadClipTokenizer(${JSON.stringify(files)}, ${JSON.stringify(cache)});
      let error = null;
      try { t.encode('a cat'); } catch (e) { error = e.message; }
      console.log(JSON.stringify({ id: t.id, error }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { id: string; error: string };
    expect(out.id).toBe('clip-bpe:planted');
    expect(out.error).toContain('the tokenizer files changed while lorabuild ran');
  });
});
