// The render stage's pure parts: grid axes, which LoRA file a column uses, the A1111 parameters
// text, and the prompt-too-long warning.
import { describe, expect, it } from 'vitest';
import { LoraSchema, RenderSchema, type Config } from '../src/config/schema.js';
import { a1111Parameters, loraFileFor, planColumns, planRows, truncationWarning } from '../src/stages/render.js';
import { resolveClipTokenizer } from '../src/text/resolve.js';

const lora = LoraSchema.parse({ model: 'tiny', dataset: 'ds', steps: 600, checkpoint_every: 200 });
const render = (extra: Record<string, unknown>) => RenderSchema.parse({ lora: 'l', prompts: ['a mouse'], ...extra });

describe('planColumns', () => {
  it('strength columns use the final LoRA, in the order written, without duplicates', () => {
    const cols = planColumns(render({ strengths: [0, 0.5, 1, 0.5, -1] }), lora, [200, 400]);
    expect(cols.map((c) => [c.label, c.strength, c.step, c.slug])).toEqual([
      ['strength 0 (no LoRA)', 0, null, 's0'],
      ['strength 0.5', 0.5, null, 's0.5'],
      ['strength 1', 1, null, 's1'],
      ['strength -1', -1, null, 's-1'],
    ]);
  });

  it('checkpoint columns: the without arm once, then each step at the first non-zero strength', () => {
    const cols = planColumns(render({ strengths: [0, 0.8, 1], checkpoints: [600, 200], columns: 'checkpoint' }), lora, [200, 400]);
    expect(cols.map((c) => c.label)).toEqual(['strength 0 (no LoRA)', 'step 200 · strength 0.8', 'step 600 · strength 0.8']);
    // without `checkpoints:` every saved step and the final one
    const all = planColumns(render({ strengths: [1], columns: 'checkpoint' }), lora, [200, 400]);
    expect(all.map((c) => c.step)).toEqual([200, 400, 600]);
  });

  it('checkpoint×strength crosses steps with every non-zero strength', () => {
    const cols = planColumns(render({ strengths: [0, 0.5, 1], checkpoints: [200, 600], columns: 'checkpoint×strength' }), lora, [200, 400]);
    expect(cols.map((c) => c.slug)).toEqual(['s0', 'step00200-s0.5', 'step00200-s1', 'step00600-s0.5', 'step00600-s1']);
  });
});

describe('planRows and loraFileFor', () => {
  it('rows are prompts × seeds, prompt-major, seeds deduplicated', () => {
    expect(planRows(render({ prompts: ['a', 'b'], seeds: [3, 1, 3] }))).toEqual([
      { prompt: 'a', promptIndex: 1, seed: 3 },
      { prompt: 'a', promptIndex: 1, seed: 1 },
      { prompt: 'b', promptIndex: 2, seed: 3 },
      { prompt: 'b', promptIndex: 2, seed: 1 },
    ]);
  });

  it('names the train output of a column: the final file for the last step and for strength columns', () => {
    const cols = planColumns(render({ strengths: [1], checkpoints: [200, 600], columns: 'checkpoint' }), lora, [200, 400]);
    expect(cols.map((c) => loraFileFor('mouse', lora, c))).toEqual(['mouse-step00200.safetensors', 'mouse.safetensors']);
    expect(loraFileFor('mouse', lora, planColumns(render({ strengths: [1] }), lora, [])[0])).toBe('mouse.safetensors');
  });
});

describe('a1111Parameters', () => {
  const base = {
    prompt: 'a mouse',
    negative: 'blurry',
    steps: 25,
    sampler: 'dpmpp_2m_karras' as const,
    cfg: 7.5,
    seed: 7,
    width: 512,
    height: 768,
    modelSha: 'abcdef0123456789'.repeat(4),
    modelName: 'dreamshaper8',
    workerVersion: '0.1.0',
  };

  it('writes the A1111 layout with the LoRA tag and hash', () => {
    const text = a1111Parameters({ ...base, loras: [{ label: 'pokemon_lora', sha256: '0123456789abcdef'.repeat(4), strength_model: 0.8, strength_clip: 0.8 }] });
    expect(text).toBe(
      'a mouse <lora:pokemon_lora:0.8>\nNegative prompt: blurry\n' +
        'Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 7, Size: 512x768, Model hash: abcdef0123, Model: dreamshaper8, ' +
        'Lora hashes: "pokemon_lora: 0123456789ab", Version: lorabuild worker 0.1.0',
    );
  });

  it('tags every LoRA of a stack in order, as <lora:name:te:unet> when the two strengths differ', () => {
    const text = a1111Parameters({
      ...base,
      loras: [
        { label: '80s_offset', sha256: 'a'.repeat(64), strength_model: 0.8, strength_clip: 0.5 },
        { label: 'pokemon_lora', sha256: 'b'.repeat(64), strength_model: -1, strength_clip: -1 },
      ],
    });
    expect(text.split('\n')[0]).toBe('a mouse <lora:80s_offset:0.5:0.8> <lora:pokemon_lora:-1>');
    expect(text).toContain('Lora hashes: "80s_offset: aaaaaaaaaaaa, pokemon_lora: bbbbbbbbbbbb"');
  });

  it('has no LoRA tag or hash for the without arm, so it does not depend on any LoRA', () => {
    const a = a1111Parameters({ ...base, loras: [] });
    expect(a).not.toMatch(/<lora:|Lora hashes/);
  });
});

describe('truncationWarning', () => {
  const config = { file: '/p/lorafile.yaml' } as Config;

  it('names the cut words of a prompt over the window (CLIP tokens: 75 fit)', async () => {
    const prompt = `${'cat '.repeat(74)}keep cut words here`; // 78 tokens: 74 + keep fit
    const d = truncationWarning(config, 'ab', 1, prompt, await resolveClipTokenizer(undefined));
    expect(d).toMatchObject({ severity: 'warning', code: 'prompt_too_long', item: 'prompt 2', file: '/p/lorafile.yaml' });
    expect(d!.message).toContain('has 78 tokens but the text encoder sees 75');
    expect(d!.message).toContain('cut: "cut words here"');
  });

  it('is silent for a prompt that fits', async () => {
    expect(truncationWarning(config, 'ab', 0, 'cat '.repeat(75).trim(), await resolveClipTokenizer(undefined))).toBeNull();
  });
});
