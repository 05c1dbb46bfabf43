// A diffusers model, wherever its files are (a local folder, an HF snapshot): the files a build
// uses (diffusers-files.ts plus the shards an index names), its architecture from unet/config.json
// or the unet weights, refusals for what lorabuild does not train, and its identity.
import { readFile, stat } from 'node:fs/promises';
import type { Json } from '../engine/types.js';
import { canonicalHash } from '../engine/canonical.js';
import { readSafetensorsHeader } from '../safetensors/io.js';
import { kindOfHeader, kindOfUnetConfig, type ModelArch, type ModelKind } from './arch.js';
import { chooseDiffusersFiles, DiffusersLayoutError, shardsOf, type DiffusersChoice } from './diffusers-files.js';
import { ModelError } from './facts.js';

const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** A small JSON file of a model (config, index), size-bounded, its errors naming the model. */
export async function readModelJson(model: string, abs: string, rel: string): Promise<unknown> {
  if ((await stat(abs)).size > MAX_JSON_BYTES) throw new ModelError(model, `${rel} is larger than ${MAX_JSON_BYTES} bytes, too big for a config file`);
  try {
    return JSON.parse(await readFile(abs, 'utf8')) as unknown;
  } catch (err) {
    throw new ModelError(model, `${rel} is not valid JSON (${(err as Error).message})`, 'download the model again; the file is damaged');
  }
}

export function choose(model: string, paths: Iterable<string>, options: { preferHalf: boolean; allowPickle: boolean; where: string }): DiffusersChoice {
  try {
    return chooseDiffusersFiles(paths, options);
  } catch (err) {
    if (err instanceof DiffusersLayoutError) throw new ModelError(model, err.message, err.hint);
    throw err;
  }
}

/** The weight files of a choice: single files as they are, sharded ones as their index plus shards. */
export async function weightFiles(model: string, choice: DiffusersChoice, available: ReadonlySet<string>, locate: (rel: string) => Promise<string>): Promise<string[]> {
  const files: string[] = [];
  for (const weight of choice.weights) {
    files.push(weight.file);
    if (!weight.sharded) continue;
    const index = await readModelJson(model, await locate(weight.file), weight.file);
    try {
      files.push(...shardsOf(weight.file, index, available));
    } catch (err) {
      if (err instanceof DiffusersLayoutError) throw new ModelError(model, err.message, err.hint);
      throw err;
    }
  }
  return files;
}

/** SD1 and its architecture, or a ModelError saying what the model is instead. */
export function requireSd1(model: string, kind: ModelKind, where: string): ModelArch {
  if (kind.family === 'sdxl') throw new ModelError(model, `${where} is an SDXL model; lorabuild trains SD1.x`, 'use an SD1.5-based model (e.g. DreamShaper 8, stable-diffusion-v1-5)');
  if (kind.family === 'sd2') throw new ModelError(model, `${where} is an SD2.x model; lorabuild trains SD1.x`, 'use an SD1.5-based model (e.g. DreamShaper 8, stable-diffusion-v1-5)');
  if (kind.family === 'lora') throw new ModelError(model, `${where} is a LoRA, not a base model`, 'point the model at an SD1.5 checkpoint; LoRAs go under loras:/renders:');
  if (kind.family !== 'sd1' || kind.arch === null) throw new ModelError(model, `${where} is not an SD1.x model lorabuild knows (unet widths other than SD1.5's or the tiny model's)`, 'use an SD1.5-based model');
  return kind.arch;
}

/** Architecture of a diffusers model from unet/config.json, else from its first unet weights file's header. */
export async function diffusersArch(model: string, where: string, unetConfig: string | undefined, firstUnetWeights: string | undefined): Promise<ModelArch> {
  if (unetConfig) return requireSd1(model, kindOfUnetConfig(await readModelJson(model, unetConfig, 'unet/config.json')), where);
  if (firstUnetWeights?.endsWith('.safetensors')) return requireSd1(model, kindOfHeader(await readSafetensorsHeader(firstUnetWeights)), where);
  return 'sd15';
}

/** The identity of a diffusers model: the hash of the paths and content hashes of the files it uses. */
export function diffusersIdentity(files: Array<[path: string, hash: string]>): string {
  return `diffusers:${canonicalHash([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) as unknown as Json)}`;
}

/** The hash part of an identity ("diffusers:<hash>" -> "<hash>"), where a file's sha256 would be. */
export function identityHash(identity: string): string {
  return identity.slice(identity.indexOf(':') + 1);
}
