// Maps a ComfyUI workflow with SimpleLoRA's LoRATrainer node and/or a chain of LoraLoader /
// LoraLoaderModelOnly nodes feeding a KSampler to a lorafile, setting for setting. Stacked loaders
// become one ordered loras: list; a loader whose file no LoRATrainer writes becomes a file: entry
// in the ComfyUI folder's models/loras. What SimpleLoRA fixes without showing it (512 px, center
// crop, random flip, gradient accumulation 4, cosine schedule, max_grad_norm 1, LoRA on attention +
// proj_in/proj_out with peft's gaussian init, a VAE posterior sample per step) is written out too,
// so the imported lorafile trains what the node trained; pipelines/pokemon-showcase/README.md lists
// what still differs and why.
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
  const samplers = nodes.filter((n) => n.type === 'KSampler');
  if (trainers.length === 0 && !samplers.some((k) => modelChain(byId, k.links.model).loaders.length > 0)) {
    throw new WorkflowError(`${options.source}: no LoRATrainer node (SimpleLoRA) found, and no KSampler with a Load LoRA node; nothing to import`);
  }

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
  for (const k of samplers) {
    const chain = modelChain(byId, k.links.model);
    if (chain.loaders.length === 0) {
      notes.push(`node ${k.id} (KSampler) samples without a LoRA loader; a render needs a LoRA, so it was left out`);
      continue;
    }
    const applied = chain.loaders.map((node) => loraEntry(node, loraFiles, options.comfyui));
    const trainedModel = applied.map((e) => ('lora' in e ? loras[e.lora as string].model : undefined)).find((m) => m !== undefined);
    let model: string | undefined;
    if (chain.checkpoint) {
      const ckpt = str(chain.checkpoint, 'ckpt_name');
      model = entryName(ckpt);
      models[model] ??= { checkpoint: joinComfy(options.comfyui, 'models', 'checkpoints', ckpt.replace(/\\/g, '/')) };
    } else if (!trainedModel) {
      notes.push(`node ${k.id} (KSampler): no CheckpointLoaderSimple feeds its LoRA loaders, so the base model is unknown; left out`);
      continue;
    }
    const only = applied.length === 1 && 'lora' in applied[0] ? applied[0] : undefined;
    const lora = only?.lora as string | undefined;
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
    const base = lora ?? (applied.length === 1 ? entryName(String(applied[0].file)) : model ?? 'loras');
    let name = `${base}_ab`;
    for (let i = 2; name in renders; i++) name = `${base}_ab${i}`;
    // one trained LoRA keeps the shorthand (its strength becomes the strength column); a stack or a
    // downloaded file becomes the ordered list, each entry with its loader's strengths
    renders[name] = {
      ...(model && model !== trainedModel ? { model } : {}),
      ...(only ? { lora } : { loras: applied }),
      prompts: [str(positive, 'text')],
      ...(negative && str(negative, 'text') ? { negative_prompt: str(negative, 'text') } : {}),
      seeds: [num(k, 'seed')],
      strengths: !only ? [0, 1] : only.strength_model === 0 ? [0] : [0, only.strength_model],
      sampler: sampler ?? 'euler',
      steps: num(k, 'steps'),
      cfg: num(k, 'cfg'),
      ...(latent ? { width: num(latent, 'width'), height: num(latent, 'height') } : {}),
    };
  }

  // sections with nothing in them are left out (a part-1 workflow trains nothing)
  const lorafile: Record<string, unknown> = { version: 1, models };
  for (const [key, section] of Object.entries({ datasets, loras, renders })) if (Object.keys(section).length) lorafile[key] = section;
  return { lorafile, notes };
}

const LOADERS = new Set(['LoraLoader', 'LoraLoaderModelOnly']);
const PASS_THROUGH = new Set(['Reroute', 'PrimitiveNode']);

/**
 * The Load LoRA nodes on a KSampler's model input, in the order they apply (nearest the checkpoint
 * first, as the chain patches the model), and the checkpoint loader they start from.
 */
function modelChain(byId: Map<string, WorkflowNode>, start: string | undefined): { loaders: WorkflowNode[]; checkpoint?: WorkflowNode } {
  const loaders: WorkflowNode[] = [];
  const seen = new Set<string>();
  let node = start ? byId.get(start) : undefined;
  while (node && !seen.has(node.id)) {
    seen.add(node.id);
    if (node.type === 'CheckpointLoaderSimple') return { loaders: loaders.reverse(), checkpoint: node };
    if (LOADERS.has(node.type)) loaders.push(node);
    else if (!PASS_THROUGH.has(node.type)) break;
    const next: string | undefined = node.links.model ?? Object.values(node.links)[0];
    node = next ? byId.get(next) : undefined;
  }
  return { loaders: loaders.reverse() };
}

/** A Load LoRA node as a render entry: the LoRA a LoRATrainer of the workflow writes, else the file in ComfyUI's loras folder. */
function loraEntry(node: WorkflowNode, trained: Map<string, string>, comfyui: string): Record<string, unknown> {
  const written = str(node, 'lora_name').replace(/\\/g, '/');
  const strength_model = Number(node.widgets.strength_model ?? 1);
  // LoraLoaderModelOnly leaves the text encoder as it is
  const strength_clip = node.type === 'LoraLoaderModelOnly' ? 0 : Number(node.widgets.strength_clip ?? 1);
  for (const [key, value] of [['strength_model', strength_model], ['strength_clip', strength_clip]] as const) {
    if (!Number.isFinite(value)) throw new WorkflowError(`node ${node.id} (${node.type}): "${key}" is ${JSON.stringify(node.widgets[key])}, expected a number`);
  }
  const lora = trained.get(written.split('/').pop()!);
  return lora ? { lora, strength_model, strength_clip } : { file: joinComfy(comfyui, 'models', 'loras', written), strength_model, strength_clip };
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
