// The SD1.x UNet and CLIP-L text encoder, described by their architecture (block structure and
// channel widths) rather than by a copied key list: every parameter's diffusers-style path and
// shape, and from it the module names that kohya LoRA keys are built from
// ("lora_unet_" + path with "." -> "_").

export interface UnetArch {
  /** output channels of the four down levels */
  channels: number[];
  /** levels whose blocks have cross-attention transformers (down: from the top; up mirrors) */
  attention: boolean[];
  layersPerBlock: number;
  contextDim: number;
  inChannels: number;
  outChannels: number;
}

export const SD15_UNET: UnetArch = {
  channels: [320, 640, 1280, 1280],
  attention: [true, true, true, false],
  layersPerBlock: 2,
  contextDim: 768,
  inChannels: 4,
  outChannels: 4,
};

/**
 * lorabuild's `builtin: tiny` and `builtin: toy` models: the same blocks with small widths. Must follow
 * the worker's configs.py TINY (model_channels 32, context 64) and TOY (model_channels 16, context 32);
 * tests/worker-client.test.ts and tests/demo.test.ts inspect LoRAs the worker trained on them, so a
 * drift fails there.
 */
export const TINY_UNET: UnetArch = { ...SD15_UNET, channels: [32, 64, 128, 128], contextDim: 64 };
export const TOY_UNET: UnetArch = { ...SD15_UNET, channels: [16, 32, 64, 64], contextDim: 32 };

export interface TextEncoderArch {
  layers: number;
  width: number;
  mlp: number;
}

export const SD15_TEXT_ENCODER: TextEncoderArch = { layers: 12, width: 768, mlp: 3072 };
export const TINY_TEXT_ENCODER: TextEncoderArch = { layers: 4, width: 64, mlp: 256 };
export const TOY_TEXT_ENCODER: TextEncoderArch = { layers: 2, width: 32, mlp: 128 };

/** The SD1 architectures lorabuild builds: SD1.5 as published and the tiny and toy builtins. */
export type Sd1Arch = 'sd15' | 'tiny' | 'toy';

export const SD1_ARCHES: Record<Sd1Arch, { unet: UnetArch; text: TextEncoderArch }> = {
  sd15: { unet: SD15_UNET, text: SD15_TEXT_ENCODER },
  tiny: { unet: TINY_UNET, text: TINY_TEXT_ENCODER },
  toy: { unet: TOY_UNET, text: TOY_TEXT_ENCODER },
};

type Params = Map<string, number[]>;

function linear(p: Params, path: string, out: number, inp: number, bias = true): void {
  p.set(`${path}.weight`, [out, inp]);
  if (bias) p.set(`${path}.bias`, [out]);
}

function conv(p: Params, path: string, out: number, inp: number, k: number): void {
  p.set(`${path}.weight`, [out, inp, k, k]);
  p.set(`${path}.bias`, [out]);
}

function norm(p: Params, path: string, ch: number): void {
  p.set(`${path}.weight`, [ch]);
  p.set(`${path}.bias`, [ch]);
}

function resnet(p: Params, path: string, inp: number, out: number, timeDim: number): void {
  norm(p, `${path}.norm1`, inp);
  conv(p, `${path}.conv1`, out, inp, 3);
  linear(p, `${path}.time_emb_proj`, out, timeDim);
  norm(p, `${path}.norm2`, out);
  conv(p, `${path}.conv2`, out, out, 3);
  if (inp !== out) conv(p, `${path}.conv_shortcut`, out, inp, 1);
}

/** A Transformer2DModel with one BasicTransformerBlock (self-attn, cross-attn, GEGLU feed-forward). */
function transformer(p: Params, path: string, ch: number, contextDim: number): void {
  norm(p, `${path}.norm`, ch);
  conv(p, `${path}.proj_in`, ch, ch, 1);
  const block = `${path}.transformer_blocks.0`;
  for (const [attn, kvDim] of [['attn1', ch], ['attn2', contextDim]] as const) {
    linear(p, `${block}.${attn}.to_q`, ch, ch, false);
    linear(p, `${block}.${attn}.to_k`, ch, kvDim, false);
    linear(p, `${block}.${attn}.to_v`, ch, kvDim, false);
    linear(p, `${block}.${attn}.to_out.0`, ch, ch);
  }
  linear(p, `${block}.ff.net.0.proj`, ch * 4 * 2, ch);
  linear(p, `${block}.ff.net.2`, ch, ch * 4);
  for (const n of ['norm1', 'norm2', 'norm3']) norm(p, `${block}.${n}`, ch);
  conv(p, `${path}.proj_out`, ch, ch, 1);
}

/** Every UNet parameter: diffusers path (without a "unet." prefix) -> shape. */
export function unetParameters(arch: UnetArch = SD15_UNET): Params {
  const p: Params = new Map();
  const base = arch.channels[0];
  const timeDim = base * 4;
  conv(p, 'conv_in', base, arch.inChannels, 3);
  linear(p, 'time_embedding.linear_1', timeDim, base);
  linear(p, 'time_embedding.linear_2', timeDim, timeDim);

  const levels = arch.channels.length;
  // channels of every skip connection the down path pushes, consumed in reverse by the up path
  const skips: number[] = [base];
  let ch = base;
  for (let level = 0; level < levels; level++) {
    const out = arch.channels[level];
    for (let j = 0; j < arch.layersPerBlock; j++) {
      resnet(p, `down_blocks.${level}.resnets.${j}`, ch, out, timeDim);
      ch = out;
      if (arch.attention[level]) transformer(p, `down_blocks.${level}.attentions.${j}`, ch, arch.contextDim);
      skips.push(ch);
    }
    if (level < levels - 1) {
      conv(p, `down_blocks.${level}.downsamplers.0.conv`, ch, ch, 3);
      skips.push(ch);
    }
  }

  resnet(p, 'mid_block.resnets.0', ch, ch, timeDim);
  transformer(p, 'mid_block.attentions.0', ch, arch.contextDim);
  resnet(p, 'mid_block.resnets.1', ch, ch, timeDim);

  for (let up = 0; up < levels; up++) {
    const level = levels - 1 - up;
    const out = arch.channels[level];
    for (let j = 0; j <= arch.layersPerBlock; j++) {
      const skip = skips.pop() as number;
      resnet(p, `up_blocks.${up}.resnets.${j}`, ch + skip, out, timeDim);
      ch = out;
      if (arch.attention[level]) transformer(p, `up_blocks.${up}.attentions.${j}`, ch, arch.contextDim);
    }
    if (up < levels - 1) conv(p, `up_blocks.${up}.upsamplers.0.conv`, ch, ch, 3);
  }

  norm(p, 'conv_norm_out', ch);
  conv(p, 'conv_out', arch.outChannels, ch, 3);
  return p;
}

/** Every CLIP text-encoder parameter that LoRAs can target (the transformer layers' linears). */
export function textEncoderParameters(arch: TextEncoderArch = SD15_TEXT_ENCODER): Params {
  const p: Params = new Map();
  for (let i = 0; i < arch.layers; i++) {
    const layer = `text_model.encoder.layers.${i}`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(p, `${layer}.self_attn.${proj}`, arch.width, arch.width);
    linear(p, `${layer}.mlp.fc1`, arch.mlp, arch.width);
    linear(p, `${layer}.mlp.fc2`, arch.width, arch.mlp);
  }
  return p;
}

export type ModuleGroup = 'attention' | 'proj' | 'ff' | 'resnet' | 'sampler' | 'time' | 'io' | 'text';

export interface LoraModule {
  /** kohya name, e.g. lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q */
  kohya: string;
  /** diffusers path, e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q */
  path: string;
  kind: 'linear' | 'conv';
  /** weight shape: [out, in] or [out, in, kh, kw] */
  shape: number[];
  group: ModuleGroup;
}

function groupOf(path: string): ModuleGroup {
  if (/\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$/.test(path)) return 'attention';
  if (/\.(proj_in|proj_out)$/.test(path)) return 'proj';
  if (/\.ff\.net\./.test(path)) return 'ff';
  if (/\.resnets\./.test(path)) return 'resnet';
  if (/(down|up)samplers/.test(path)) return 'sampler';
  if (path.startsWith('time_embedding')) return 'time';
  return 'io';
}

function modulesOf(params: Params, prefix: string, text: boolean): LoraModule[] {
  const modules: LoraModule[] = [];
  for (const [key, shape] of params) {
    if (!key.endsWith('.weight') || (shape.length !== 2 && shape.length !== 4)) continue;
    const path = key.slice(0, -'.weight'.length);
    modules.push({
      kohya: `${prefix}${path.replace(/\./g, '_')}`,
      path,
      kind: shape.length === 2 ? 'linear' : 'conv',
      shape,
      group: text ? 'text' : groupOf(path),
    });
  }
  return modules;
}

/** The SD1.5 UNet's Linear/Conv2d modules under their kohya LoRA names. */
export function sd15KohyaModules(arch: UnetArch = SD15_UNET): Map<string, LoraModule> {
  return new Map(modulesOf(unetParameters(arch), 'lora_unet_', false).map((m) => [m.kohya, m]));
}

/** The text encoder's LoRA-targetable modules under their kohya names (lora_te_...). */
export function sd15TextEncoderModules(arch: TextEncoderArch = SD15_TEXT_ENCODER): Map<string, LoraModule> {
  return new Map(modulesOf(textEncoderParameters(arch), 'lora_te_', true).map((m) => [m.kohya, m]));
}

/** Groups each `targets:` setting of a lora trains (DESIGN.md §3). */
export const TARGET_GROUPS: Record<'attention' | 'attention+proj' | 'all-linear', ModuleGroup[]> = {
  attention: ['attention'],
  'attention+proj': ['attention', 'proj'],
  'all-linear': ['attention', 'proj', 'ff'],
};
