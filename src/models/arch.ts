// Which SD model a file or a diffusers config describes, before any weight is read: the family
// (sd1 is what lorabuild trains; sd2, sdxl and LoRAs are refused) and, for SD1, the architecture
// by the UNet's first width (320: SD1.5, 32: lorabuild's tiny, 16: lorabuild's toy). Every one of
// them tokenizes with CLIP's BPE.
import type { SafetensorsHeader } from '../safetensors/format.js';
import { SD15_UNET, TINY_UNET, TOY_UNET, type Sd1Arch } from '../safetensors/sd15.js';

export type ModelArch = Sd1Arch;
export type ModelFamily = 'sd1' | 'sd2' | 'sdxl' | 'lora' | 'unknown';

export interface ModelKind {
  family: ModelFamily;
  /** SD1 only; null for widths lorabuild does not know */
  arch: ModelArch | null;
}

function archOfWidth(width: number | undefined): ModelArch | null {
  if (width === SD15_UNET.channels[0]) return 'sd15';
  if (width === TINY_UNET.channels[0]) return 'tiny';
  if (width === TOY_UNET.channels[0]) return 'toy';
  return null;
}

function familyOfContext(contextDim: number | undefined): ModelFamily {
  if (contextDim === 1024) return 'sd2';
  if (contextDim === 2048) return 'sdxl';
  return contextDim === undefined ? 'unknown' : 'sd1';
}

/** An LDM single file, or a diffusers unet weights file (first shard is enough). */
export function kindOfHeader(header: SafetensorsHeader): ModelKind {
  const names = [...header.tensors.keys()];
  if (names.some((n) => /^lora_(unet|te\d?)_|\.lora_(down|up|A|B)\b|\.lora\.(down|up)\./.test(n))) return { family: 'lora', arch: null };
  if (names.some((n) => n.startsWith('conditioner.embedders.') || n === 'model.diffusion_model.label_emb.0.0.weight' || n.startsWith('add_embedding.'))) return { family: 'sdxl', arch: null };
  const shape = (name: string) => header.tensors.get(name)?.shape;
  const declared = header.metadata['lorabuild.arch'];
  const convIn = shape('model.diffusion_model.input_blocks.0.0.weight') ?? shape('conv_in.weight');
  const toK = shape('model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight') ?? shape('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight');
  if (!convIn) return { family: 'unknown', arch: null };
  const family = names.some((n) => n.startsWith('cond_stage_model.model.')) ? 'sd2' : familyOfContext(toK?.[1]);
  if (family !== 'sd1' && family !== 'unknown') return { family, arch: null };
  const arch = declared === 'tiny' || declared === 'toy' || declared === 'sd15' ? declared : archOfWidth(convIn[0]);
  return { family: 'sd1', arch };
}

/** A diffusers unet/config.json (UNet2DConditionModel). */
export function kindOfUnetConfig(config: unknown): ModelKind {
  const c = (config && typeof config === 'object' ? config : {}) as Record<string, unknown>;
  if (c.addition_embed_type !== undefined && c.addition_embed_type !== null) return { family: 'sdxl', arch: null };
  const context = Array.isArray(c.cross_attention_dim) ? undefined : (c.cross_attention_dim as number | undefined);
  const family = familyOfContext(typeof context === 'number' ? context : undefined);
  if (family !== 'sd1') return { family, arch: null };
  const widths = c.block_out_channels;
  return { family, arch: archOfWidth(Array.isArray(widths) && typeof widths[0] === 'number' ? widths[0] : undefined) };
}
