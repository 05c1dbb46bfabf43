// What is in a .safetensors file: a LoRA (kohya, diffusers or PEFT key style: rank, alpha,
// targets, metadata, and whether it fits an SD1.5 UNet) or a checkpoint (which family).
import { readSafetensorsHeader, readTensorBytes, toFloat32 } from './io.js';
import type { SafetensorsHeader, TensorInfo } from './format.js';
import { ARCHS, builtinArchOf, sd15KohyaModules, sd15TextEncoderModules, type LoraModule, type ModelArch, type ModuleGroup } from './sd15.js';

export type LoraFormat = 'kohya' | 'diffusers' | 'peft';

export interface LoraPair {
  /** kohya-style module name (lora_unet_... / lora_te_...) */
  module: string;
  down?: number[];
  up?: number[];
  alpha?: number;
}

export interface FitProblem {
  module: string;
  problem: string;
}

export interface LoraInfo {
  format: LoraFormat;
  modules: number;
  /** distinct ranks (usually one) */
  ranks: number[];
  /** distinct alphas; empty when the file has no alpha (scale 1) */
  alphas: number[];
  /** module count per group (attention, proj, ff, resnet, text, ...) */
  targets: Record<string, number>;
  /**
   * Fit to the UNet (and text encoder) of `arch`: SD1.5, or lorabuild's tiny/toy builtin when the
   * file says it was trained on it. Names it does not know, and shapes that do not match.
   */
  fit: { arch: ModelArch; fits: boolean; unknown: string[]; mismatched: FitProblem[] };
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

const KOHYA = /^(lora_(?:unet|te\d?)_.+?)\.(lora_down\.weight|lora_up\.weight|alpha)$/;
const PEFT = /^(?:base_model\.model\.)(.+?)\.(lora_A|lora_B)(?:\.default)?\.weight$/;
const DIFFUSERS = /^((?:unet|text_encoder)\..+?)\.(?:lora\.)?(down|up|lora_A|lora_B)\.weight$/;
const DIFFUSERS_ALPHA = /^((?:unet|text_encoder)\..+?)\.alpha$/;

/** diffusers/PEFT module path -> kohya name (attention-processor spellings normalised). */
function kohyaName(path: string): string {
  let p = path.replace(/\.processor\./, '.').replace(/\.(to_[qkv])_lora$/, '.$1').replace(/\.to_out_lora$/, '.to_out.0');
  let prefix = 'lora_unet_';
  if (p.startsWith('unet.')) p = p.slice(5);
  else if (p.startsWith('text_encoder.')) {
    p = p.slice('text_encoder.'.length);
    prefix = 'lora_te_';
  }
  return prefix + p.replace(/\./g, '_');
}

export function loraPairs(header: SafetensorsHeader): { format: LoraFormat; pairs: Map<string, LoraPair>; alphaTensors: Map<string, TensorInfo> } | null {
  const pairs = new Map<string, LoraPair>();
  const alphaTensors = new Map<string, TensorInfo>();
  const counts: Record<LoraFormat, number> = { kohya: 0, diffusers: 0, peft: 0 };
  const pair = (name: string) => {
    let p = pairs.get(name);
    if (!p) pairs.set(name, (p = { module: name }));
    return p;
  };
  for (const t of header.tensors.values()) {
    let m;
    if ((m = KOHYA.exec(t.name))) {
      counts.kohya++;
      if (m[2] === 'alpha') alphaTensors.set(m[1], t);
      else pair(m[1])[m[2] === 'lora_down.weight' ? 'down' : 'up'] = t.shape;
      if (m[2] === 'alpha') pair(m[1]);
    } else if ((m = PEFT.exec(t.name))) {
      counts.peft++;
      pair(kohyaName(m[1]))[m[2] === 'lora_A' ? 'down' : 'up'] = t.shape;
    } else if ((m = DIFFUSERS.exec(t.name))) {
      counts.diffusers++;
      pair(kohyaName(m[1]))[m[2] === 'down' || m[2] === 'lora_A' ? 'down' : 'up'] = t.shape;
    } else if ((m = DIFFUSERS_ALPHA.exec(t.name))) {
      alphaTensors.set(kohyaName(m[1]), t);
      pair(kohyaName(m[1]));
    }
  }
  if (pairs.size === 0) return null;
  const format = (Object.entries(counts).sort((a, b) => b[1] - a[1])[0][0]) as LoraFormat;
  return { format, pairs, alphaTensors };
}

function checkPair(pair: LoraPair, module: LoraModule): string | null {
  const [out, inp, ...kernel] = module.shape;
  const { down, up } = pair;
  if (!down || !up) return `needs both lora_down and lora_up (has ${down ? 'down' : up ? 'up' : 'only alpha'})`;
  const rank = down[0];
  const conv = module.kind === 'conv';
  const expectDown = conv ? [rank, inp, ...kernel] : [rank, inp];
  const expectUp = conv ? [out, rank, 1, 1] : [out, rank];
  // a 1x1 conv may also be stored as a linear pair by some trainers
  const linearOk = conv && kernel.every((k) => k === 1) && same(down, [rank, inp]) && same(up, [out, rank]);
  if ((same(down, expectDown) && same(up, expectUp)) || linearOk) return null;
  return `down ${fmt(down)} / up ${fmt(up)}, expected ${fmt(expectDown)} / ${fmt(expectUp)} for ${module.kind} ${fmt(module.shape)}`;
}

const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const fmt = (s: number[]) => `[${s.join(', ')}]`;

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

export async function inspectSafetensors(file: string): Promise<SafetensorsInfo> {
  const header = await readSafetensorsHeader(file);
  const dtypes: Record<string, number> = {};
  let bytes = 0;
  for (const t of header.tensors.values()) {
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    bytes += t.end - t.begin;
  }
  const info: SafetensorsInfo = { file, kind: 'unknown', tensors: header.tensors.size, bytes, dtypes, metadata: header.metadata };
  const lora = loraPairs(header);
  if (lora) {
    info.kind = 'lora';
    const arch = builtinArchOf(header.metadata) ?? 'sd15';
    info.lora = await loraInfo(file, arch, lora.format, lora.pairs, lora.alphaTensors);
    return info;
  }
  const checkpoint = checkpointInfo(header);
  if (checkpoint) {
    info.kind = 'checkpoint';
    info.checkpoint = checkpoint;
  }
  return info;
}

async function loraInfo(file: string, arch: ModelArch, format: LoraFormat, pairs: Map<string, LoraPair>, alphaTensors: Map<string, TensorInfo>): Promise<LoraInfo> {
  const unet = sd15KohyaModules(ARCHS[arch].unet);
  const text = sd15TextEncoderModules(ARCHS[arch].text);
  const ranks = new Set<number>();
  const alphas = new Set<number>();
  const targets: Record<string, number> = {};
  const unknown: string[] = [];
  const mismatched: FitProblem[] = [];
  for (const [name, pair] of pairs) {
    const alphaTensor = alphaTensors.get(name);
    if (alphaTensor && alphaTensor.end - alphaTensor.begin <= 8) {
      const [alpha] = toFloat32(alphaTensor.dtype, await readTensorBytes(file, alphaTensor));
      pair.alpha = alpha;
      alphas.add(alpha);
    }
    if (pair.down) ranks.add(pair.down[0]);
    // kohya's text-encoder names come as lora_te_ or lora_te1_
    const module = unet.get(name) ?? text.get(name.replace(/^lora_te\d_/, 'lora_te_'));
    if (!module) {
      unknown.push(name);
      continue;
    }
    const group: ModuleGroup = module.group;
    targets[group] = (targets[group] ?? 0) + 1;
    const problem = checkPair(pair, module);
    if (problem) mismatched.push({ module: name, problem });
  }
  return {
    format,
    modules: pairs.size,
    ranks: [...ranks].sort((a, b) => a - b),
    alphas: [...alphas].sort((a, b) => a - b),
    targets,
    fit: { arch, fits: unknown.length === 0 && mismatched.length === 0, unknown: unknown.sort(), mismatched },
  };
}
