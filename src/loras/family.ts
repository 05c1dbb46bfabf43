// Which base model family a LoRA file was made for, from its keys and tensor shapes, before any
// weight is read: the cross-attention context width (768 SD1.x, 1024 SD2.x, 2048 SDXL), the text
// encoders (CLIP-L 768, OpenCLIP-H 1024, SDXL's second encoder 1280), names that only exist in
// SDXL (a second text encoder, transformer depth > 1, label_emb), SD3 (joint blocks) or Flux
// (double/single blocks). The metadata (ss_base_model_version, modelspec.architecture) decides only
// when the shapes do not. lorabuild's tiny and toy builtins are SD1 layouts with a 64- and a 32-wide context.
import type { SafetensorsHeader } from '../safetensors/format.js';
import type { Sd1Arch } from '../safetensors/sd15.js';

export type LoraFamily = 'sd1' | 'sd2' | 'sdxl' | 'sd3' | 'flux' | 'other';

export interface FamilyGuess {
  family: LoraFamily;
  /** for 'sd1': which SD1 widths (null when nothing in the file says) */
  arch: Sd1Arch | null;
  /** what decided it, for messages: "cross-attention context 2048, second text encoder lora_te2_*" */
  evidence: string[];
}

export const FAMILY_LABEL: Record<LoraFamily, string> = { sd1: 'SD1.x', sd2: 'SD2.x', sdxl: 'SDXL', sd3: 'SD3', flux: 'Flux', other: 'non-Stable-Diffusion' };

/** "an SDXL", "an SD2.x", "a Flux" */
export const familyWithArticle = (family: LoraFamily) => `${/^S/.test(FAMILY_LABEL[family]) ? 'an' : 'a'} ${FAMILY_LABEL[family]}`;

/** The input width of a module's LoRA, from its down / lora_A / hada_w1_b tensor (last dims flattened). */
function inputWidths(header: SafetensorsHeader, module: RegExp): number[] {
  const widths = new Set<number>();
  for (const t of header.tensors.values()) {
    if (!module.test(t.name)) continue;
    if (/(lora_down|lora_A|lora\.down|_lora\.down|lora_linear_layer\.down)(\.default)?\.weight$/.test(t.name) && t.shape.length >= 2) widths.add(t.shape[1]);
    else if (/\.hada_w[12]_b$/.test(t.name) && t.shape.length === 2) widths.add(t.shape[1]);
  }
  return [...widths];
}

const CONTEXT: Record<number, [LoraFamily, Sd1Arch | null]> = { 32: ['sd1', 'toy'], 64: ['sd1', 'tiny'], 768: ['sd1', 'sd15'], 1024: ['sd2', null], 2048: ['sdxl', null] };

function fromMetadata(metadata: Record<string, string>): FamilyGuess | null {
  const version = (metadata.ss_base_model_version ?? '').toLowerCase();
  const architecture = (metadata['modelspec.architecture'] ?? '').toLowerCase();
  const said = (what: string, family: LoraFamily, arch: Sd1Arch | null = null): FamilyGuess => ({ family, arch, evidence: [what] });
  const builtin = metadata['lorabuild.arch'];
  if (builtin === 'tiny' || builtin === 'toy') return said(`metadata lorabuild.arch ${builtin}`, 'sd1', builtin);
  if (version.startsWith('sdxl') || architecture.startsWith('stable-diffusion-xl')) return said(`metadata ${version ? `ss_base_model_version ${version}` : `modelspec.architecture ${architecture}`}`, 'sdxl');
  if (version.startsWith('sd_v2') || architecture.startsWith('stable-diffusion-v2') || metadata.ss_v2 === 'True') return said(`metadata ${version ? `ss_base_model_version ${version}` : 'ss_v2 / modelspec'}`, 'sd2');
  if (version.startsWith('sd3') || architecture.startsWith('stable-diffusion-3')) return said('metadata says SD3', 'sd3');
  if (version.startsWith('flux') || architecture.startsWith('flux')) return said('metadata says Flux', 'flux');
  if (version.startsWith('sd_v1') || architecture.startsWith('stable-diffusion-v1')) return said(`metadata ${version ? `ss_base_model_version ${version}` : `modelspec.architecture ${architecture}`}`, 'sd1');
  return null;
}

export function detectFamily(header: SafetensorsHeader): FamilyGuess {
  const names = [...header.tensors.keys()];
  const any = (re: RegExp) => names.find((n) => re.test(n));
  let hit: string | undefined;
  if ((hit = any(/(^|[._])(double_blocks|single_blocks|single_transformer_blocks)[._]\d/))) return { family: 'flux', arch: null, evidence: [`Flux blocks (${hit})`] };
  if ((hit = any(/(^|[._])(joint_blocks|context_block)[._]|[._]attn[._]add_q_proj/))) return { family: 'sd3', arch: null, evidence: [`MMDiT joint blocks (${hit})`] };

  const evidence: string[] = [];
  const context = inputWidths(header, /attn2[._](to_k|to_v)|attn2[._]processor[._]to_[kv]/);
  const text = inputWidths(header, /(lora_te\d?_|text_encoder(_\d)?\.|text_encoders\.).*(self_attn[._]q_proj|q_proj)/);
  const sdxlName = any(/^lora_te2_|^text_encoder_2\.|label_emb|transformer_blocks[._][1-9]/);
  if (context.includes(2048)) evidence.push('cross-attention context 2048');
  if (text.includes(1280)) evidence.push('a 1280-wide text encoder (OpenCLIP-G)');
  if (sdxlName) evidence.push(`SDXL-only module ${sdxlName.replace(/\.(lora_down|lora_up|alpha|lora_A|lora_B).*$/, '')}`);
  if (evidence.length) return { family: 'sdxl', arch: null, evidence };
  if (context.includes(1024) || text.includes(1024)) {
    return { family: 'sd2', arch: null, evidence: [context.includes(1024) ? 'cross-attention context 1024 (OpenCLIP-H)' : 'a 1024-wide text encoder (OpenCLIP-H)'] };
  }
  const known = context.map((w) => CONTEXT[w]).find((c) => c !== undefined);
  if (known) return { family: known[0], arch: known[1], evidence: [`cross-attention context ${context.join('/')}`] };
  if (text.includes(768)) return { family: 'sd1', arch: 'sd15', evidence: ['a 768-wide text encoder (CLIP-L)'] };
  if (text.includes(64)) return { family: 'sd1', arch: 'tiny', evidence: ['a 64-wide text encoder (tiny)'] };
  if (text.includes(32)) return { family: 'sd1', arch: 'toy', evidence: ['a 32-wide text encoder (toy)'] };
  const meta = fromMetadata(header.metadata);
  if (meta) return meta;
  const looksSd = any(/^(lora_unet_|lora_te|lycoris_|unet\.|text_encoder|diffusion_model\.|base_model\.model\.(down|up|mid)_block|(down|up|mid)_block)/);
  return looksSd ? { family: 'sd1', arch: null, evidence: ['SD UNet key names; no width that tells SD1 from SD2'] } : { family: 'other', arch: null, evidence: [`keys like ${names[0] ?? '(none)'}`] };
}
