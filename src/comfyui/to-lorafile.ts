// Maps a ComfyUI workflow with SimpleLoRA's LoRATrainer node (and optionally a LoraLoader /
// LoraLoaderModelOnly + KSampler graph) to a lorafile, setting for setting. What SimpleLoRA fixes
// without showing it (512 px, center crop, random flip, gradient accumulation 4, cosine schedule,
// max_grad_norm 1, LoRA on attention + proj_in/proj_out with peft's gaussian init, a VAE posterior
// sample per step) is written out too, so the imported lorafile trains what the node trained;
// pipelines/pokemon-showcase/README.md lists what still differs and why.
import { WorkflowError, type WorkflowNode } from './workflow.js';

export interface ImportOptions {
  /** ComfyUI install folder: checkpoints and loras are resolved inside it */
  comfyui: string;
  source: string;
}

export interface ImportResult {
  lorafile: Record<string, unknown>;
  /** things the user should know: unknown nodes, approximations */
  notes: string[];
}

const MAPPED = new Set(['LoRATrainer', 'LoraLoader', 'LoraLoaderModelOnly', 'KSampler', 'CLIPTextEncode', 'EmptyLatentImage']);
const PLUMBING = new Set(['CheckpointLoaderSimple', 'VAEDecode', 'VAEEncode', 'SaveImage', 'PreviewImage', 'Note', 'MarkdownNote', 'Reroute', 'PrimitiveNode']);

const SAMPLERS: Record<string, string> = { euler: 'euler', euler_ancestral: 'euler_a', ddim: 'ddim', dpmpp_2m: 'dpmpp_2m_karras' };

function entryName(raw: string): string {
  const base = raw.replace(/\\/g, '/').replace(/\/+$/, '').split('/').pop() ?? raw;
  const stem = base.replace(/\.(safetensors|ckpt|pt)$/i, '');
  const clean = stem.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return clean || 'imported';
}

function num(node: WorkflowNode, key: string): number {
  const v = Number(node.widgets[key]);
  if (!Number.isFinite(v)) throw new WorkflowError(`node ${node.id} (${node.type}): "${key}" is ${JSON.stringify(node.widgets[key])}, expected a number`);
  return v;
}

function str(node: WorkflowNode, key: string): string {
  const v = node.widgets[key];
  if (typeof v !== 'string') throw new WorkflowError(`node ${node.id} (${node.type}): "${key}" is missing or not text`);
  return v;
}

function bool(node: WorkflowNode, key: string): boolean {
  const v = node.widgets[key];
  return v === true || v === 'true' || v === 'True';
}

function joinComfy(comfyui: string, ...parts: string[]): string {
  return [comfyui.replace(/[\\/]+$/, ''), ...parts].join('/');
}

export function workflowToLorafile(nodes: WorkflowNode[], options: ImportOptions): ImportResult {
  const notes: string[] = [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const node of nodes) {
    if (!MAPPED.has(node.type) && !PLUMBING.has(node.type)) notes.push(`node ${node.id} (${node.type}) is not mapped: lorabuild has no equivalent, it was left out`);
  }
  const trainers = nodes.filter((n) => n.type === 'LoRATrainer');
  if (trainers.length === 0) throw new WorkflowError(`${options.source}: no LoRATrainer node (SimpleLoRA) found; nothing to import`);

  const models: Record<string, unknown> = {};
  const datasets: Record<string, unknown> = {};
  const loras: Record<string, Record<string, unknown>> = {};
  const loraFiles = new Map<string, string>(); // lora file name -> lora entry

  for (const t of trainers) {
    const ckpt = str(t, 'ckpt_name');
    const modelName = entryName(ckpt);
    models[modelName] = { checkpoint: joinComfy(options.comfyui, 'models', 'checkpoints', ckpt.replace(/\\/g, '/')) };

    const datasetPath = str(t, 'dataset_path').trim();
    if (!datasetPath) throw new WorkflowError(`node ${t.id} (LoRATrainer): dataset_path is empty`);
    const datasetName = entryName(datasetPath);
    const caption = typeof t.widgets.caption_column === 'string' ? t.widgets.caption_column : 'text';
    datasets[datasetName] = bool(t, 'use_custom_dataset')
      ? { folder: datasetPath, ...(caption !== 'text' ? { caption_column: caption } : {}) }
      : { hub: datasetPath, revision: 'main', caption_column: caption };

    const loraFile = str(t, 'lora_name').replace(/\.safetensors$/i, '') + '.safetensors';
    const loraName = entryName(loraFile);
    loraFiles.set(loraFile, loraName);
    loras[loraName] = {
      model: modelName,
      dataset: datasetName,
      rank: num(t, 'rank'),
      learning_rate: num(t, 'learning_rate'),
      batch_size: num(t, 'batch_size'),
      steps: num(t, 'training_steps'),
      checkpoint_every: num(t, 'checkpointing_steps'),
      seed: num(t, 'random_seed'),
      // fixed inside SimpleLoRA's training command (SimpleLoRA.py) and script (lora_core.py):
      resolution: 512,
      flip: true,
      gradient_accumulation: 4,
      lr_scheduler: 'cosine',
      max_grad_norm: 1,
      targets: 'attention+proj',
      lora_init: 'gaussian',
      latents: 'sample',
      publish: joinComfy(options.comfyui, 'models', 'loras', loraFile),
    };
    if (typeof t.widgets.lora_checkpoint_folder === 'string') {
      notes.push(`lora_checkpoint_folder "${t.widgets.lora_checkpoint_folder}": lorabuild keeps checkpoints in out/loras/${loraName}/ and its cache`);
    }
  }

  const renders: Record<string, unknown> = {};
  for (const k of nodes.filter((n) => n.type === 'KSampler')) {
    const loraNode = findUpstream(byId, k.links.model, (n) => n.type === 'LoraLoader' || n.type === 'LoraLoaderModelOnly');
    if (!loraNode) {
      notes.push(`node ${k.id} (KSampler) samples without a LoRA loader; a render needs a LoRA, so it was left out`);
      continue;
    }
    const file = str(loraNode, 'lora_name').replace(/\\/g, '/').split('/').pop()!;
    let lora = loraFiles.get(file);
    if (!lora) {
      lora = Object.keys(loras)[0];
      notes.push(`node ${loraNode.id} loads "${file}", which no LoRATrainer in this workflow writes; the render uses "${lora}"`);
    }
    const positive = findUpstream(byId, k.links.positive, (n) => n.type === 'CLIPTextEncode');
    const negative = findUpstream(byId, k.links.negative, (n) => n.type === 'CLIPTextEncode');
    if (!positive) {
      notes.push(`node ${k.id} (KSampler) has no CLIPTextEncode prompt; left out`);
      continue;
    }
    const latent = findUpstream(byId, k.links.latent_image, (n) => n.type === 'EmptyLatentImage');
    const samplerName = String(k.widgets.sampler_name ?? 'euler');
    const sampler = SAMPLERS[samplerName];
    if (!sampler) notes.push(`sampler "${samplerName}" of node ${k.id} is not available; using euler`);
    const scheduler = String(k.widgets.scheduler ?? 'normal');
    if (sampler === 'dpmpp_2m_karras' && scheduler !== 'karras') notes.push(`node ${k.id} uses dpmpp_2m with the ${scheduler} scheduler; lorabuild's dpmpp_2m uses Karras sigmas`);
    const strength = Number(loraNode.widgets.strength_model ?? 1);
    let name = `${lora}_ab`;
    for (let i = 2; name in renders; i++) name = `${lora}_ab${i}`;
    renders[name] = {
      lora,
      prompts: [str(positive, 'text')],
      ...(negative && str(negative, 'text') ? { negative_prompt: str(negative, 'text') } : {}),
      seeds: [num(k, 'seed')],
      strengths: strength === 0 ? [0] : [0, strength],
      sampler: sampler ?? 'euler',
      steps: num(k, 'steps'),
      cfg: num(k, 'cfg'),
      ...(latent ? { width: num(latent, 'width'), height: num(latent, 'height') } : {}),
    };
  }

  const lorafile: Record<string, unknown> = { version: 1, models, datasets, loras };
  if (Object.keys(renders).length) lorafile.renders = renders;
  return { lorafile, notes };
}

/** Follows a linked input upstream (through any chain of nodes' first links) to a node that matches. */
function findUpstream(byId: Map<string, WorkflowNode>, start: string | undefined, match: (n: WorkflowNode) => boolean): WorkflowNode | undefined {
  const seen = new Set<string>();
  const queue = start ? [start] : [];
  while (queue.length) {
    const id = queue.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const node = byId.get(id);
    if (!node) continue;
    if (match(node)) return node;
    queue.push(...Object.values(node.links));
  }
  return undefined;
}
