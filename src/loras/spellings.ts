// Every way a LoRA file may name a module of an SD1 model, mapped to the module. The canonical name
// of a module is its kohya name (lora_unet_<diffusers path with _> / lora_te_<text path with _>),
// which is also how the worker indexes modules.
//
// The spellings ComfyUI's comfy/lora.py maps for SD1 (model_lora_keys_unet / model_lora_keys_clip):
//   lora_unet_<diffusers path _>, lora_unet_<LDM path _>, lycoris_<diffusers path _>,
//   diffusion_model.<LDM path>, [unet.]<diffusers path with .processor.to_* (to_out without .0)>,
//   lora_te_ / lora_te1_ + <text path _>, text_encoder.<text path>, text_encoders.clip_l.transformer.<text path>
// and, beyond ComfyUI (which reports them as "lora key not loaded", see diffusers issue #10860):
//   [unet.]<diffusers path> (diffusers >= 0.24 / PEFT saves), base_model.model.<diffusers path> (PEFT),
//   lora_te_transformer_<text path _> (A1111's old compvis spelling of the text encoder).
import { SD1_ARCHES, sd15KohyaModules, sd15TextEncoderModules, type LoraModule, type Sd1Arch, type UnetArch } from '../safetensors/sd15.js';

/** How a file spelled a module name: the key style families lorabuild reports. */
export type KeyStyle = 'kohya' | 'diffusers' | 'peft' | 'comfyui';

export interface Spelled {
  module: LoraModule;
  style: KeyStyle;
}

export interface ArchModules {
  arch: Sd1Arch;
  /** every spelling -> module */
  bySpelling: Map<string, Spelled>;
  /** canonical (kohya) name -> module */
  modules: Map<string, LoraModule>;
}

const RESNET_LDM: Record<string, string> = { conv1: 'in_layers.2', conv2: 'out_layers.3', time_emb_proj: 'emb_layers.1', conv_shortcut: 'skip_connection' };

/** The LDM (single-file checkpoint) path of a UNet module given by its diffusers path; null for none. */
export function ldmUnetPath(path: string, arch: UnetArch): string | null {
  const per = arch.layersPerBlock + 1;
  const levels = arch.channels.length;
  const fixed: Record<string, string> = { conv_in: 'input_blocks.0.0', 'time_embedding.linear_1': 'time_embed.0', 'time_embedding.linear_2': 'time_embed.2', conv_norm_out: 'out.0', conv_out: 'out.2' };
  if (fixed[path]) return fixed[path];
  const inner = (kind: string, rest: string | undefined) => (kind === 'resnets' ? (rest && RESNET_LDM[rest]) || null : rest ? `1.${rest}` : '1');
  let m = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(?:\.(.+))?$/.exec(path);
  if (m) {
    const tail = inner(m[2], m[4]);
    return tail === null ? null : `input_blocks.${1 + Number(m[1]) * per + Number(m[3])}.${m[2] === 'resnets' ? `0.${tail}` : tail}`;
  }
  if ((m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv$/.exec(path))) return `input_blocks.${1 + Number(m[1]) * per + arch.layersPerBlock}.0.op`;
  if ((m = /^mid_block\.(resnets|attentions)\.(\d+)(?:\.(.+))?$/.exec(path))) {
    const slot = m[1] === 'attentions' ? 1 : Number(m[2]) === 0 ? 0 : 2;
    const tail = m[1] === 'resnets' ? (m[3] && RESNET_LDM[m[3]]) || null : m[3] ?? '';
    return tail === null ? null : `middle_block.${slot}${tail ? `.${tail}` : ''}`;
  }
  if ((m = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)(?:\.(.+))?$/.exec(path))) {
    const tail = inner(m[2], m[4]);
    return tail === null ? null : `output_blocks.${Number(m[1]) * per + Number(m[3])}.${m[2] === 'resnets' ? `0.${tail}` : tail}`;
  }
  if ((m = /^up_blocks\.(\d+)\.upsamplers\.0\.conv$/.exec(path))) {
    const level = levels - 1 - Number(m[1]);
    return `output_blocks.${Number(m[1]) * per + arch.layersPerBlock}.${arch.attention[level] ? 2 : 1}.conv`;
  }
  return null;
}

const underscored = (p: string) => p.replace(/\./g, '_');

/** diffusers' attention-processor spelling: attn1.to_q -> attn1.processor.to_q, to_out.0 -> processor.to_out */
const processorPath = (p: string) => p.replace(/\.to_/g, '.processor.to_').replace(/\.to_out\.0$/, '.to_out');

function unetSpellings(path: string, arch: UnetArch): [string, KeyStyle][] {
  const ldm = ldmUnetPath(path, arch);
  const out: [string, KeyStyle][] = [
    [`lora_unet_${underscored(path)}`, 'kohya'],
    [`lycoris_${underscored(path)}`, 'kohya'],
    [path, 'diffusers'],
    [`unet.${path}`, 'diffusers'],
    [processorPath(path), 'diffusers'],
    [`unet.${processorPath(path)}`, 'diffusers'],
    [`base_model.model.${path}`, 'peft'],
  ];
  if (ldm) out.push([`lora_unet_${underscored(ldm)}`, 'kohya'], [`diffusion_model.${ldm}`, 'comfyui']);
  return out;
}

function textSpellings(path: string): [string, KeyStyle][] {
  return [
    [`lora_te_${underscored(path)}`, 'kohya'],
    [`lora_te1_${underscored(path)}`, 'kohya'],
    [`lora_te_transformer_${underscored(path)}`, 'kohya'],
    [`text_encoder.${path}`, 'diffusers'],
    [`text_encoders.clip_l.transformer.${path}`, 'comfyui'],
  ];
}

const tables = new Map<Sd1Arch, ArchModules>();

/** The module tables of an SD1 architecture (built once). */
export function archModules(arch: Sd1Arch): ArchModules {
  let table = tables.get(arch);
  if (table) return table;
  const { unet, text } = SD1_ARCHES[arch];
  const modules = new Map<string, LoraModule>();
  const bySpelling = new Map<string, Spelled>();
  const add = (module: LoraModule, spellings: [string, KeyStyle][]) => {
    modules.set(module.kohya, module);
    for (const [spelling, style] of spellings) {
      const other = bySpelling.get(spelling);
      if (other && other.module !== module) throw new Error(`spellings: '${spelling}' names both ${other.module.kohya} and ${module.kohya}`);
      if (!other) bySpelling.set(spelling, { module, style });
    }
  };
  for (const module of sd15KohyaModules(unet).values()) add(module, unetSpellings(module.path, unet));
  for (const module of sd15TextEncoderModules(text).values()) add(module, textSpellings(module.path));
  table = { arch, bySpelling, modules };
  tables.set(arch, table);
  return table;
}
