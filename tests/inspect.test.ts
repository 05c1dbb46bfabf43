import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { inspectSafetensors } from '../src/safetensors/inspect.js';
import { writeSafetensors, float32Tensor, type TensorData } from '../src/safetensors/io.js';
import { sd15KohyaModules } from '../src/safetensors/sd15.js';
import { makeTempDir, runCli } from './helpers/cli.js';

const zeros = (shape: number[]): TensorData => ({ dtype: 'F16', shape, data: Buffer.alloc(shape.reduce((a, b) => a * b, 1) * 2) });

/** A kohya LoRA over the SD1.5 attention projections, shaped from the architecture. */
function kohyaAttentionLora(rank: number, alpha: number): Record<string, TensorData> {
  const tensors: Record<string, TensorData> = {};
  for (const m of sd15KohyaModules().values()) {
    if (m.group !== 'attention') continue;
    const [out, inp] = m.shape;
    tensors[`${m.kohya}.lora_down.weight`] = zeros([rank, inp]);
    tensors[`${m.kohya}.lora_up.weight`] = zeros([out, rank]);
    tensors[`${m.kohya}.alpha`] = float32Tensor([], [alpha]);
  }
  return tensors;
}

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-inspect-');
});
afterAll(() => tmp.cleanup());

describe('inspectSafetensors', () => {
  it('describes a kohya attention LoRA that fits SD1.5', async () => {
    const file = join(tmp.dir, 'attn.safetensors');
    await writeSafetensors(file, kohyaAttentionLora(4, 2), { ss_network_dim: '4' });
    const info = await inspectSafetensors(file);
    expect(info.kind).toBe('lora');
    expect(info.lora).toMatchObject({ format: 'kohya', modules: 128, ranks: [4], alphas: [2], targets: { attention: 128 } });
    expect(info.lora!.fit).toEqual({ arch: 'sd15', fits: true, unknown: [], mismatched: [] });
    expect(info.metadata).toEqual({ ss_network_dim: '4' });
  });

  it('reads PEFT and diffusers key styles', async () => {
    const peft = join(tmp.dir, 'peft.safetensors');
    await writeSafetensors(peft, {
      'base_model.model.down_blocks.0.attentions.0.proj_in.lora_A.weight': zeros([8, 320, 1, 1]),
      'base_model.model.down_blocks.0.attentions.0.proj_in.lora_B.weight': zeros([320, 8, 1, 1]),
    });
    const p = await inspectSafetensors(peft);
    expect(p.lora).toMatchObject({ format: 'peft', ranks: [8], alphas: [], targets: { proj: 1 } });
    expect(p.lora!.fit.fits).toBe(true);

    const diffusers = join(tmp.dir, 'diffusers.safetensors');
    await writeSafetensors(diffusers, {
      'unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.down.weight': zeros([2, 768]),
      'unet.mid_block.attentions.0.transformer_blocks.0.attn2.processor.to_k_lora.up.weight': zeros([1280, 2]),
    });
    const d = await inspectSafetensors(diffusers);
    expect(d.lora).toMatchObject({ format: 'diffusers', ranks: [2], targets: { attention: 1 } });
    expect(d.lora!.fit.fits).toBe(true);
  });

  it('checks text-encoder modules (lora_te_ / lora_te1_) against CLIP-L', async () => {
    const file = join(tmp.dir, 'te.safetensors');
    await writeSafetensors(file, {
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight': zeros([4, 768]),
      'lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight': zeros([768, 4]),
      'lora_te1_text_model_encoder_layers_11_mlp_fc1.lora_down.weight': zeros([4, 768]),
      'lora_te1_text_model_encoder_layers_11_mlp_fc1.lora_up.weight': zeros([3072, 4]),
      'lora_te_text_model_encoder_layers_12_mlp_fc1.lora_down.weight': zeros([4, 768]),
      'lora_te_text_model_encoder_layers_12_mlp_fc1.lora_up.weight': zeros([3072, 4]),
    });
    const info = await inspectSafetensors(file);
    expect(info.lora!.targets).toEqual({ text: 2 });
    expect(info.lora!.fit.unknown).toEqual(['lora_te_text_model_encoder_layers_12_mlp_fc1']);
  });

  it('says an SD2 LoRA is SD2 (1024-wide context) and does not fit SD1.5', async () => {
    const file = join(tmp.dir, 'sd2.safetensors');
    const k = 'lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k';
    await writeSafetensors(file, {
      [`${k}.lora_down.weight`]: zeros([4, 1024]),
      [`${k}.lora_up.weight`]: zeros([320, 4]),
      'lora_unet_input_blocks_1_1_proj_in.lora_down.weight': zeros([4, 320]),
      'lora_unet_input_blocks_1_1_proj_in.lora_up.weight': zeros([320, 4]),
    });
    const info = await inspectSafetensors(file);
    expect(info.lora).toMatchObject({ family: 'sd2', familyEvidence: ['cross-attention context 1024 (OpenCLIP-H)'] });
    expect(info.lora!.fit.fits).toBe(false);
    // ComfyUI's LDM spelling of proj_in binds; the 1024-wide to_k does not fit SD1.5's 768
    expect(info.lora!.fit.unknown).toEqual([]);
    expect(info.lora!.fit.mismatched).toEqual([{ module: k, problem: 'gives a [320, 1024] difference for a [320, 768] weight' }]);
  });

  it('lists unknown modules and modules whose shapes do not fit', async () => {
    const file = join(tmp.dir, 'misfit.safetensors');
    await writeSafetensors(file, {
      'lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight': zeros([4, 321, 1, 1]),
      'lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight': zeros([320, 4, 1, 1]),
      'lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight': zeros([4, 768]),
      'lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight': zeros([1280, 4]),
      'lora_unet_down_blocks_9_resnets_0_conv1.lora_down.weight': zeros([4, 320, 3, 3]),
      'lora_unet_down_blocks_9_resnets_0_conv1.lora_up.weight': zeros([320, 4, 1, 1]),
    });
    const info = await inspectSafetensors(file);
    expect(info.lora).toMatchObject({ family: 'sd1', modules: 3, targets: { attention: 1 } });
    expect(info.lora!.fit).toEqual({
      arch: 'sd15',
      fits: false,
      unknown: ['lora_unet_down_blocks_9_resnets_0_conv1'],
      mismatched: [{ module: 'lora_unet_down_blocks_0_attentions_0_proj_in', problem: 'gives a [320, 321, 1, 1] difference for a [320, 320, 1, 1] weight' }],
    });
  });

  it('recognises checkpoint families from their cross-attention width', async () => {
    const key = 'model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight';
    const sd1 = join(tmp.dir, 'sd1.safetensors');
    await writeSafetensors(sd1, { [key]: zeros([320, 768]), 'first_stage_model.decoder.conv_in.bias': zeros([512]) });
    expect((await inspectSafetensors(sd1)).checkpoint).toMatchObject({ layout: 'ldm', family: 'sd1', unetKeys: 1, vaeKeys: 1 });
    const sd2 = join(tmp.dir, 'sd2ckpt.safetensors');
    await writeSafetensors(sd2, { [key]: zeros([320, 1024]) });
    expect((await inspectSafetensors(sd2)).checkpoint?.family).toBe('sd2');
    const xl = join(tmp.dir, 'xl.safetensors');
    await writeSafetensors(xl, { [key]: zeros([320, 2048]), 'conditioner.embedders.0.transformer.text_model.final_layer_norm.bias': zeros([768]) });
    expect((await inspectSafetensors(xl)).checkpoint?.family).toBe('sdxl');
  });
});

describe('lorabuild inspect (CLI)', () => {
  it('prints format, rank, alpha, targets, fit and metadata', async () => {
    const file = join(tmp.dir, 'cli.safetensors');
    await writeSafetensors(file, kohyaAttentionLora(4, 4), { ss_network_dim: '4', ss_tag_frequency: JSON.stringify({ d: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`tag${i}`, i])) }) });
    const text = await runCli(['inspect', file], { cwd: tmp.dir });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('LoRA (kohya keys), 128 modules');
    expect(text.stdout).toContain('rank 4, alpha 4 (scale 1.00)');
    expect(text.stdout).toContain('targets: attention 128');
    expect(text.stdout).toContain('SD1.5 UNet: fits');
    expect(text.stdout).toContain('  family: SD1.x (cross-attention context 768)');
    // the most frequent training tag reads as the trigger word
    expect(text.stdout).toContain('  trigger words: tag39');
    expect(text.stdout).toMatch(/ss_tag_frequency: .*--full shows all/);
    const json = await runCli(['inspect', file, '--json'], { cwd: tmp.dir });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ kind: 'lora', lora: { kinds: ['LoRA'], family: 'sd1', triggers: ['tag39'], ranks: [4], alphas: [4], fit: { fits: true } } });
  });

  it('exits 1 and lists mismatches for a LoRA that does not fit', async () => {
    const file = join(tmp.dir, 'bad.safetensors');
    await writeSafetensors(file, { 'lora_unet_foo.lora_down.weight': zeros([4, 8]), 'lora_unet_foo.lora_up.weight': zeros([8, 4]) });
    const r = await runCli(['inspect', file], { cwd: tmp.dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('SD1.5 UNet: DOES NOT FIT (1 unknown module names, 0 shape mismatches)');
    expect(r.stdout).toContain('unknown: lora_unet_foo');
  });

  it('names the file and the defect of a corrupt file', async () => {
    const file = join(tmp.dir, 'corrupt.safetensors');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(999n);
    await writeFile(file, Buffer.concat([prefix, Buffer.from('{}')]));
    const r = await runCli(['inspect', file], { cwd: tmp.dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}: header length 999 runs past the end of the file`);
  });

  it('names the family of a LoRA for another base and its trigger phrase', async () => {
    const file = join(tmp.dir, 'xl-cli.safetensors');
    const k = 'lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k';
    await writeSafetensors(file, { [`${k}.lora_down.weight`]: zeros([8, 2048]), [`${k}.lora_up.weight`]: zeros([640, 8]), [`${k}.alpha`]: float32Tensor([], [4]) }, { 'modelspec.trigger_phrase': '80s, film still' });
    const r = await runCli(['inspect', file], { cwd: tmp.dir });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('  family: SDXL (cross-attention context 2048)');
    expect(r.stdout).toContain('  rank 8, alpha 4 (scale 0.500)');
    expect(r.stdout).toContain('  trigger words: 80s, film still');
    expect(r.stdout).toContain('SD1.5 UNet: DOES NOT FIT (an SDXL LoRA)');
  });

  it('usage errors exit 2', async () => {
    const r = await runCli(['inspect'], { cwd: tmp.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('give exactly one .safetensors file');
  });
});
