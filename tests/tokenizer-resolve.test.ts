// Where the CLIP tokenizer files are found for a model: real folders in a temp dir that link to the
// reference files; without any, the vocabulary that ships with lorabuild.
import { CLIP_TOKENIZER_DIR } from './helpers/reference.js';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { clipTokenizerFiles, resolveClipTokenizer, resolveTokenizer, SHIPPED_CLIP_BPE, tokenizerForDataset, TokenizerNotFoundError } from '../src/text/resolve.js';
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
  it('gives the builtin models the shipped CLIP vocabulary, like any SD1.x model without tokenizer files', async () => {
    const dir = join(tmp.dir, 'builtin');
    mkdirSync(dir);
    const c = config(dir, '  tiny: { builtin: tiny }\n  toy: { builtin: toy }\n  sd: { checkpoint: nowhere/model.safetensors }');
    const [tiny, toy, sd] = await Promise.all(['tiny', 'toy', 'sd'].map((m) => resolveTokenizer(c, m)));
    expect(tiny.id).toBe(clipId);
    expect(toy.id).toBe(clipId);
    expect(sd.id).toBe(clipId);
    expect(tiny.encodePadded('a red circle').ids.slice(0, 5)).toEqual(sd.encodePadded('a red circle').ids.slice(0, 5));
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

  it('falls back to LORABUILD_CLIP_TOKENIZER, then the model repo in the Hugging Face cache', async () => {
    const dir = join(tmp.dir, 'env');
    mkdirSync(dir);
    const c = config(dir, '  sd: { checkpoint: m.safetensors }');
    expect((await resolveClipTokenizer(c, 'sd', { ...EMPTY_ENV, LORABUILD_CLIP_TOKENIZER: REF })).id).toBe(clipId);
    const hf = join(tmp.dir, 'hf');
    const sha = '0123abc'.padEnd(40, '0');
    linkHfFiles(join(hf, 'models--someone--sd15', 'snapshots', sha, 'tokenizer'));
    // the snapshot the revision names (refs/main), not any snapshot of the repo
    linkHfFiles(join(hf, 'models--someone--sd15', 'snapshots', 'f'.repeat(40), 'tokenizer-other'));
    mkdirSync(join(hf, 'models--someone--sd15', 'refs'), { recursive: true });
    writeFileSync(join(hf, 'models--someone--sd15', 'refs', 'main'), sha);
    const h = config(dir, '  sd: { hub: someone/sd15, file: m.safetensors }');
    const files = clipTokenizerFiles(h, 'sd', { HF_HUB_CACHE: hf });
    expect(files).toEqual({ kind: 'hf', vocab: join(hf, 'models--someone--sd15', 'snapshots', sha, 'tokenizer', 'vocab.json'), merges: join(hf, 'models--someone--sd15', 'snapshots', sha, 'tokenizer', 'merges.txt') });
    expect((await resolveClipTokenizer(h, 'sd', { HF_HUB_CACHE: hf })).id).toBe(clipId);
  });

  it('uses the vocabulary shipped with lorabuild when the model has no tokenizer files, on any machine', async () => {
    const dir = join(tmp.dir, 'none');
    mkdirSync(join(dir, 'ComfyUI', 'models', 'checkpoints'), { recursive: true });
    const c = config(dir, '  sd: { checkpoint: ComfyUI/models/checkpoints/x.safetensors }');
    const t = await resolveClipTokenizer(c, 'sd', EMPTY_ENV);
    expect(t.id).toBe(clipId);
    expect(t.encode('a photo of a cat').ids).toEqual([320, 1125, 539, 320, 2368]);
    expect(SHIPPED_CLIP_BPE).toBe(join(REPO_ROOT, 'assets', 'clip', 'bpe_simple_vocab_16e6.txt.gz'));
    // the shipped file is OpenAI's, byte for byte, and carries its license note
    expect(createHash('sha256').update(readFileSync(SHIPPED_CLIP_BPE)).digest('hex')).toBe('924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a');
    expect(readFileSync(join(REPO_ROOT, 'assets', 'clip', 'LICENSE-NOTE.txt'), 'utf8')).toContain('Copyright (c) 2021 OpenAI');
  });

  it('still reports a wrong tokenizer: setting, with the fix', async () => {
    const dir = join(tmp.dir, 'wrong');
    mkdirSync(join(dir, 'nothing-here'), { recursive: true });
    const c = config(dir, '  sd: { checkpoint: m.safetensors, tokenizer: nothing-here }');
    const err = await resolveClipTokenizer(c, 'sd', EMPTY_ENV).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenizerNotFoundError);
    expect((err as Error).message).toContain("no CLIP tokenizer found for model 'sd'; looked in:");
    expect((err as Error).message).toContain('lorabuild ships the SD1.x CLIP vocabulary');
  });

  it('picks the tokenizer of the first lora that trains on a dataset', async () => {
    const dir = join(tmp.dir, 'dataset');
    mkdirSync(dir);
    const c = config(dir, '  tiny: { builtin: tiny }', 'datasets:\n  d: { folder: d }\n  unused: { folder: u }\nloras:\n  l: { model: tiny, dataset: d }\n');
    const used = await tokenizerForDataset(c, 'd');
    expect(used.tokenizer.id).toBe(clipId);
    expect(used.reason).toBe("CLIP BPE tokenizer of model 'tiny' (lora 'l')");
  });

  it('validates a dataset no lora uses with CLIP', async () => {
    const dir = join(tmp.dir, 'unused');
    mkdirSync(dir);
    const c = config(dir, '  tiny: { builtin: tiny }', 'datasets:\n  d: { folder: d }\n');
    expect(await tokenizerForDataset(c, 'd')).toMatchObject({ tokenizer: { id: clipId }, reason: 'CLIP BPE tokenizer (no lora trains on this dataset)' });
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
