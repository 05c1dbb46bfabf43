// What is in a .safetensors file: a LoRA (key style, adapter kinds, family, rank, alpha, targets,
// trigger words, metadata, and whether it fits an SD1 model; see loras/analyze.ts) or a checkpoint
// (which family).
import { analyzeLoraFile, type AdapterLabel, type LoraAnalysis } from '../loras/analyze.js';
import type { LoraFamily } from '../loras/family.js';
import type { KeyStyle } from '../loras/spellings.js';
import { readSafetensorsHeader } from './io.js';
import type { SafetensorsHeader } from './format.js';
import type { Sd1Arch } from './sd15.js';

export type LoraFormat = KeyStyle | 'mixed';

export interface FitProblem {
  module: string;
  problem: string;
}

export interface LoraInfo {
  /** the key style: kohya (lora_unet_/lora_te_), diffusers (unet./text_encoder.), peft (base_model.model.), comfyui */
  format: LoraFormat;
  /** adapter modules in the file */
  modules: number;
  /** LoRA, LoCon (conv layers), LoHa, LoKr, DoRA */
  kinds: AdapterLabel[];
  /** the base model family the keys and shapes say (sd1, sd2, sdxl, sd3, flux, other) and why */
  family: LoraFamily;
  familyEvidence: string[];
  /** distinct ranks (usually one) */
  ranks: number[];
  /** distinct alphas; empty when the file has no alpha (scale 1) */
  alphas: number[];
  /** module count per group (attention, proj, ff, resnet, text, ...) */
  targets: Record<string, number>;
  /** trigger words from the metadata (modelspec.trigger_phrase, trigger fields, ss_tag_frequency) */
  triggers: string[];
  /**
   * Fit to the UNet and text encoder of `arch` (SD1.5, or lorabuild's tiny/toy builtin when its shapes
   * say so): module prefixes and keys it does not know, and modules whose shapes do not fit.
   */
  fit: { arch: Sd1Arch; fits: boolean; unknown: string[]; mismatched: FitProblem[] };
}

export interface CheckpointInfo {
  layout: 'ldm' | 'diffusers' | 'unknown';
  family: 'sd1' | 'sd2' | 'sdxl' | 'unknown';
  /** from lorabuild's own builtin models */
  arch: string | null;
  unetKeys: number;
  vaeKeys: number;
  textEncoderKeys: number;
}

export interface SafetensorsInfo {
  file: string;
  kind: 'lora' | 'checkpoint' | 'unknown';
  tensors: number;
  bytes: number;
  dtypes: Record<string, number>;
  metadata: Record<string, string>;
  lora?: LoraInfo;
  checkpoint?: CheckpointInfo;
}

function checkpointInfo(header: SafetensorsHeader): CheckpointInfo | null {
  const names = [...header.tensors.keys()];
  const count = (prefix: string) => names.filter((n) => n.startsWith(prefix)).length;
  const ldmUnet = count('model.diffusion_model.');
  const conditioner = count('conditioner.embedders.');
  const diffusersUnet = names.filter((n) => /^(unet\.)?(down_blocks|mid_block|up_blocks)\./.test(n)).length;
  if (ldmUnet === 0 && diffusersUnet === 0) return null;
  const arch = header.metadata['lorabuild.arch'] ?? null;
  let family: CheckpointInfo['family'] = 'unknown';
  if (conditioner > 0) family = 'sdxl';
  else {
    const crossAttn = header.tensors.get('model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight')
      ?? header.tensors.get('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight')
      ?? header.tensors.get('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight');
    if (crossAttn?.shape[1] === 768) family = 'sd1';
    else if (crossAttn?.shape[1] === 1024) family = 'sd2';
    else if (arch) family = 'sd1';
  }
  return {
    layout: ldmUnet > 0 ? 'ldm' : 'diffusers',
    family,
    arch,
    unetKeys: ldmUnet || diffusersUnet,
    vaeKeys: count('first_stage_model.') + count('vae.'),
    textEncoderKeys: count('cond_stage_model.') + count('text_encoder.') + count('te.') + count('conditioner.'),
  };
}

/** `arch`: judge a LoRA's fit against this UNet instead of the one its metadata names. */
export async function inspectSafetensors(file: string, options: { arch?: 'sd15' | 'tiny' } = {}): Promise<SafetensorsInfo> {
  const header = await readSafetensorsHeader(file);
  const dtypes: Record<string, number> = {};
  let bytes = 0;
  for (const t of header.tensors.values()) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    bytes += t.end - t.begin;
  }
  const info: SafetensorsInfo = { file, kind: 'unknown', tensors: header.tensors.size, bytes, dtypes, metadata: header.metadata };
  const lora = await analyzeLoraFile(file, undefined, header);
  if (lora) {
    info.kind = 'lora';
    info.lora = loraInfo(lora);
    return info;
  }
  const checkpoint = checkpointInfo(header);
  if (checkpoint) {
    info.kind = 'checkpoint';
    info.checkpoint = checkpoint;
  }
  return info;
}

function loraInfo(a: LoraAnalysis): LoraInfo {
  const { binding } = a;
  return {
    format: a.style,
    modules: a.moduleCount,
    kinds: a.kinds,
    family: a.family.family,
    familyEvidence: a.family.evidence,
    ranks: a.ranks,
    alphas: a.alphaValues,
    targets: a.targets as Record<string, number>,
    triggers: a.triggers,
    fit: {
      arch: a.arch,
      fits: a.family.family === 'sd1' && binding.unknownKeys.length === 0 && binding.problems.length === 0,
      unknown: binding.unknownModules,
      mismatched: binding.problems.map((p) => ({ module: p.prefix, problem: p.problem })),
    },
  };
}
