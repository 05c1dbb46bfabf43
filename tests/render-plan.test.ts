// The render stage's pure parts: grid axes, which LoRA file a column uses, the A1111 parameters
// text, old sampler names and the notes on a render's settings.
import { describe, expect, it } from 'vitest';
import { LoraSchema, RenderSchema } from '../src/config/schema.js';
import { a1111Parameters, loraFileFor, planColumns, planRows, settingNotes } from '../src/stages/render.js';
import { resolveSampling } from '../src/config/sampling.js';
import { parseConfig } from '../src/config/load.js';

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
    sampler: 'dpmpp_2m',
    scheduler: 'karras',
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
        'Steps: 25, Sampler: dpmpp_2m, Scheduler: karras, CFG scale: 7.5, Seed: 7, Size: 512x768, Model hash: abcdef0123, Model: dreamshaper8, ' +
        'Lora hashes: "pokemon_lora: 0123456789ab", Version: lorabuild worker 0.1.0',
    );
  });

  it('names the denoising strength of a partial denoise', () => {
    expect(a1111Parameters({ ...base, denoise: 0.45, loras: [] })).toContain('Size: 512x768, Denoising strength: 0.45, Model hash');
    expect(a1111Parameters({ ...base, denoise: 1, loras: [] })).not.toContain('Denoising');
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

describe('resolveSampling and settingNotes', () => {
  it('maps the old sampler names to ComfyUI sampler + scheduler', () => {
    expect(resolveSampling('euler', undefined)).toEqual({ sampler: 'euler', scheduler: 'normal' });
    expect(resolveSampling('euler', 'karras')).toEqual({ sampler: 'euler', scheduler: 'karras' });
    expect(resolveSampling('euler_a', undefined)).toMatchObject({ sampler: 'euler_ancestral', scheduler: 'normal', legacy: { name: 'euler_a' } });
    expect(resolveSampling('euler_a', 'beta')).toMatchObject({ sampler: 'euler_ancestral', scheduler: 'beta' });
    expect(resolveSampling('dpmpp_2m_karras', undefined)).toMatchObject({
      sampler: 'dpmpp_2m',
      scheduler: 'karras',
      legacy: { name: 'dpmpp_2m_karras', instead: 'sampler: dpmpp_2m with scheduler: karras' },
    });
  });

  it('notes an old name at its line and warns about textual-inversion embeddings', () => {
    const text = `version: 1
models: { m: { builtin: tiny } }
datasets: { d: { folder: d } }
loras: { l: { model: m, dataset: d } }
renders:
  ab:
    lora: l
    prompts: ["a cat", "embedding:EasyNegative, a dog"]
    sampler: dpmpp_2m_karras
`;
    const config = parseConfig(text, '/p/lorafile.yaml');
    const spec = config.renders.ab;
    const notes = settingNotes(config, 'ab', spec, resolveSampling(spec.sampler, spec.scheduler));
    expect(notes.map((n) => [n.severity, n.code, n.line, n.item])).toEqual([
      ['info', 'sampler-name', 9, 'sampler'],
      ['warning', 'prompt_embedding', 8, 'prompt 2'],
    ]);
    expect(notes[0].message).toBe("sampler 'dpmpp_2m_karras' is the old name of sampler: dpmpp_2m with scheduler: karras (ComfyUI's names)");
    expect(notes[1].message).toContain("names the textual-inversion embedding 'EasyNegative'");
    expect(settingNotes(config, 'ab', { ...spec, prompts: ['a cat'] }, resolveSampling('euler', undefined))).toEqual([]);
  });
});
