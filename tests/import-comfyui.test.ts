import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../src/config/load.js';

const repo = resolve(import.meta.dirname, '..');
const cli = join(repo, 'bin', 'lorabuild.js');
const showcase = join(repo, 'pipelines', 'pokemon-showcase');

function lorabuild(args: string[], cwd = repo) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, COMFYUI_PATH: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SIMPLELORA_RECIPE = {
  resolution: 512, flip: true, gradient_accumulation: 4, lr_scheduler: 'cosine', max_grad_norm: 1,
  targets: 'attention+proj', lora_init: 'gaussian', latents: 'sample',
};

describe('lorabuild import comfyui', () => {
  it("turns the lab's showcase workflow (UI format) into the showcase lorafile", () => {
    const r = lorabuild(['import', 'comfyui', join(showcase, 'comfyui-workflow.json'), '--comfyui', '~/ComfyUI']);
    expect(r.code).toBe(0);
    expect(parse(r.stdout)).toEqual(parse(readFileSync(join(showcase, 'lorafile.yaml'), 'utf8')));
    // SimpleLoRA's recipe (SimpleLoRA.py's command line + lora_core.py), not just the node's widgets
    expect(parse(r.stdout).loras.pokemon_lora).toMatchObject(SIMPLELORA_RECIPE);
    expect(r.stderr).toContain('lora_checkpoint_folder "lora_showcase"');
  });

  it("turns the lab's part-1 workflow (a downloaded LoRA on DreamShaper 8) into the eighties-lora lorafile", () => {
    const part1 = join(repo, 'pipelines', 'eighties-lora');
    const r = lorabuild(['import', 'comfyui', join(part1, 'comfyui-workflow.json'), '--comfyui', '~/ComfyUI']);
    expect(r.code, r.stderr).toBe(0);
    expect(parse(r.stdout)).toEqual(parse(readFileSync(join(part1, 'lorafile.yaml'), 'utf8')));
    expect(r.stdout).not.toContain('SimpleLoRA');
    expect(() => parseConfig(readFileSync(join(part1, 'lorafile.yaml'), 'utf8'), join(part1, 'lorafile.yaml'))).not.toThrow();
  });

  it('reads the API format and reports nodes it cannot map', () => {
    const api = {
      '1': { class_type: 'LoRATrainer', inputs: { ckpt_name: 'sd15.safetensors', use_custom_dataset: true, dataset_path: 'D:\\one-line-art', lora_checkpoint_folder: 'x', lora_name: 'ola', caption_column: 'text', learning_rate: 0.0002, batch_size: 2, training_steps: 300, checkpointing_steps: 100, rank: 8, random_seed: 7 } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15.safetensors' } },
      '3': { class_type: 'LoraLoader', inputs: { model: ['2', 0], clip: ['2', 1], lora_name: 'ola.safetensors', strength_model: 0.8, strength_clip: 1 } },
      '4': { class_type: 'CLIPTextEncode', inputs: { clip: ['3', 1], text: 'one-line-art, a face, side view' } },
      '5': { class_type: 'KSampler', inputs: { model: ['3', 0], positive: ['4', 0], negative: ['4', 0], latent_image: ['6', 0], seed: 3, steps: 20, cfg: 6, sampler_name: 'dpmpp_2m', scheduler: 'karras', denoise: 1 } },
      '6': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 768, batch_size: 1 } },
      '7': { class_type: 'UpscaleModelLoader', inputs: { model_name: 'x4.pth' } },
    };
    const dir = mkdtempSync(join(tmpdir(), 'lb-import-'));
    const file = join(dir, 'api.json');
    writeFileSync(file, JSON.stringify(api));
    const r = lorabuild(['import', 'comfyui', file, '--comfyui', '/opt/ComfyUI', '-o', join(dir, 'lorafile.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('node 7 (UpscaleModelLoader) is not mapped');
    const lorafile = parse(readFileSync(join(dir, 'lorafile.yaml'), 'utf8'));
    expect(lorafile.models.sd15).toEqual({ checkpoint: '/opt/ComfyUI/models/checkpoints/sd15.safetensors' });
    expect(lorafile.datasets['one-line-art']).toEqual({ folder: 'D:\\one-line-art' });
    expect(lorafile.loras.ola).toMatchObject({ rank: 8, learning_rate: 0.0002, batch_size: 2, steps: 300, checkpoint_every: 100, seed: 7, publish: '/opt/ComfyUI/models/loras/ola.safetensors', ...SIMPLELORA_RECIPE });
    expect(lorafile.renders.ola_ab).toEqual({
      lora: 'ola', prompts: ['one-line-art, a face, side view'], negative_prompt: 'one-line-art, a face, side view',
      seeds: [3], strengths: [0, 0.8], sampler: 'dpmpp_2m_karras', steps: 20, cfg: 6, width: 512, height: 768,
    });
    // never overwrites without --force
    const again = lorabuild(['import', 'comfyui', file, '-o', join(dir, 'lorafile.yaml')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('exists; pass --force');
  });

  it('stacked Load LoRA nodes become one ordered loras: list with both strengths, files resolved in --comfyui', () => {
    // lab part 1: no LoRATrainer, two downloaded LoRAs chained onto DreamShaper 8 (API format)
    const api = {
      '1': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'DreamShaper_8_pruned.safetensors' } },
      '2': { class_type: 'LoraLoader', inputs: { model: ['1', 0], clip: ['1', 1], lora_name: '80s_offset.safetensors', strength_model: 0.8, strength_clip: 0.7 } },
      '3': { class_type: 'LoraLoader', inputs: { model: ['2', 0], clip: ['2', 1], lora_name: 'style\\film_grain.safetensors', strength_model: -0.5, strength_clip: 1 } },
      '4': { class_type: 'CLIPTextEncode', inputs: { clip: ['3', 1], text: '80s, a man in a suit, film still' } },
      '5': { class_type: 'CLIPTextEncode', inputs: { clip: ['3', 1], text: '' } },
      '6': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '7': { class_type: 'KSampler', inputs: { model: ['3', 0], positive: ['4', 0], negative: ['5', 0], latent_image: ['6', 0], seed: 5, steps: 20, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 1 } },
    };
    const dir = mkdtempSync(join(tmpdir(), 'lb-import-'));
    writeFileSync(join(dir, 'part1.json'), JSON.stringify(api));
    const r = lorabuild(['import', 'comfyui', join(dir, 'part1.json'), '--comfyui', '/opt/ComfyUI']);
    expect(r.code, r.stderr).toBe(0);
    const lorafile = parse(r.stdout);
    expect(lorafile.models).toEqual({ DreamShaper_8_pruned: { checkpoint: '/opt/ComfyUI/models/checkpoints/DreamShaper_8_pruned.safetensors' } });
    expect(lorafile.loras).toBeUndefined();
    expect(lorafile.datasets).toBeUndefined();
    expect(lorafile.renders).toEqual({
      DreamShaper_8_pruned_ab: {
        model: 'DreamShaper_8_pruned',
        loras: [
          { file: '/opt/ComfyUI/models/loras/80s_offset.safetensors', strength_model: 0.8, strength_clip: 0.7 },
          { file: '/opt/ComfyUI/models/loras/style/film_grain.safetensors', strength_model: -0.5, strength_clip: 1 },
        ],
        prompts: ['80s, a man in a suit, film still'],
        seeds: [5],
        strengths: [0, 1],
        sampler: 'euler',
        steps: 20,
        cfg: 7,
        width: 512,
        height: 512,
      },
    });
    // what it writes is a valid lorafile
    expect(() => parseConfig(r.stdout, join(dir, 'lorafile.yaml'))).not.toThrow();
  });

  it('a trained LoRA stacked after a downloaded one: a lora: entry (LoraLoaderModelOnly: strength_clip 0) after the file', () => {
    const api = {
      '1': { class_type: 'LoRATrainer', inputs: { ckpt_name: 'sd15.safetensors', use_custom_dataset: true, dataset_path: 'data/ola', lora_checkpoint_folder: 'x', lora_name: 'ola', caption_column: 'text', learning_rate: 0.0001, batch_size: 1, training_steps: 100, checkpointing_steps: 50, rank: 4, random_seed: 0 } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15.safetensors' } },
      '3': { class_type: 'LoraLoader', inputs: { model: ['2', 0], clip: ['2', 1], lora_name: 'ink.safetensors', strength_model: 1, strength_clip: 1 } },
      '4': { class_type: 'LoraLoaderModelOnly', inputs: { model: ['3', 0], lora_name: 'ola.safetensors', strength_model: 0.9 } },
      '5': { class_type: 'CLIPTextEncode', inputs: { clip: ['3', 1], text: 'one-line-art, a face' } },
      '6': { class_type: 'KSampler', inputs: { model: ['4', 0], positive: ['5', 0], negative: ['5', 0], latent_image: ['7', 0], seed: 1, steps: 20, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 1 } },
      '7': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
    };
    const dir = mkdtempSync(join(tmpdir(), 'lb-import-'));
    writeFileSync(join(dir, 'stack.json'), JSON.stringify(api));
    const r = lorabuild(['import', 'comfyui', join(dir, 'stack.json'), '--comfyui', '/c']);
    expect(r.code, r.stderr).toBe(0);
    const render = parse(r.stdout).renders.sd15_ab;
    expect(render.model).toBeUndefined(); // the trained LoRA's model is the checkpoint the loaders start from
    expect(render.loras).toEqual([
      { file: '/c/models/loras/ink.safetensors', strength_model: 1, strength_clip: 1 },
      { lora: 'ola', strength_model: 0.9, strength_clip: 0 },
    ]);
    expect(() => parseConfig(r.stdout, join(dir, 'lorafile.yaml'))).not.toThrow();
  });

  it('fails clearly on a workflow without a LoRATrainer and on broken JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lb-import-'));
    writeFileSync(join(dir, 'none.json'), JSON.stringify({ '1': { class_type: 'KSampler', inputs: {} } }));
    const none = lorabuild(['import', 'comfyui', join(dir, 'none.json')]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no LoRATrainer node (SimpleLoRA) found');
    writeFileSync(join(dir, 'bad.json'), '{"nodes": [');
    const bad = lorabuild(['import', 'comfyui', join(dir, 'bad.json')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad\.json: not valid JSON/);
    expect(existsSync(join(dir, 'lorafile.yaml'))).toBe(false);
  });
});
