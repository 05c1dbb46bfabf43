// The lorafile.yaml v1 schema: the contract between the config loader and every other module.
// Every setting of the lab's SimpleLoRA LoRATrainer node has a home here (DESIGN.md §3), with the
// lab's values as defaults. Cross-references (dataset: NAME, ...) are checked in references.ts,
// because zod cannot see the whole document at once.
import { z } from 'zod';
import { SAMPLER_CHOICES, SCHEDULERS } from './sampling.js';

/** Names become file and folder names (out/loras/NAME/NAME-step00200.safetensors, temp files beside them): bounded so none overflows a file name. */
export const MAX_NAME_LENGTH = 100;
/** Names Windows cannot use for a file or folder, with or without an extension. */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$/i;
const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'names use letters, digits, _ . - and start with a letter or digit')
  .max(MAX_NAME_LENGTH, `names are at most ${MAX_NAME_LENGTH} characters (they become file names)`)
  .refine((n) => !WINDOWS_DEVICE.test(n), 'this is a device name on Windows (CON, NUL, COM1 ...), which no file or folder can have')
  .refine((n) => !n.endsWith('.'), 'names must not end with a dot (Windows drops it from file names)');
/** Control characters: no file system, URL or terminal takes them (a NUL in a path throws deep inside Node). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** The same, but line feed and tab, which multi-line prompts may hold. */
const CONTROL_IN_TEXT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const noControl = (s: z.ZodString) => s.refine((v) => !CONTROL.test(v), 'control characters (NUL, ESC, line breaks ...) are not allowed here');
/** Paths written in the lorafile (PATH_MAX on Linux is 4096 bytes). */
const path = noControl(z.string().min(1).max(4096));
/** A name or revision that goes into a URL or a file name (hub repo, revision, split, column). */
const ident = (max: number) => noControl(z.string().min(1).max(max));
/** Free text that reaches a tokenizer or a report (a prompt, a trigger word). */
const text = (max: number) => z.string().max(max).refine((v) => !CONTROL_IN_TEXT.test(v), 'control characters (NUL, ESC ...) are not allowed in text');
/** Seeds: any whole number JavaScript holds exactly (ComfyUI's larger seeds would silently round). */
const seed = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** Training steps: 1,000,000 steps at the lab GPU's ~2 it/s is almost six days. */
export const MAX_STEPS = 1_000_000;
/** Cells one render may have (prompts x seeds x columns); each is a full sampling run. */
export const MAX_RENDER_CELLS = 10_000;
const severity = z.enum(['error', 'warning', 'off']);

/** checkpoint_every when the lorafile does not say: the lab's 200, or every step count below it. */
export const DEFAULT_CHECKPOINT_EVERY = 200;
export function defaultCheckpointEvery(steps: number): number {
  return Math.min(DEFAULT_CHECKPOINT_EVERY, steps);
}

export const ModelSchema = z
  .strictObject({
    checkpoint: path.optional().describe('An SD1.x LDM single-file checkpoint (.safetensors) or a diffusers model folder, relative to the lorafile or starting with ~ (ckpt_name in the lab node). Give exactly one of checkpoint, hub or builtin. No default.'),
    hub: noControl(z.string().max(200).regex(/^[^/\s]+\/[^/\s]+$/, 'hub repos look like owner/name')).optional().describe('A Hugging Face model repo, owner/name: its diffusers model, or with file: one single-file checkpoint of it; downloaded into the HF cache. Give exactly one of checkpoint, hub or builtin. No default.'),
    file: path.optional().describe('A single-file checkpoint inside the hub repo, e.g. DreamShaper_8_pruned.safetensors. Without it, the repo\'s diffusers model. No default.'),
    revision: ident(256).default('main').describe('Branch, tag or commit of the hub repo; pinned to a commit in lorafile.lock.'),
    builtin: z
      .enum(['tiny', 'toy'])
      .optional()
      .describe('A small SD1-architecture model that ships with lorabuild (64 px, 2 CPU cores, no download): toy is pretrained on captioned shapes in named colors (the demo); tiny has random weights made from seed (tests, CI). No default.'),
    seed: seed.default(0).describe('The seed the weights of builtin: tiny are made from (toy ships pretrained and ignores it).'),
    tokenizer: path.optional().describe('A folder with vocab.json + merges.txt, or a bpe_simple_vocab_16e6.txt.gz. Default: the model\'s own tokenizer/ folder if it has one, else the CLIP vocabulary that ships with lorabuild.'),
    allow_pickle: z.boolean().default(false).describe('Allow pickled .ckpt/.pt/.bin checkpoints (also a diffusers model\'s .bin weights). Loading a pickle runs code from the file: only for files you trust.'),
  })
  .describe('A base model: checkpoint, hub or builtin.');

export const RulesSchema = z
  .strictObject({
    max_tokens: z.number().int().min(1).max(75 * 3).default(75).describe('The most CLIP tokens a caption may have (SD1.x sees 75; the rest is cut).'),
    min_size: z.number().int().min(1).max(65536).optional().describe('The smallest allowed image side in pixels. Default: the dataset\'s resolution, else the training resolution of the first lora on it, else 512.'),
    max_aspect: z.number().min(1).max(1000).default(2.5).describe('The largest allowed ratio of long to short image side.'),
    duplicates: severity.default('warning').describe('Two files of the lab layout use the same number (image/0.png and image/0.jpg): error, warning or off.'),
    missing_caption: severity.default('error').describe('An image without a caption file: error, warning or off.'),
    missing_image: severity.default('error').describe('A caption without an image: error, warning or off.'),
    numbering: severity.default('warning').describe('File names of the lab layout that are not numbers 0..N-1, or gaps in the numbering: error, warning or off.'),
    extension: severity.default('warning').describe('An image whose extension does not match its content, or a file that belongs to no item: error, warning or off.'),
    empty_caption: severity.default('error').describe('An empty caption: error, warning or off.'),
    encoding: severity.default('error').describe('A caption that is not valid UTF-8: error, warning or off.'),
    whitespace: severity.default('warning').describe('A byte-order mark, CRLF line ends, leading or trailing whitespace or blank lines in a caption: error, warning or off.'),
    too_long: severity.default('warning').describe('A caption longer than max_tokens (the words past it are cut): error, warning or off.'),
    trigger_missing: severity.default('warning').describe('A caption without the dataset\'s trigger: error, warning or off.'),
    duplicate_image: severity.default('warning').describe('Two items with the same image bytes: error, warning or off.'),
    duplicate_caption: severity.default('warning').describe('Two items with the same caption: error, warning or off.'),
    undecodable: severity.default('error').describe('An image that does not decode: error, warning or off.'),
    too_small: severity.default('warning').describe('An image smaller than min_size: error, warning or off.'),
    aspect: severity.default('warning').describe('An image more elongated than max_aspect: error, warning or off.'),
  })
  .describe('Caption and image rules of the validate stage; each problem is error (blocks training), warning or off.');

export const DatasetSchema = z
  .strictObject({
    folder: path.optional().describe('A local dataset folder, relative to the lorafile (use_custom_dataset: true in the lab node). Give folder or hub. No default.'),
    layout: z.enum(['auto', 'lab', 'kohya', 'imagefolder']).default('auto').describe('How the folder is laid out: lab (image/N.jpeg + text/N.txt), kohya (img.png + img.txt), imagefolder (metadata.jsonl); auto tells them apart.'),
    hub: noControl(z.string().max(200).regex(/^[^/\s]+\/[^/\s]+$/, 'hub datasets look like owner/name')).optional().describe('A Hugging Face dataset repo, owner/name (dataset_path in the lab node). Give folder or hub. No default.'),
    revision: ident(256).default('main').describe('Branch, tag or commit of the hub dataset; pinned to a commit in lorafile.lock.'),
    split: ident(200).default('train').describe('The split of the hub dataset to train on.'),
    caption_column: ident(200).optional().describe('The column that holds the captions (caption_column in the lab node). Default: text.'),
    image_column: ident(200).default('image').describe('The column that holds the images.'),
    caption_choice: z.enum(['first', 'random']).default('first').describe('Which caption to use when a row has a list of captions: the first, or one picked with caption_seed.'),
    caption_seed: seed.default(0).describe('The seed for caption_choice: random.'),
    bad_images: z.enum(['error', 'skip']).default('error').describe('What to do with hub rows whose image does not decode: stop with an error, or skip them.'),
    max_items: z.number().int().min(1).max(100_000_000).optional().describe('Use only the first N items (quick experiments). Default: all items.'),
    trigger: text(1000).min(1).optional().describe('A trigger word or phrase every caption should contain (checked by the trigger_missing rule). No default.'),
    resolution: z.number().int().min(8).max(8192).optional().describe('Resize and center-crop images to this size while preparing. Default: images are kept as they are (training crops them to its resolution).'),
    rules: RulesSchema.default(RulesSchema.parse({})).describe('Caption and image rules of the validate stage; each problem is error (blocks training), warning or off.'),
  })
  .describe('A training dataset: a local folder or a Hugging Face dataset.');

export const LoraSchema = z
  .strictObject({
    model: name.describe('A name under models:, the base model to train on (ckpt_name in the lab node). Required.'),
    dataset: name.describe('A name under datasets:, the dataset to train on. Required.'),
    init_from: name.optional().describe('Start from the final weights of another lora (same rank and targets) instead of from zero. No default.'),
    rank: z.number().int().min(1).max(1024).default(4).describe('LoRA rank: the size of the low-rank update (rank in the lab node).'),
    alpha: z.number().positive().max(65536).optional().describe('LoRA alpha; the update is scaled by alpha / rank. Default: rank (scale 1, as diffusers and SimpleLoRA train).'),
    learning_rate: z.number().positive().max(1).default(1e-4).describe('AdamW learning rate (learning_rate in the lab node).'),
    batch_size: z.number().int().min(1).max(256).default(1).describe('Images per step (batch_size in the lab node).'),
    steps: z.number().int().min(1).max(MAX_STEPS).default(1000).describe('Optimizer steps to train (training_steps in the lab node).'),
    checkpoint_every: z.number().int().min(1).max(MAX_STEPS).optional().describe(`Save a checkpoint LoRA every N steps (checkpointing_steps in the lab node). Default: ${DEFAULT_CHECKPOINT_EVERY}, or steps when steps is smaller.`),
    seed: seed.default(0).describe('Seed of the training noise, timesteps, flips and caption dropout (random_seed in the lab node).'),
    resolution: z.number().int().min(64).max(2048).multipleOf(8).default(512).describe('Training image size in pixels (images are resized and center-cropped to it); a multiple of 8.'),
    targets: z.enum(['attention', 'attention+proj', 'all-linear']).default('attention').describe('Which UNet layers get LoRA: attention (to_q, to_k, to_v, to_out.0), attention+proj (also proj_in, proj_out, as SimpleLoRA), or all-linear.'),
    lr_scheduler: z.enum(['constant', 'cosine']).default('constant').describe('Learning-rate schedule after the warmup: constant or cosine decay to zero.'),
    warmup_steps: z.number().int().min(0).max(MAX_STEPS).default(0).describe('Steps of linear learning-rate warmup from zero.'),
    gradient_accumulation: z.number().int().min(1).max(1024).default(1).describe('Batches whose gradients add up before each optimizer step (effective batch = batch_size x this).'),
    clip_skip: z.number().int().min(1).max(11).default(1).describe('Use the output of the N-th last CLIP text layer (1: the last, as SD1.5; 2: as many anime models).'),
    min_snr_gamma: z.number().positive().max(1000).optional().describe('Weight the loss by min(SNR, gamma) / SNR (min-SNR weighting; 5 is usual). Default: off.'),
    noise_offset: z.number().min(0).max(1).default(0).describe('Add this much per-channel offset noise (helps very dark or bright images); 0 is off.'),
    caption_dropout: z.number().min(0).max(1).default(0).describe('Probability of training a step with the empty caption instead of the real one.'),
    flip: z.boolean().default(true).describe('Random horizontal flips of the training images.'),
    max_grad_norm: z.number().min(0).max(1e6).default(1).describe('Clip the global gradient norm to this before each optimizer step (diffusers, kohya and SimpleLoRA use 1.0); 0 turns clipping off.'),
    latents: z
      .enum(['mean', 'sample'])
      .default('mean')
      .describe('VAE latents to train on: mean (the posterior mean) or sample (a posterior sample per step, as SimpleLoRA draws; deterministic per seed and step).'),
    lora_init: z.enum(['kaiming', 'gaussian']).default('kaiming').describe('Initialisation of lora_down: kaiming (kaiming-uniform, as kohya) or gaussian (normal with std 1/rank, as peft and SimpleLoRA).'),
    mixed_precision: z.enum(['auto', 'no', 'fp16', 'bf16']).default('auto').describe('CUDA precision: auto (bf16 where the GPU has it, else fp16), no (fp32), fp16 or bf16. The CPU always trains in fp32.'),
    gradient_checkpointing: z.enum(['auto', 'on', 'off']).default('auto').describe('Recompute activations in the backward pass to save GPU memory: auto (on for a CUDA GPU with at most 8.5 GiB), on or off.'),
    compile: z.boolean().default(false).describe('torch.compile the UNet on CUDA (faster steps after a slow first one).'),
    device: z.enum(['auto', 'cpu', 'cuda']).default('auto').describe('Where to train: auto (CUDA when torch sees a GPU, else the CPU), cpu or cuda.'),
    devices: z
      .number()
      .int()
      .min(1)
      .max(64)
      .optional()
      .describe('Train as N processes (torch.distributed.run + DDP: one GPU each with NCCL, gloo on the CPU); batch_size is the global batch and must split evenly. Default: 1.'),
    portable: z
      .boolean()
      .optional()
      .describe('The result may be reused on another device class or torch version (a remote cache then lets a CPU-built LoRA satisfy a GPU build). Default: results are keyed by device.'),
    publish: path.optional().describe('Also copy the final LoRA to this path, e.g. ~/ComfyUI/models/loras/NAME.safetensors. Its folder must exist (or, for a ComfyUI models/loras folder, the ComfyUI models folder). No default: nothing is copied.'),
  })
  .describe('A LoRA training target (lora_name in the lab node).');

export const SamplerSchema = z.enum(SAMPLER_CHOICES);
export const SchedulerSchema = z.enum(SCHEDULERS);

/** One LoRA applied by a render, like one Load LoRA node in a ComfyUI chain. */
export const RenderLoraSchema = z
  .strictObject({
    file: path.optional().describe('A LoRA .safetensors file (kohya, LoCon, LoHa, LoKr, DoRA, diffusers/PEFT keys), relative to the lorafile or starting with ~ (lora_name of a Load LoRA node); with hub:, the file\'s path in that repo. Give file (with or without hub) or lora. No default.'),
    hub: noControl(z.string().max(200).regex(/^[^/\s]+\/[^/\s]+$/, 'hub repos look like owner/name')).optional().describe('A Hugging Face model repo, owner/name, that holds the LoRA named by file:; downloaded into the HF cache and pinned to a commit in lorafile.lock. No default.'),
    revision: ident(256).optional().describe('Branch, tag or commit of the hub: repo; pinned to a commit in lorafile.lock. Only with hub:. Default: main.'),
    lora: name.optional().describe('A name under loras:, a LoRA this lorafile trains. Give file (with or without hub) or lora. No default.'),
    strength_model: z.number().min(-100).max(100).default(1).describe('Strength on the UNet (strength_model of a Load LoRA node); negative values reverse the LoRA.'),
    strength_clip: z.number().min(-100).max(100).default(1).describe('Strength on the text encoder (strength_clip of a Load LoRA node); 0 leaves the text encoder as it is.'),
    ignore_unknown_keys: z.boolean().default(false).describe('Apply the modules that fit this model and warn about keys that match none. Default: such keys are an error.'),
  })
  .describe('A LoRA to apply: a file, a file of a Hub repo or a trained lora, with its two strengths.');

export const RenderSchema = z
  .strictObject({
    model: name.optional().describe('A name under models:, the base model to render with. Default: the model of the render\'s trained LoRA (needed when it applies only files).'),
    lora: name.optional().describe('A name under loras:, the trained LoRA to render with: shorthand for loras: [{ lora: NAME }]. Give lora or loras. No default.'),
    loras: z.array(RenderLoraSchema).min(1).max(100).optional().describe('The LoRAs to apply, in order, like chained Load LoRA nodes: files (file:), files of Hub repos (hub: + file:) and trained LoRAs (lora:). Give lora or loras. No default.'),
    prompts: z.array(text(10_000).min(1)).min(1).max(1000).describe('The prompts: one grid row per prompt and seed. Required.'),
    negative_prompt: text(10_000).default('').describe('The negative prompt of every cell.'),
    seeds: z.array(seed).min(1).max(1000).default([0]).describe('Noise seeds: one grid row per prompt and seed; every column of a row starts from the same noise.'),
    strengths: z.array(z.number().min(-10).max(10)).min(1).max(100).default([0, 1]).describe('One column each; a strength multiplies every LoRA\'s strength_model and strength_clip, and 0 is the image without any LoRA.'),
    checkpoints: z.array(z.number().int().min(1).max(MAX_STEPS)).min(1).max(1000).optional().describe('Training steps whose checkpoints to render as columns (multiples of checkpoint_every, or the final step), for the render\'s one trained LoRA. Default: only the final LoRA.'),
    sampler: SamplerSchema.default('euler').describe(
      "The sampler, as ComfyUI's KSampler names it (sampler_name). euler_a and dpmpp_2m_karras are the old names of euler_ancestral and of dpmpp_2m with scheduler karras.",
    ),
    scheduler: SchedulerSchema.optional().describe("The noise schedule, as ComfyUI's KSampler names it. Default: normal (karras for the old name dpmpp_2m_karras)."),
    steps: z.number().int().min(1).max(1000).default(25).describe('Sampling steps per image.'),
    cfg: z.number().min(0).max(100).default(7.5).describe('Classifier-free guidance scale.'),
    denoise: z
      .number()
      .gt(0)
      .max(1)
      .default(1)
      .describe("KSampler's denoise: below 1 runs the last part of a longer schedule, re-noising init_image (without one, starting from less noise)."),
    init_image: path
      .optional()
      .describe('img2img: an image (path relative to the lorafile), scaled to cover width x height and center-cropped, encoded and re-noised to denoise. Default: none.'),
    width: z.number().int().min(64).max(2048).multipleOf(8).optional().describe('Image width in pixels, a multiple of 8. Default: the trained lora\'s resolution, else the model\'s native size (512; 64 for builtin tiny).'),
    height: z.number().int().min(64).max(2048).multipleOf(8).optional().describe('Image height in pixels, a multiple of 8. Default: as width.'),
    columns: z.enum(['strength', 'checkpoint', 'checkpoint×strength']).default('strength').describe('What the grid columns show: the strengths, the checkpoints, or every checkpoint at every strength.'),
    portable: z
      .boolean()
      .optional()
      .describe('The images may be reused on another device class or torch version (a remote cache then lets CPU-rendered cells satisfy a GPU build). Default: results are keyed by device.'),
    score: z
      .strictObject({
        clip: path.describe('CLIP as ONNX (text_model.onnx + vision_model.onnx): a folder or a Hugging Face repo id. Required.'),
      })
      .optional()
      .describe('Score the cells: CLIP-T (prompt alignment), CLIP-I (similarity to the training images) and the LoRA effect per arm. Default: no scoring.'),
  })
  .describe('A sample grid: one row per prompt and seed, one column per strength (and checkpoint).');

const slurmWord = z.string().regex(/^[^\s'"\\]+$/, 'one word: no spaces or quotes');

export const ClusterSchema = z
  .strictObject({
    executor: z.enum(['local', 'slurm']).default('local').describe('slurm: run train and render stages as sbatch jobs'),
    partition: slurmWord.optional().describe('sbatch --partition. Default: the cluster\'s default partition.'),
    gres: slurmWord.optional().describe('sbatch --gres, e.g. gpu:1. Default: none.'),
    time: z
      .string()
      .regex(/^(\d+-)?\d+(:\d{1,2}){0,2}$/, 'a Slurm time limit: MINUTES, HH:MM:SS or D-HH:MM:SS')
      .optional()
      .describe('sbatch --time: the job time limit; the worker gets SIGTERM 60 s before it and saves its state. Default: the partition\'s limit.'),
    account: slurmWord.optional().describe('sbatch --account. Default: your default account.'),
    sbatch_args: z.array(z.string().regex(/^[^\n]+$/, 'one argument per entry')).default([]).describe('more sbatch arguments, e.g. ["--qos=short", "--mem=16G"]'),
    python: path.optional().describe('python with torch on the compute nodes. Default: the one lorabuild uses here.'),
  })
  .describe('where compute stages run: here (local) or as Slurm jobs; the cache folder must be on a file system the nodes share');

export const LorafileSchema = z
  .strictObject({
    version: z.literal(1).describe('The lorafile format version: 1. Required.'),
    python: path.optional().describe('The Python interpreter with torch for the worker (e.g. ComfyUI\'s python_embeded/python.exe). Default: LORABUILD_PYTHON, else a python3 that imports torch.'),
    out: path.default('out').describe('The folder (relative to the lorafile) that gets the LoRAs, renders, validation reports and report.html.'),
    models: z.record(name, ModelSchema).default({}).describe('Base models by name.'),
    datasets: z.record(name, DatasetSchema).default({}).describe('Training datasets by name.'),
    loras: z.record(name, LoraSchema).default({}).describe('LoRA training targets by name (lora_name).'),
    renders: z.record(name, RenderSchema).default({}).describe('Sample grids by name.'),
    cluster: ClusterSchema.optional().describe('Where train and render stages run: here or as Slurm jobs. Default: here (executor local).'),
  })
  .describe('lorabuild lorafile v1');

export type ModelSpec = z.output<typeof ModelSchema>;
export type DatasetSpec = z.output<typeof DatasetSchema>;
export type RulesSpec = z.output<typeof RulesSchema>;
/** checkpoint_every is filled in by the loader (defaultCheckpointEvery): it depends on steps. */
export type LoraSpec = z.output<typeof LoraSchema> & { checkpoint_every: number };
export type RenderSpec = z.output<typeof RenderSchema>;
export type RenderLoraSpec = z.output<typeof RenderLoraSchema>;
export type Sampler = z.output<typeof SamplerSchema>;
export type Scheduler = z.output<typeof SchedulerSchema>;
export type ClusterSpec = z.output<typeof ClusterSchema>;
export type LorafileSpec = Omit<z.output<typeof LorafileSchema>, 'loras'> & { loras: Record<string, LoraSpec> };

/** A loaded, validated lorafile. Paths in specs are as written; resolve them with config/paths.ts. */
export interface Config extends LorafileSpec {
  /** absolute path of the lorafile */
  file: string;
  /** absolute folder of the lorafile: relative paths resolve against it */
  root: string;
  /** raw text of the lorafile (diagnostics show lines from it) */
  source: string;
}
