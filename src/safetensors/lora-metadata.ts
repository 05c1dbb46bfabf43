// kohya-style (ss_*) and modelspec metadata for the LoRAs lorabuild trains, so the tools that show
// training details (A1111's LoRA tab, kohya's scripts, Civitai) find them where they look.
// No timestamps or host details: the same training gives the same bytes.
import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import type { LoraSpec } from '../config/schema.js';
import { readSafetensorsHeader, writeSafetensors, type TensorData } from './io.js';
import type { Sd1Arch } from './sd15.js';

export interface LoraMetadataInput {
  loraName: string;
  datasetName: string;
  spec: LoraSpec;
  /** sha256 of the base model file */
  modelSha256: string;
  modelName: string;
  arch: Sd1Arch;
  /** captions used for training (after cleaning), one per item */
  captions: string[];
  /** sha256 over the items used (image shas + captions) */
  datasetHash: string;
}

/** kohya's tag frequency: comma-separated tags of every caption, counted. */
export function tagFrequency(captions: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const caption of captions) {
    for (const raw of caption.split(',')) {
      const tag = raw.trim();
      if (tag) counts[tag] = (counts[tag] ?? 0) + 1;
    }
  }
  return counts;
}

export function loraMetadata(input: LoraMetadataInput): Record<string, string> {
  const { spec } = input;
  const alpha = spec.alpha ?? spec.rank;
  return {
    ss_network_module: 'networks.lora',
    ss_network_dim: String(spec.rank),
    ss_network_alpha: String(alpha),
    ss_network_train_unet_only: 'True',
    ss_learning_rate: String(spec.learning_rate),
    ss_unet_lr: String(spec.learning_rate),
    ss_lr_scheduler: spec.lr_scheduler,
    ss_lr_warmup_steps: String(spec.warmup_steps),
    ss_optimizer: 'torch.optim.AdamW(weight_decay=0.01,betas=(0.9,0.999))',
    ss_batch_size_per_device: String(spec.batch_size),
    ss_gradient_accumulation_steps: String(spec.gradient_accumulation),
    ss_seed: String(spec.seed),
    ss_resolution: `(${spec.resolution}, ${spec.resolution})`,
    ss_clip_skip: String(spec.clip_skip),
    ss_noise_offset: String(spec.noise_offset),
    ss_min_snr_gamma: spec.min_snr_gamma === undefined ? 'None' : String(spec.min_snr_gamma),
    ss_caption_dropout_rate: String(spec.caption_dropout),
    ss_flip_aug: spec.flip ? 'True' : 'False',
    ss_max_grad_norm: String(spec.max_grad_norm),
    ss_mixed_precision: spec.mixed_precision,
    ss_num_train_images: String(input.captions.length),
    ss_sd_model_name: input.modelName,
    ss_new_sd_model_hash: input.modelSha256,
    ss_dataset_hash: input.datasetHash,
    ss_tag_frequency: JSON.stringify({ [input.datasetName]: tagFrequency(input.captions) }),
    ss_v2: 'False',
    ss_base_model_version: 'sd_v1',
    'modelspec.sai_model_spec': '1.0.0',
    'modelspec.architecture': 'stable-diffusion-v1/lora',
    'modelspec.implementation': 'diffusers',
    'modelspec.title': input.loraName,
    ss_output_name: input.loraName,
    'modelspec.resolution': `${spec.resolution}x${spec.resolution}`,
    'lorabuild.lora': input.loraName,
    'lorabuild.arch': input.arch,
    'lorabuild.targets': spec.targets,
  };
}

/**
 * Adds kohya's content hash (sha256 of the tensor bytes, i.e. everything after the header, so it
 * does not change when metadata does) and any extra metadata to a finished LoRA file, atomically.
 */
export async function stampLoraFile(file: string, extra: Record<string, string> = {}): Promise<string> {
  const header = await readSafetensorsHeader(file);
  const handle = await open(file, 'r');
  const tensors: Record<string, TensorData> = {};
  try {
    const { size } = await handle.stat();
    const data = Buffer.alloc(size - header.dataStart);
    await handle.read(data, 0, data.length, header.dataStart);
    for (const t of header.tensors.values()) {
      tensors[t.name] = { dtype: t.dtype, shape: t.shape, data: data.subarray(t.begin - header.dataStart, t.end - header.dataStart) };
    }
  } finally {
    await handle.close();
  }
  const modelHash = tensorContentHash(Object.fromEntries(Object.entries(tensors).map(([name, t]) => [name, t.data])));
  await writeSafetensors(file, tensors, { ...header.metadata, ...extra, sshs_model_hash: modelHash });
  return modelHash;
}

/**
 * kohya's sshs_model_hash: sha256 of the tensor bytes in name order (the order the writer stores
 * them in), so that it does not change when only the metadata does.
 */
export function tensorContentHash(tensors: Record<string, Buffer>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) hash.update(tensors[name]);
  return hash.digest('hex');
}

/** The sshs_model_hash a LoRA file's tensors give now (compare with the one its metadata records). */
export async function fileTensorContentHash(file: string): Promise<string> {
  const header = await readSafetensorsHeader(file);
  const data = await readFile(file);
  const tensors: Record<string, Buffer> = {};
  for (const t of header.tensors.values()) tensors[t.name] = data.subarray(t.begin, t.end);
  return tensorContentHash(tensors);
}
