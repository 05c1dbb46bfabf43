import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { tempDirs } from './helpers/cli.js';

const temps = tempDirs();
afterAll(temps.cleanup);

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
    const dir = temps.make('lb-import-');
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
      seeds: [3], strengths: [0, 0.8], sampler: 'dpmpp_2m', scheduler: 'karras', steps: 20, cfg: 6, width: 512, height: 768,
    });
    // never overwrites without --force
    const again = lorabuild(['import', 'comfyui', file, '-o', join(dir, 'lorafile.yaml')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('exists; pass --force');
  });

  // a UI-format workflow: LoRATrainer, checkpoint -> LoRA loader(s) -> KSampler(s), as the lab builds it
  type UiNode = { id: number; type: string; mode?: number; widgets_values?: unknown[]; inputs?: { name: string; link: number | null }[] };
  function uiWorkflow(extra: UiNode[], links: [number, number, number, number, number, string][]) {
    const trainer: UiNode = {
      id: 1, type: 'LoRATrainer',
      widgets_values: ['sd15.safetensors', true, 'datasets/ola', 'x', 'ola', 'text', 0.0001, 1, 100, 50, 4, 0],
    };
    return { nodes: [trainer, ...extra], links };
  }
  const sampler = (id: number, widgets: unknown[], inputs: Record<string, number>): UiNode => ({
    id, type: 'KSampler', widgets_values: widgets, inputs: Object.entries(inputs).map(([name, link]) => ({ name, link })),
  });
  function importUi(doc: unknown) {
    const dir = temps.make('lb-import-');
    const file = join(dir, 'workflow.json');
    writeFileSync(file, JSON.stringify(doc));
    const r = lorabuild(['import', 'comfyui', file, '--comfyui', '/opt/ComfyUI']);
    return { ...r, lorafile: r.code === 0 ? parse(r.stdout) : undefined };
  }
  const base: UiNode[] = [
    { id: 2, type: 'CheckpointLoaderSimple', widgets_values: ['sd15.safetensors'] },
    { id: 4, type: 'CLIPTextEncode', widgets_values: ['ola, a face'], inputs: [{ name: 'clip', link: 2 }] },
    { id: 5, type: 'CLIPTextEncode', widgets_values: ['blurry'], inputs: [{ name: 'clip', link: 3 }] },
    { id: 6, type: 'EmptyLatentImage', widgets_values: [512, 768, 1] },
  ];
  const baseLinks: [number, number, number, number, number, string][] = [
    [2, 2, 1, 4, 0, 'CLIP'], [3, 2, 1, 5, 0, 'CLIP'], [5, 4, 0, 7, 1, 'CONDITIONING'], [6, 5, 0, 7, 2, 'CONDITIONING'], [8, 6, 0, 7, 3, 'LATENT'],
  ];

  it('carries sampler and scheduler over by their ComfyUI names (euler + karras)', () => {
    const r = importUi(uiWorkflow([
      ...base,
      { id: 3, type: 'LoraLoaderModelOnly', widgets_values: ['ola.safetensors', 0.7], inputs: [{ name: 'model', link: 1 }] },
      sampler(7, [11, 'fixed', 30, 5.5, 'euler', 'karras', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
    ], [[1, 2, 0, 3, 0, 'MODEL'], [4, 3, 0, 7, 0, 'MODEL'], ...baseLinks]));
    expect(r.code, r.stderr).toBe(0);
    expect(r.lorafile.renders.ola_ab).toEqual({
      lora: 'ola', prompts: ['ola, a face'], negative_prompt: 'blurry', seeds: [11], strengths: [0, 0.7],
      sampler: 'euler', scheduler: 'karras', steps: 30, cfg: 5.5, width: 512, height: 768,
    });
    // a sampler or scheduler lorabuild lacks is named in a note, never silently swapped
    const other = importUi(uiWorkflow([
      ...base,
      { id: 3, type: 'LoraLoaderModelOnly', widgets_values: ['ola.safetensors', 1], inputs: [{ name: 'model', link: 1 }] },
      sampler(7, [11, 'fixed', 30, 5.5, 'uni_pc', 'kl_optimal', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
    ], [[1, 2, 0, 3, 0, 'MODEL'], [4, 3, 0, 7, 0, 'MODEL'], ...baseLinks]));
    expect(other.lorafile.renders.ola_ab).toMatchObject({ sampler: 'euler', scheduler: 'normal' });
    expect(other.stderr).toContain('sampler "uni_pc" is not available in lorabuild');
    expect(other.stderr).toContain('scheduler "kl_optimal" is not available in lorabuild');
  });

  it('ignores muted nodes and passes through bypassed ones', () => {
    const r = importUi(uiWorkflow([
      ...base,
      // model: checkpoint -> LoRA A (bypassed) -> LoRA B -> KSampler 7; a muted KSampler 9 and a muted extra trainer
      { id: 3, type: 'LoraLoaderModelOnly', mode: 4, widgets_values: ['other.safetensors', 0.3], inputs: [{ name: 'model', link: 1 }] },
      { id: 10, type: 'LoraLoaderModelOnly', widgets_values: ['ola.safetensors', 0.9], inputs: [{ name: 'model', link: 10 }] },
      sampler(7, [11, 'fixed', 30, 5.5, 'dpmpp_2m', 'karras', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
      { ...sampler(9, [12, 'fixed', 30, 5.5, 'euler', 'normal', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }), mode: 2 },
      { id: 11, type: 'LoRATrainer', mode: 2, widgets_values: ['sd15.safetensors', true, 'datasets/zzz', 'x', 'zzz', 'text', 0.0001, 1, 100, 50, 4, 0] },
      { id: 12, type: 'UpscaleModelLoader', mode: 4, widgets_values: ['x4.pth'] },
    ], [[1, 2, 0, 3, 0, 'MODEL'], [10, 3, 0, 10, 0, 'MODEL'], [4, 10, 0, 7, 0, 'MODEL'], ...baseLinks]));
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(r.lorafile.loras)).toEqual(['ola']);
    expect(Object.keys(r.lorafile.renders)).toEqual(['ola_ab']);
    expect(r.lorafile.renders.ola_ab).toMatchObject({ strengths: [0, 0.9], sampler: 'dpmpp_2m', scheduler: 'karras' });
    expect(r.stderr).toContain('node 9 (KSampler) is muted: ignored');
    expect(r.stderr).toContain('node 11 (LoRATrainer) is muted: ignored');
    expect(r.stderr).toContain('node 3 (LoraLoaderModelOnly) is bypassed: its inputs pass through');
    expect(r.stderr).not.toContain('UpscaleModelLoader) is not mapped');
    // with the only LoRA loader bypassed, the KSampler samples the bare checkpoint: no A/B render
    const bare = importUi(uiWorkflow([
      ...base,
      { id: 3, type: 'LoraLoaderModelOnly', mode: 4, widgets_values: ['ola.safetensors', 1], inputs: [{ name: 'model', link: 1 }] },
      sampler(7, [11, 'fixed', 30, 5.5, 'euler', 'normal', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
    ], [[1, 2, 0, 3, 0, 'MODEL'], [4, 3, 0, 7, 0, 'MODEL'], ...baseLinks]));
    expect(bare.lorafile.renders).toBeUndefined();
    expect(bare.stderr).toContain('node 7 (KSampler) samples without a LoRA loader');
    // a muted loader in the model chain: ComfyUI cannot run the KSampler, nothing is imported for it
    const cut = importUi(uiWorkflow([
      ...base,
      { id: 3, type: 'LoraLoaderModelOnly', widgets_values: ['ola.safetensors', 1], inputs: [{ name: 'model', link: 1 }] },
      { id: 10, type: 'LoraLoaderModelOnly', mode: 2, widgets_values: ['ola.safetensors', 0.5], inputs: [{ name: 'model', link: 10 }] },
      sampler(7, [11, 'fixed', 30, 5.5, 'euler', 'normal', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
    ], [[1, 2, 0, 3, 0, 'MODEL'], [10, 3, 0, 10, 0, 'MODEL'], [4, 10, 0, 7, 0, 'MODEL'], ...baseLinks]));
    expect(cut.lorafile.renders).toBeUndefined();
    expect(cut.stderr).toContain('node 7 (KSampler) takes its model from muted node 10 (LoraLoaderModelOnly), so ComfyUI cannot run it; left out');
    // ... also further up the chain
    const deep = importUi(uiWorkflow([
      ...base,
      { id: 3, type: 'LoraLoaderModelOnly', mode: 2, widgets_values: ['other.safetensors', 1], inputs: [{ name: 'model', link: 1 }] },
      { id: 10, type: 'LoraLoaderModelOnly', widgets_values: ['ola.safetensors', 0.5], inputs: [{ name: 'model', link: 10 }] },
      sampler(7, [11, 'fixed', 30, 5.5, 'euler', 'normal', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
    ], [[1, 2, 0, 3, 0, 'MODEL'], [10, 3, 0, 10, 0, 'MODEL'], [4, 10, 0, 7, 0, 'MODEL'], ...baseLinks]));
    expect(deep.lorafile.renders).toBeUndefined();
    expect(deep.stderr).toContain('node 7 (KSampler): its model passes through muted node 3 (LoraLoaderModelOnly), so ComfyUI cannot run it; left out');
  });

  it('imports denoise and img2img, and reports a hires-fix second pass instead of rendering it at the wrong size', () => {
    const r = importUi(uiWorkflow([
      ...base,
      { id: 3, type: 'LoraLoaderModelOnly', widgets_values: ['ola.safetensors', 1], inputs: [{ name: 'model', link: 1 }] },
      sampler(7, [11, 'fixed', 20, 7, 'euler_ancestral', 'normal', 1], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
      { id: 20, type: 'LatentUpscale', widgets_values: ['nearest-exact', 1024, 1536, 'disabled'], inputs: [{ name: 'samples', link: 20 }] },
      sampler(21, [11, 'fixed', 12, 7, 'euler_ancestral', 'normal', 0.5], { model: 4, positive: 5, negative: 6, latent_image: 21 }),
      { id: 30, type: 'LoadImage', widgets_values: ['face.png', 'image'] },
      { id: 31, type: 'VAEEncode', inputs: [{ name: 'pixels', link: 30 }, { name: 'vae', link: null }] },
      sampler(32, [5, 'fixed', 20, 7, 'dpmpp_2m', 'karras', 0.6], { model: 4, positive: 5, negative: 6, latent_image: 31 }),
      sampler(33, [6, 'fixed', 20, 7, 'euler', 'normal', 0.75], { model: 4, positive: 5, negative: 6, latent_image: 8 }),
    ], [[1, 2, 0, 3, 0, 'MODEL'], [4, 3, 0, 7, 0, 'MODEL'], ...baseLinks, [20, 7, 0, 20, 0, 'LATENT'], [21, 20, 0, 21, 3, 'LATENT'], [30, 30, 0, 31, 0, 'IMAGE'], [31, 31, 0, 32, 3, 'LATENT']]));
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(r.lorafile.renders)).toEqual(['ola_ab', 'ola_ab2', 'ola_ab3']);
    expect(r.lorafile.renders.ola_ab).toMatchObject({ sampler: 'euler_ancestral', steps: 20, width: 512, height: 768 });
    expect(r.lorafile.renders.ola_ab.denoise).toBeUndefined();
    expect(r.lorafile.renders.ola_ab2).toMatchObject({ seeds: [5], sampler: 'dpmpp_2m', scheduler: 'karras', denoise: 0.6, init_image: '/opt/ComfyUI/input/face.png' });
    expect(r.lorafile.renders.ola_ab2.width).toBeUndefined();
    expect(r.lorafile.renders.ola_ab3).toMatchObject({ seeds: [6], denoise: 0.75, width: 512, height: 768 });
    expect(r.stderr).toContain('node 21 (KSampler) is a second pass (denoise 0.5) over the latent of node 20 (LatentUpscale), upscaled to 1024x1536');
    expect(r.stderr).toContain('node 32 (KSampler) re-noises node 30 (LoadImage) "face.png" (img2img, denoise 0.6)');
    // no render comes out at the first pass's size for the second pass
    expect(Object.values(r.lorafile.renders).filter((x) => (x as { steps: number }).steps === 12)).toHaveLength(0);
  });

  it('skips a render whose API-format text comes from another node, and keeps the rest', () => {
    const api = {
      '1': { class_type: 'LoRATrainer', inputs: { ckpt_name: 'sd15.safetensors', use_custom_dataset: true, dataset_path: 'datasets/ola', lora_checkpoint_folder: 'x', lora_name: 'ola', caption_column: 'text', learning_rate: 0.0001, batch_size: 1, training_steps: 100, checkpointing_steps: 50, rank: 4, random_seed: 0 } },
      '2': { class_type: 'CheckpointLoaderSimple', inputs: { ckpt_name: 'sd15.safetensors' } },
      '3': { class_type: 'LoraLoaderModelOnly', inputs: { model: ['2', 0], lora_name: 'ola.safetensors', strength_model: 1 } },
      '4': { class_type: 'CLIPTextEncode', inputs: { clip: ['2', 1], text: ['9', 0] } },
      '5': { class_type: 'CLIPTextEncode', inputs: { clip: ['2', 1], text: '' } },
      '6': { class_type: 'EmptyLatentImage', inputs: { width: 512, height: 512, batch_size: 1 } },
      '7': { class_type: 'KSampler', inputs: { model: ['3', 0], positive: ['4', 0], negative: ['5', 0], latent_image: ['6', 0], seed: 1, steps: 20, cfg: 7, sampler_name: 'euler', scheduler: 'normal', denoise: 1 } },
      '8': { class_type: 'CLIPTextEncode', inputs: { clip: ['2', 1], text: 'ola, a cat' } },
      '10': { class_type: 'KSampler', inputs: { model: ['3', 0], positive: ['8', 0], negative: ['5', 0], latent_image: ['6', 0], seed: 2, steps: 20, cfg: 7, sampler_name: 'euler', scheduler: 'simple', denoise: 1 } },
      '9': { class_type: 'StringConcatenate', inputs: { string_a: 'ola, ', string_b: 'a dog' } },
    };
    const r = importUi(api);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('node 4 (CLIPTextEncode) takes its text from node 9 (StringConcatenate), which lorabuild cannot evaluate; the render of node 7 (KSampler) was left out');
    expect(Object.keys(r.lorafile.renders)).toEqual(['ola_ab']);
    expect(r.lorafile.renders.ola_ab).toMatchObject({ prompts: ['ola, a cat'], seeds: [2], scheduler: 'simple' });
  });

  it('says so when a JSON file is not a workflow', () => {
    const dir = temps.make('lb-import-');
    for (const [name, doc] of [['settings.json', { 'Comfy.Locale': 'en', 'Comfy.Sidebar': 'left' }], ['list.json', [1, 2]], ['empty.json', {}]] as const) {
      writeFileSync(join(dir, name), JSON.stringify(doc));
      const r = lorabuild(['import', 'comfyui', join(dir, name)]);
      expect(r.code, name).toBe(2);
      expect(r.stderr).toContain(`${name}: not a ComfyUI workflow`);
      expect(r.stderr).toContain("export the workflow with ComfyUI's Save");
    }
    expect(lorabuild(['import', 'comfyui', join(dir, 'settings.json')]).stderr).toContain('top-level keys "Comfy.Locale", "Comfy.Sidebar"');
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
    const dir = temps.make('lb-import-');
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
        scheduler: 'normal',
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
    const dir = temps.make('lb-import-');
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
    const dir = temps.make('lb-import-');
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
