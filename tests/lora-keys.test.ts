// LoRA key analysis (src/loras): every spelling ComfyUI maps (and the diffusers/PEFT and old A1111
// ones it does not) lands on the same module, the LDM names agree with the SD1.5 key manifest, the
// family is read from keys and shapes, unknown keys and misfits are named, trigger words come from
// the metadata, and the worker plan lists exactly the keys it leaves out.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { analyzeLoraFile } from '../src/loras/analyze.js';
import { detectFamily } from '../src/loras/family.js';
import { fitProblems } from '../src/loras/fit.js';
import { bindKeys, groupKeys } from '../src/loras/keys.js';
import { archModules, ldmUnetPath } from '../src/loras/spellings.js';
import { promptUses, triggerWords } from '../src/loras/triggers.js';
import { workerLoraFile } from '../src/loras/worker-plan.js';
import type { SafetensorsHeader, TensorInfo } from '../src/safetensors/format.js';
import { SD15_UNET } from '../src/safetensors/sd15.js';
import { makeTempDir } from './helpers/cli.js';
import { SD15_MANIFEST_DIR } from './helpers/reference.js';
import { writeFixture, zeros } from './helpers/lora-fixtures.js';

/** A header from name -> shape (offsets do not matter for key analysis). */
function header(tensors: Record<string, number[]>, metadata: Record<string, string> = {}): SafetensorsHeader {
  const map = new Map<string, TensorInfo>();
  for (const [name, shape] of Object.entries(tensors)) map.set(name, { name, dtype: 'F32', shape, begin: 0, end: 0 });
  return { dataStart: 8, tensors: map, metadata };
}

const sd15 = () => archModules('sd15');
const bindOne = (keys: Record<string, number[]>) => bindKeys(groupKeys(header(keys)), sd15());

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-keys-');
});
afterAll(() => tmp.cleanup());

describe('module spellings', () => {
  it('SD1.5 has 282 UNet and 72 text-encoder Linear/Conv modules, and their LDM names are the checkpoint keys', () => {
    const modules = [...sd15().modules.values()];
    expect(modules.filter((m) => m.group !== 'text')).toHaveLength(282);
    expect(modules.filter((m) => m.group === 'text')).toHaveLength(72);
    const manifest = parse(readFileSync(join(SD15_MANIFEST_DIR, 'sd1-ldm.yaml'), 'utf8')) as { components: Record<string, Record<string, { shape: number[] }>> };
    const ldm = new Map(Object.values(manifest.components).flatMap((c) => Object.entries(c)).map(([k, v]) => [k, v.shape]));
    for (const m of modules.filter((x) => x.group !== 'text')) {
      const key = `model.diffusion_model.${ldmUnetPath(m.path, SD15_UNET)}.weight`;
      expect([m.path, ldm.get(key)]).toEqual([m.path, m.shape]);
    }
  });

  it('every UNet spelling of one module binds to it: kohya (diffusers and LDM), lycoris, diffusion_model., diffusers processors, PEFT', () => {
    const target = 'lora_unet_down_blocks_0_attentions_1_transformer_blocks_0_attn1_to_out_0';
    const pair = (prefix: string, up: string, down: string) => ({ [`${prefix}${up}`]: [320, 4], [`${prefix}${down}`]: [4, 320] });
    const spellings = [
      pair(target, '.lora_up.weight', '.lora_down.weight'),
      pair('lora_unet_input_blocks_2_1_transformer_blocks_0_attn1_to_out_0', '.lora_up.weight', '.lora_down.weight'),
      pair('lycoris_down_blocks_0_attentions_1_transformer_blocks_0_attn1_to_out_0', '.lora_up.weight', '.lora_down.weight'),
      pair('diffusion_model.input_blocks.2.1.transformer_blocks.0.attn1.to_out.0', '.lora_up.weight', '.lora_down.weight'),
      pair('unet.down_blocks.0.attentions.1.transformer_blocks.0.attn1.processor.to_out', '_lora.up.weight', '_lora.down.weight'),
      pair('down_blocks.0.attentions.1.transformer_blocks.0.attn1.processor.to_out', '.lora_B.weight', '.lora_A.weight'),
      pair('unet.down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_out.0', '.lora_B.weight', '.lora_A.weight'),
      pair('unet.down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_out.0', '.lora.up.weight', '.lora.down.weight'),
      pair('base_model.model.down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_out.0', '.lora_B.default.weight', '.lora_A.default.weight'),
      pair('unet.down_blocks.0.attentions.1.transformer_blocks.0.attn1.to_out.0', '.lora_linear_layer.up.weight', '.lora_linear_layer.down.weight'),
    ];
    for (const keys of spellings) {
      const b = bindOne(keys);
      expect([Object.keys(keys)[0], b.unknownKeys, b.problems, b.modules.map((m) => [m.module.kohya, m.kind, m.rank])]).toEqual([Object.keys(keys)[0], [], [], [[target, 'lora', 4]]]);
    }
  });

  it("every text-encoder spelling binds: A1111's lora_te_text_model and old lora_te_transformer, lora_te1_, text_encoder., text_encoders.clip_l", () => {
    const target = 'lora_te_text_model_encoder_layers_11_mlp_fc2';
    for (const prefix of [target, 'lora_te1_text_model_encoder_layers_11_mlp_fc2', 'lora_te_transformer_text_model_encoder_layers_11_mlp_fc2']) {
      expect(bindOne({ [`${prefix}.lora_up.weight`]: [768, 8], [`${prefix}.lora_down.weight`]: [8, 3072] }).modules.map((m) => m.module.kohya)).toEqual([target]);
    }
    for (const prefix of ['text_encoder.text_model.encoder.layers.11.mlp.fc2', 'text_encoders.clip_l.transformer.text_model.encoder.layers.11.mlp.fc2']) {
      expect(bindOne({ [`${prefix}.lora_B.weight`]: [768, 8], [`${prefix}.lora_A.weight`]: [8, 3072] }).modules.map((m) => m.module.kohya)).toEqual([target]);
    }
  });

  it('names unknown keys, keys with no role, incomplete adapters, two spellings of one module and misfits', () => {
    const b = bindOne({
      'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight': [320, 4, 1, 1],
      'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight': [4, 320, 1, 1],
      'lora_unet_input_blocks_1_1_proj_in.lora_up.weight': [320, 4, 1, 1], // the same module again, LDM spelling
      'lora_unet_input_blocks_1_1_proj_in.lora_down.weight': [4, 320, 1, 1],
      'lora_unet_conv_in.lora_up.weight': [320, 4, 1, 1], // no down
      'lora_unet_conv_out.lora_up.weight': [4, 4, 1, 1],
      'lora_unet_conv_out.lora_down.weight': [4, 320, 5, 5], // a 5x5 difference for a 3x3 conv
      'lora_unet_nowhere.lora_up.weight': [4, 4],
      'lora_unet_nowhere.lora_down.weight': [4, 4],
      'lora_unet_down_blocks_0_attentions_0_proj_out.diff': [320, 320, 1, 1],
      'lora_unet_mid_block_attentions_0_proj_in.alpha': [], // alpha only: nothing to apply, not unknown
    });
    expect(b.modules.map((m) => m.prefix)).toHaveLength(1);
    expect(b.unknownKeys).toEqual(['lora_unet_down_blocks_0_attentions_0_proj_out.diff', 'lora_unet_nowhere.lora_down.weight', 'lora_unet_nowhere.lora_up.weight']);
    expect(b.unknownModules).toEqual(['lora_unet_down_blocks_0_attentions_0_proj_out.diff', 'lora_unet_nowhere']);
    expect(b.problems.map((p) => [p.prefix, p.problem])).toEqual(
      expect.arrayContaining([
        ['lora_unet_conv_in', 'lacks down'],
        ['lora_unet_conv_out', 'gives a [4, 320, 5, 5] difference for a [4, 320, 3, 3] weight'],
        [expect.stringMatching(/proj_in$/), expect.stringMatching(/^targets lora_unet_down_blocks_0_attentions_0_proj_in, which lora_unet_\w+ already targets$/)],
      ]),
    );
    expect(b.problems).toHaveLength(3);
  });

  it('checks LoHa, LoKr and DoRA shapes the way their arithmetic needs', () => {
    const p = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q'; // [320, 320]
    const loha = bindOne({ [`${p}.hada_w1_a`]: [320, 2], [`${p}.hada_w1_b`]: [2, 320], [`${p}.hada_w2_a`]: [320, 2], [`${p}.hada_w2_b`]: [2, 320] });
    expect(loha.modules.map((m) => [m.kind, m.rank])).toEqual([['loha', 2]]);
    const lokr = bindOne({ [`${p}.lokr_w1`]: [16, 16], [`${p}.lokr_w2_a`]: [20, 4], [`${p}.lokr_w2_b`]: [4, 20] });
    expect(lokr.modules.map((m) => [m.kind, m.rank])).toEqual([['lokr', 4]]);
    expect(bindOne({ [`${p}.lokr_w1`]: [16, 16], [`${p}.lokr_w2`]: [20, 20] }).modules.map((m) => m.rank)).toEqual([null]);
    // both factorised: ComfyUI scales by w2's rank
    expect(bindOne({ [`${p}.lokr_w1_a`]: [16, 3], [`${p}.lokr_w1_b`]: [3, 16], [`${p}.lokr_w2_a`]: [20, 4], [`${p}.lokr_w2_b`]: [4, 20] }).modules.map((m) => m.rank)).toEqual([4]);
    expect(bindOne({ [`${p}.lokr_w1`]: [16, 16], [`${p}.lokr_w2`]: [20, 21] }).problems[0].problem).toBe('gives a [320, 336] difference for a [320, 320] weight');
    const dora = (shape: number[]) => bindOne({ [`${p}.lora_up.weight`]: [320, 4], [`${p}.lora_down.weight`]: [4, 320], [`${p}.dora_scale`]: shape });
    expect(dora([1, 320]).problems).toEqual([]);
    expect(dora([320, 1]).problems).toEqual([]); // broadcasts, as in ComfyUI
    expect(dora([1, 321]).problems[0].problem).toBe('dora_scale [1, 321] does not broadcast to the [320, 320] weight');
    const mixed = bindOne({ [`${p}.lora_up.weight`]: [320, 4], [`${p}.lora_down.weight`]: [4, 320], [`${p}.hada_w1_a`]: [320, 2] });
    expect(mixed.problems[0].problem).toMatch(/mixes adapter kinds/);
  });
});

describe('family detection from keys and shapes', () => {
  const k = (name: string, down: number[], up: number[]) => ({ [`${name}.lora_down.weight`]: down, [`${name}.lora_up.weight`]: up });
  it('tells SD1.5, the tiny builtin, SD2.x and SDXL apart by context and text-encoder widths', () => {
    const attn2 = 'lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k';
    expect(detectFamily(header(k(attn2, [4, 768], [640, 4])))).toEqual({ family: 'sd1', arch: 'sd15', evidence: ['cross-attention context 768'] });
    expect(detectFamily(header(k(attn2, [4, 64], [64, 4])))).toMatchObject({ family: 'sd1', arch: 'tiny' });
    expect(detectFamily(header(k(attn2, [4, 1024], [640, 4])))).toMatchObject({ family: 'sd2', evidence: ['cross-attention context 1024 (OpenCLIP-H)'] });
    expect(detectFamily(header(k('lora_te_text_model_encoder_layers_0_self_attn_q_proj', [4, 1024], [1024, 4])))).toMatchObject({ family: 'sd2' });
    expect(detectFamily(header(k('lora_te_text_model_encoder_layers_0_self_attn_q_proj', [4, 768], [768, 4])))).toMatchObject({ family: 'sd1', arch: 'sd15' });
    // SDXL from kohya's LDM-style names alone, or the second text encoder
    expect(detectFamily(header(k('lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q', [4, 640], [640, 4])))).toMatchObject({ family: 'sdxl' });
    expect(detectFamily(header(k('lora_te2_text_model_encoder_layers_0_mlp_fc1', [4, 1280], [5120, 4])))).toMatchObject({ family: 'sdxl' });
    expect(detectFamily(header(k('lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k', [4, 2048], [640, 4]))).evidence).toEqual(['cross-attention context 2048']);
  });

  it('names SD3, Flux and non-SD files; falls back to the metadata only when shapes say nothing', () => {
    expect(detectFamily(header(k('lora_unet_double_blocks_0_img_attn_qkv', [4, 3072], [9216, 4])))).toMatchObject({ family: 'flux' });
    expect(detectFamily(header(k('transformer.transformer_blocks.0.attn.add_q_proj', [4, 1536], [1536, 4])))).toMatchObject({ family: 'sd3' });
    expect(detectFamily(header(k('model.layers.0.self_attn.q_proj', [4, 4096], [4096, 4])))).toMatchObject({ family: 'other' });
    const conv = k('lora_unet_down_blocks_0_resnets_0_conv1', [4, 320, 3, 3], [320, 4, 1, 1]);
    expect(detectFamily(header(conv, { ss_base_model_version: 'sdxl_base_v1-0' }))).toMatchObject({ family: 'sdxl', evidence: ['metadata ss_base_model_version sdxl_base_v1-0'] });
    expect(detectFamily(header(conv, { ss_base_model_version: 'sd_v1' }))).toMatchObject({ family: 'sd1' });
    // shapes beat a wrong metadata
    expect(detectFamily(header(k('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k', [4, 768], [640, 4]), { ss_base_model_version: 'sdxl_base_v1-0' }))).toMatchObject({ family: 'sd1' });
  });

  it('refuses another family with a message naming both, and unknown keys unless ignored', async () => {
    const xl = join(tmp.dir, 'xl.safetensors');
    await writeFixture(xl, { tensors: { 'lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight': zeros([1, 2048]), 'lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight': zeros([640, 1]) } });
    const a = (await analyzeLoraFile(xl, 'sd15'))!;
    expect(fitProblems(a, 'xl.safetensors', { name: 'dreamshaper8', arch: 'sd15' }, false).map((p) => [p.severity, p.message])).toEqual([
      ['error', 'xl.safetensors is an SDXL LoRA (cross-attention context 2048); dreamshaper8 is SD1.5'],
    ]);
    const partial = join(tmp.dir, 'partial.safetensors');
    const q = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q';
    await writeFixture(partial, { tensors: { [`${q}.lora_down.weight`]: zeros([2, 320]), [`${q}.lora_up.weight`]: zeros([320, 2]), [`${q}.alpha`]: zeros([]), 'lora_unet_extra_thing.lora_down.weight': zeros([2, 2]), 'lora_unet_extra_thing.lora_up.weight': zeros([2, 2]) } });
    const b = (await analyzeLoraFile(partial, 'sd15'))!;
    const strict = fitProblems(b, 'partial.safetensors', { name: 'ds8', arch: 'sd15' }, false);
    expect(strict.map((p) => [p.severity, p.code])).toEqual([['error', 'lora-unknown-keys']]);
    expect(strict[0].message).toBe('partial.safetensors: 2 keys match no module of ds8 (SD1.5): lora_unet_extra_thing.lora_down.weight, lora_unet_extra_thing.lora_up.weight');
    const lenient = fitProblems(b, 'partial.safetensors', { name: 'ds8', arch: 'sd15' }, true);
    expect(lenient.map((p) => [p.severity, p.code])).toEqual([['warning', 'lora-unknown-keys']]);
    // the worker plan applies the one module and lists the unknown keys as deliberately skipped
    expect(workerLoraFile(partial, b)).toEqual({
      path: partial,
      modules: [{ target: q, kind: 'lora', tensors: { up: `${q}.lora_up.weight`, down: `${q}.lora_down.weight`, alpha: `${q}.alpha` } }],
      skip_keys: ['lora_unet_extra_thing.lora_down.weight', 'lora_unet_extra_thing.lora_up.weight'],
    });
  });
});

describe('untrusted headers', () => {
  it('an alpha that is not one number is a misfit, and is not read', async () => {
    const file = join(tmp.dir, 'big-alpha.safetensors');
    const q = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_q';
    await writeFixture(file, { tensors: { [`${q}.lora_down.weight`]: zeros([2, 320]), [`${q}.lora_up.weight`]: zeros([320, 2]), [`${q}.alpha`]: zeros([4096]) } });
    const a = (await analyzeLoraFile(file, 'sd15'))!;
    expect(a.binding.problems).toEqual([{ prefix: q, problem: 'alpha is F32[4096], not one float' }]);
    expect(a.alphaValues).toEqual([]);
    expect(fitProblems(a, 'big-alpha.safetensors', { name: 'ds8', arch: 'sd15' }, true)[0]).toMatchObject({ severity: 'error', code: 'lora-shapes' });
  });
});

describe('trigger words', () => {
  it('come from modelspec.trigger_phrase, trigger fields and the most frequent ss_tag_frequency tags', () => {
    expect(triggerWords({ 'modelspec.trigger_phrase': '80s, film still' })).toEqual(['80s', 'film still']);
    expect(triggerWords({ trigger_words: '["retro", "Retro", "vhs"]' })).toEqual(['retro', 'vhs']);
    const freq = JSON.stringify({ '10_80s style': { '80s style': 40, man: 12, suit: 9 }, extra: { '80s style': 2, car: 3 } });
    expect(triggerWords({ ss_tag_frequency: freq })).toEqual(['80s style']);
    // every caption its own tag (no tag repeats): no triggers; many tied tags: not triggers either
    expect(triggerWords({ ss_tag_frequency: JSON.stringify({ d: { 'a cat': 1, 'a dog': 1 } }) })).toEqual([]);
    expect(triggerWords({ ss_tag_frequency: JSON.stringify({ d: { a: 5, b: 5, c: 5, d: 5 } }) })).toEqual([]);
    expect(triggerWords({ ss_tag_frequency: 'not json' })).toEqual([]);
  });

  it('a prompt uses a trigger as a whole word, any case', () => {
    expect(promptUses('80s, a man in a suit', '80s')).toBe(true);
    expect(promptUses('A FILM STILL of a car', 'film still')).toBe(true);
    expect(promptUses('1980s fashion', '80s')).toBe(false);
    expect(promptUses('a (retro+) look', 'retro+')).toBe(true);
  });
});
