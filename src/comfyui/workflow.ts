// Reads a ComfyUI workflow in either of its two JSON formats into one shape:
//  - UI format (what "Save" writes): { nodes: [{ id, type, widgets_values, inputs: [{ name, link }] }], links: [[id, from, slot, to, slot, type]] }
//  - API format ("Save (API)"):       { "3": { class_type, inputs: { name: value | [fromId, slot] } } }
// Widget values of the UI format are positional; WIDGET_ORDER names them for the nodes we map.
// The UI format also keeps muted nodes (mode 2: never run) and bypassed ones (mode 4: their inputs
// pass through to their outputs); the API format leaves both out.

export interface WorkflowNode {
  id: string;
  type: string;
  /** widget values by name (for the node types in WIDGET_ORDER), else by position as "0", "1", ... */
  widgets: Record<string, unknown>;
  /** linked inputs: input name -> id of the node feeding it */
  links: Record<string, string>;
  /** UI format mode 2 (muted: never runs) or 4 (bypassed: its inputs pass through to its outputs) */
  mode?: 'muted' | 'bypassed';
}

const MODE_MUTED = 2;
const MODE_BYPASSED = 4;

export class WorkflowError extends Error {}

/** Positional widget names of the UI format, in the node's INPUT_TYPES order (link-only inputs skipped). */
export const WIDGET_ORDER: Record<string, string[]> = {
  LoRATrainer: [
    'ckpt_name', 'use_custom_dataset', 'dataset_path', 'lora_checkpoint_folder', 'lora_name', 'caption_column',
    'learning_rate', 'batch_size', 'training_steps', 'checkpointing_steps', 'rank', 'random_seed',
  ],
  CheckpointLoaderSimple: ['ckpt_name'],
  LoraLoader: ['lora_name', 'strength_model', 'strength_clip'],
  LoraLoaderModelOnly: ['lora_name', 'strength_model'],
  CLIPTextEncode: ['text'],
  EmptyLatentImage: ['width', 'height', 'batch_size'],
  // the frontend inserts "control_after_generate" after a seed widget
  KSampler: ['seed', 'control_after_generate', 'steps', 'cfg', 'sampler_name', 'scheduler', 'denoise'],
  LatentUpscale: ['upscale_method', 'width', 'height', 'crop'],
  LatentUpscaleBy: ['upscale_method', 'scale_by'],
  LoadImage: ['image', 'upload'],
};

const SEED_CONTROLS = new Set(['fixed', 'increment', 'decrement', 'randomize']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nameWidgets(type: string, values: unknown[]): Record<string, unknown> {
  const order = WIDGET_ORDER[type];
  const widgets: Record<string, unknown> = {};
  if (!order) {
    values.forEach((v, i) => (widgets[String(i)] = v));
    return widgets;
  }
  let i = 0;
  for (const name of order) {
    if (name === 'control_after_generate' && !SEED_CONTROLS.has(String(values[i]))) continue;
    widgets[name] = values[i++];
  }
  // a seed control after LoRATrainer's random_seed (newer frontends add one to any *seed widget)
  return widgets;
}

function fromUiFormat(doc: Record<string, unknown>, file: string): WorkflowNode[] {
  const nodes = doc.nodes;
  if (!Array.isArray(nodes)) throw new WorkflowError(`${file}: "nodes" is not a list`);
  const linkSource = new Map<number, string>();
  for (const link of Array.isArray(doc.links) ? doc.links : []) {
    if (Array.isArray(link) && link.length >= 4) linkSource.set(Number(link[0]), String(link[1]));
    else if (isRecord(link) && 'id' in link && 'origin_id' in link) linkSource.set(Number(link.id), String(link.origin_id));
  }
  return nodes.map((raw, index) => {
    if (!isRecord(raw) || typeof raw.type !== 'string') throw new WorkflowError(`${file}: nodes[${index}] has no "type"`);
    const values = Array.isArray(raw.widgets_values) ? raw.widgets_values : [];
    const links: Record<string, string> = {};
    for (const input of Array.isArray(raw.inputs) ? raw.inputs : []) {
      if (isRecord(input) && typeof input.name === 'string' && input.link != null) {
        const source = linkSource.get(Number(input.link));
        if (source !== undefined) links[input.name] = source;
      }
    }
    const node: WorkflowNode = { id: String(raw.id ?? index), type: raw.type, widgets: nameWidgets(raw.type, values), links };
    if (raw.mode === MODE_MUTED) node.mode = 'muted';
    if (raw.mode === MODE_BYPASSED) node.mode = 'bypassed';
    return node;
  });
}

const NOT_A_WORKFLOW = "export the workflow with ComfyUI's Save (a \"nodes\" list) or Save (API) (an object of nodes with \"class_type\")";

function fromApiFormat(doc: Record<string, unknown>, file: string): WorkflowNode[] {
  const entries = Object.entries(doc);
  if (!entries.some(([, raw]) => isRecord(raw) && typeof raw.class_type === 'string')) {
    const keys = entries.slice(0, 4).map(([k]) => JSON.stringify(k)).join(', ');
    throw new WorkflowError(`${file}: not a ComfyUI workflow (${entries.length ? `top-level keys ${keys}${entries.length > 4 ? ', ...' : ''}` : 'an empty object'}); ${NOT_A_WORKFLOW}`);
  }
  return entries.map(([id, raw]) => {
    if (!isRecord(raw) || typeof raw.class_type !== 'string') throw new WorkflowError(`${file}: node "${id}" has no "class_type"`);
    const widgets: Record<string, unknown> = {};
    const links: Record<string, string> = {};
    for (const [name, value] of Object.entries(isRecord(raw.inputs) ? raw.inputs : {})) {
      if (Array.isArray(value) && value.length === 2 && (typeof value[0] === 'string' || typeof value[0] === 'number') && typeof value[1] === 'number') {
        links[name] = String(value[0]);
      } else {
        widgets[name] = value;
      }
    }
    return { id, type: raw.class_type, widgets, links };
  });
}

export function parseWorkflow(text: string, file: string): WorkflowNode[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new WorkflowError(`${file}: not valid JSON (${(err as Error).message}); export the workflow with ComfyUI's Save or Save (API)`);
  }
  if (!isRecord(doc)) throw new WorkflowError(`${file}: not a ComfyUI workflow (the file holds a JSON ${Array.isArray(doc) ? 'list' : typeof doc}); ${NOT_A_WORKFLOW}`);
  if (Array.isArray(doc.nodes)) return fromUiFormat(doc, file);
  if (isRecord(doc.prompt)) return fromApiFormat(doc.prompt, file); // /prompt request bodies wrap the API format
  return fromApiFormat(doc, file);
}
