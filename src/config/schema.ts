// The lorafile.yaml v1 schema: the contract between the config loader and every other module.
// Every setting of the lab's SimpleLoRA LoRATrainer node has a home here (DESIGN.md §3), with the
// lab's values as defaults. Cross-references (dataset: NAME, ...) are checked in references.ts,
// because zod cannot see the whole document at once.
import { z } from 'zod';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'names use letters, digits, _ . - and start with a letter or digit');
const severity = z.enum(['error', 'warning', 'off']);

export const ModelSchema = z
  .strictObject({
    checkpoint: z.string().min(1).optional().describe('LDM single-file checkpoint (.safetensors). ckpt_name in the lab node.'),
    hub: z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'hub repos look like owner/name').optional().describe('Hugging Face model repo'),
    file: z.string().min(1).optional().describe('file inside the hub repo'),
    revision: z.string().min(1).default('main'),
    builtin: z
      .enum(['tiny', 'toy'])
      .optional()
      .describe('a small SD1-architecture model that ships with lorabuild (64 px, 2 CPU cores): toy is pretrained on captioned shapes in named colors (the demo); tiny has random weights from `seed` (tests)'),
    seed: z.number().int().min(0).default(0).describe('seed of the random weights of builtin: tiny'),
    tokenizer: z.string().min(1).optional().describe('folder with vocab.json+merges.txt or a bpe_simple_vocab_16e6.txt.gz'),
    allow_pickle: z.boolean().default(false).describe('allow loading pickled .ckpt/.pt files (runs code from the file!)'),
  })
  .describe('a base model');

export const RulesSchema = z
  .strictObject({
    max_tokens: z.number().int().min(1).max(75 * 3).default(75),
    min_size: z.number().int().min(1).optional().describe('smallest image side; default: the training resolution'),
    max_aspect: z.number().min(1).default(2.5),
    duplicates: severity.default('warning'),
    missing_caption: severity.default('error'),
    missing_image: severity.default('error'),
    numbering: severity.default('warning'),
    extension: severity.default('warning'),
    empty_caption: severity.default('error'),
    encoding: severity.default('error'),
    whitespace: severity.default('warning'),
    too_long: severity.default('warning'),
    trigger_missing: severity.default('warning'),
    duplicate_image: severity.default('warning'),
    duplicate_caption: severity.default('warning'),
    undecodable: severity.default('error'),
    too_small: severity.default('warning'),
    aspect: severity.default('warning'),
  })
  .describe('caption/image rules: each error | warning | off');

export const DatasetSchema = z
  .strictObject({
    folder: z.string().min(1).optional().describe('local dataset folder (use_custom_dataset: true)'),
    layout: z.enum(['auto', 'lab', 'kohya', 'imagefolder']).default('auto'),
    hub: z.string().regex(/^[^/\s]+\/[^/\s]+$/, 'hub datasets look like owner/name').optional().describe('Hugging Face dataset repo (dataset_path)'),
    revision: z.string().min(1).default('main'),
    split: z.string().min(1).default('train'),
    caption_column: z.string().min(1).optional().describe('caption column (lab default: text)'),
    image_column: z.string().min(1).default('image'),
    caption_choice: z.enum(['first', 'random']).default('first').describe('for list-of-string captions'),
    caption_seed: z.number().int().min(0).default(0),
    bad_images: z.enum(['error', 'skip']).default('error').describe('rows whose image does not decode'),
    max_items: z.number().int().min(1).optional(),
    trigger: z.string().min(1).optional().describe('trigger word or phrase every caption should contain'),
    resolution: z.number().int().min(8).optional().describe('prepare: resize + center-crop images to this size'),
    rules: RulesSchema.default(RulesSchema.parse({})),
  })
  .describe('a training dataset');

export const LoraSchema = z
  .strictObject({
    model: name.describe('ckpt_name: a key of models'),
    dataset: name.describe('a key of datasets'),
    init_from: name.optional().describe('start from the final weights of another lora'),
    rank: z.number().int().min(1).max(1024).default(4),
    alpha: z.number().positive().optional().describe('default = rank (scale 1)'),
    learning_rate: z.number().positive().max(1).default(1e-4),
    batch_size: z.number().int().min(1).max(256).default(1),
    steps: z.number().int().min(1).default(1000).describe('training_steps'),
    checkpoint_every: z.number().int().min(1).default(200).describe('checkpointing_steps'),
    seed: z.number().int().min(0).default(0).describe('random_seed'),
    resolution: z.number().int().min(64).max(2048).multipleOf(8).default(512),
    targets: z.enum(['attention', 'attention+proj', 'all-linear']).default('attention'),
    lr_scheduler: z.enum(['constant', 'cosine']).default('constant'),
    warmup_steps: z.number().int().min(0).default(0),
    gradient_accumulation: z.number().int().min(1).default(1),
    clip_skip: z.number().int().min(1).max(11).default(1),
    min_snr_gamma: z.number().positive().optional(),
    noise_offset: z.number().min(0).max(1).default(0),
    caption_dropout: z.number().min(0).max(1).default(0),
    flip: z.boolean().default(true).describe('random horizontal flip'),
    mixed_precision: z.enum(['auto', 'no', 'fp16', 'bf16']).default('auto'),
    gradient_checkpointing: z.enum(['auto', 'on', 'off']).default('auto'),
    compile: z.boolean().default(false),
    device: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
    publish: z.string().min(1).optional().describe('copy the final LoRA here (e.g. ComfyUI/models/loras/NAME.safetensors)'),
  })
  .describe('a LoRA training target (lora_name)');

export const SamplerSchema = z.enum(['euler', 'euler_a', 'ddim', 'dpmpp_2m_karras']);

export const RenderSchema = z
  .strictObject({
    lora: name.describe('a key of loras'),
    prompts: z.array(z.string().min(1)).min(1),
    negative_prompt: z.string().default(''),
    seeds: z.array(z.number().int().min(0)).min(1).default([0]),
    strengths: z.array(z.number().min(-10).max(10)).min(1).default([0, 1]),
    checkpoints: z.array(z.number().int().min(1)).min(1).optional().describe('training steps to render as a grid axis'),
    sampler: SamplerSchema.default('euler'),
    steps: z.number().int().min(1).max(1000).default(25),
    cfg: z.number().min(0).max(100).default(7.5),
    width: z.number().int().min(64).max(2048).multipleOf(8).optional().describe('default: the lora resolution'),
    height: z.number().int().min(64).max(2048).multipleOf(8).optional(),
    columns: z.enum(['strength', 'checkpoint', 'checkpoint×strength']).default('strength'),
    score: z
      .strictObject({
        clip: z.string().min(1).describe('CLIP as ONNX (text_model.onnx + vision_model.onnx): a folder or an HF repo id'),
      })
      .optional()
      .describe('score the cells: CLIP-T (prompt alignment), CLIP-I (similarity to the training images), LoRA effect per arm'),
  })
  .describe('a sample grid: prompts × seeds rows, strength/checkpoint columns');

export const LorafileSchema = z
  .strictObject({
    version: z.literal(1),
    python: z.string().min(1).optional().describe('python interpreter with torch (e.g. ComfyUI python_embeded/python.exe)'),
    out: z.string().min(1).default('out'),
    models: z.record(name, ModelSchema).default({}),
    datasets: z.record(name, DatasetSchema).default({}),
    loras: z.record(name, LoraSchema).default({}),
    renders: z.record(name, RenderSchema).default({}),
  })
  .describe('lorabuild lorafile v1');

export type ModelSpec = z.output<typeof ModelSchema>;
export type DatasetSpec = z.output<typeof DatasetSchema>;
export type RulesSpec = z.output<typeof RulesSchema>;
export type LoraSpec = z.output<typeof LoraSchema>;
export type RenderSpec = z.output<typeof RenderSchema>;
export type Sampler = z.output<typeof SamplerSchema>;
export type LorafileSpec = z.output<typeof LorafileSchema>;

/** A loaded, validated lorafile. Paths in specs are as written; resolve them with config/paths.ts. */
export interface Config extends LorafileSpec {
  /** absolute path of the lorafile */
  file: string;
  /** absolute folder of the lorafile: relative paths resolve against it */
  root: string;
  /** raw text of the lorafile (diagnostics show lines from it) */
  source: string;
}
