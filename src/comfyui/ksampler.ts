// The render settings of a ComfyUI KSampler node: seed, steps, cfg, sampler and scheduler by their
// ComfyUI names, denoise, and the latent it starts from. An empty latent gives the size; an encoded
// image (LoadImage -> VAEEncode) gives an img2img init_image. A latent that comes out of another
// sampler or a latent upscale (a "hires fix" second pass) has no lorabuild equivalent: such a
// KSampler is reported and left out, never imported as a full render at the wrong size.
import { SAMPLERS, SCHEDULERS, DEFAULT_SCHEDULER } from '../config/sampling.js';
import { WorkflowError, type WorkflowNode } from './workflow.js';

export interface KSamplerSettings {
  seed: number;
  steps: number;
  cfg: number;
  sampler: string;
  scheduler: string;
  /** only when below 1 */
  denoise?: number;
  width?: number;
  height?: number;
  init_image?: string;
}

export function num(node: WorkflowNode, key: string): number {
  const v = Number(node.widgets[key]);
  if (!Number.isFinite(v)) throw new WorkflowError(`node ${node.id} (${node.type}): "${key}" is ${JSON.stringify(node.widgets[key])}, expected a number`);
  return v;
}

/** The node feeding `input` of `node`, looking through bypassed nodes (they pass their inputs on). */
export function feeder(byId: Map<string, WorkflowNode>, node: WorkflowNode, input: string): WorkflowNode | undefined {
  let current = byId.get(node.links[input] ?? '');
  const seen = new Set<string>();
  while (current?.mode === 'bypassed' && !seen.has(current.id)) {
    seen.add(current.id);
    const through = Object.values(current.links)[0];
    current = through === undefined ? undefined : byId.get(through);
  }
  return current;
}

function source(byId: Map<string, WorkflowNode>, node: WorkflowNode, input: string): WorkflowNode | undefined {
  const found = feeder(byId, node, input);
  return found?.mode === 'muted' ? undefined : found;
}

/** An input of `node` fed by a muted node: ComfyUI cannot run `node` then. */
export function mutedInput(byId: Map<string, WorkflowNode>, node: WorkflowNode): { input: string; from: WorkflowNode } | undefined {
  for (const input of Object.keys(node.links)) {
    const from = feeder(byId, node, input);
    if (from?.mode === 'muted') return { input, from };
  }
  return undefined;
}

function label(node: WorkflowNode): string {
  return `node ${node.id} (${node.type})`;
}

function samplerName(k: WorkflowNode, notes: string[]): string {
  const name = String(k.widgets.sampler_name ?? 'euler');
  if ((SAMPLERS as readonly string[]).includes(name)) return name;
  notes.push(`${label(k)}: sampler "${name}" is not available in lorabuild (it has ${SAMPLERS.join(', ')}); the render uses euler, so its pictures differ from ComfyUI's`);
  return 'euler';
}

function schedulerName(k: WorkflowNode, notes: string[]): string {
  const name = String(k.widgets.scheduler ?? DEFAULT_SCHEDULER);
  if ((SCHEDULERS as readonly string[]).includes(name)) return name;
  notes.push(`${label(k)}: scheduler "${name}" is not available in lorabuild (it has ${SCHEDULERS.join(', ')}); the render uses ${DEFAULT_SCHEDULER}, so its pictures differ from ComfyUI's`);
  return DEFAULT_SCHEDULER;
}

/** The settings of KSampler `k`, or null (with a note saying why) when its latent cannot be expressed. */
export function ksamplerSettings(k: WorkflowNode, byId: Map<string, WorkflowNode>, inputFolder: string, notes: string[]): KSamplerSettings | null {
  const denoise = k.widgets.denoise === undefined ? 1 : num(k, 'denoise');
  const settings: KSamplerSettings = {
    seed: num(k, 'seed'),
    steps: num(k, 'steps'),
    cfg: num(k, 'cfg'),
    sampler: samplerName(k, notes),
    scheduler: schedulerName(k, notes),
    ...(denoise < 1 ? { denoise } : {}),
  };
  if (denoise <= 0) {
    notes.push(`${label(k)} has denoise ${denoise}: it returns its input latent unchanged, so there is nothing to render; left out`);
    return null;
  }
  const latent = source(byId, k, 'latent_image');
  if (!latent) {
    notes.push(`${label(k)} has no latent_image input; the render uses the LoRA's resolution`);
    return settings;
  }
  if (latent.type === 'EmptyLatentImage') {
    return { ...settings, width: num(latent, 'width'), height: num(latent, 'height') };
  }
  if (latent.type === 'VAEEncode') {
    const image = source(byId, latent, 'pixels');
    if (image?.type === 'LoadImage' && typeof image.widgets.image === 'string') {
      notes.push(
        `${label(k)} re-noises ${label(image)} "${image.widgets.image}" (img2img${denoise < 1 ? `, denoise ${denoise}` : ''}): ComfyUI samples at the image's own size; ` +
          'the render scales it to cover width x height, so set them to its size',
      );
      return { ...settings, init_image: `${inputFolder}/${image.widgets.image.replace(/\\/g, '/')}` };
    }
    notes.push(`${label(k)} re-noises an image made by ${image ? label(image) : 'an unconnected input'}; lorabuild's init_image takes an image file, so this render was left out`);
    return null;
  }
  const what =
    latent.type.startsWith('LatentUpscale') || latent.type.startsWith('KSampler')
      ? `a second pass (denoise ${denoise}) over the latent of ${label(latent)}${latent.type === 'LatentUpscale' ? `, upscaled to ${latent.widgets.width}x${latent.widgets.height}` : ''}${latent.type === 'LatentUpscaleBy' ? `, upscaled by ${latent.widgets.scale_by}` : ''}`
      : `a sampler over the latent of ${label(latent)}`;
  notes.push(`${label(k)} is ${what}: lorabuild renders every cell in one pass from its seed, so this KSampler was left out (the pass before it is imported where it samples with a LoRA)`);
  return null;
}
