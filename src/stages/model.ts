// The base model a train or render stage uses, as a file on disk plus its content hash:
//  - builtin: tiny: random weights built once per (seed, worker version) by the worker, kept in the CAS;
//  - builtin: toy: the pretrained weights that ship in assets/toy, checked against their recorded sha256;
//  - checkpoint: the user's file, hashed through the stat memo; pickles refused unless allowed;
//    non-SD1 files refused with what they are.
import { mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { StageContext } from '../engine/types.js';
import { inspectSafetensors } from '../safetensors/inspect.js';
import { SafetensorsError } from '../safetensors/format.js';
import { resolveUserPath } from '../config/paths.js';
import { builtinArchOf, type ModelArch } from '../safetensors/sd15.js';
import { readToyCard, TOY_HINT, TOY_MODEL_FILE, toyModelProblem } from './toy-model.js';

export type { ModelArch };

export interface ResolvedModel {
  path: string;
  sha256: string;
  arch: ModelArch;
}

export class ModelError extends Error {
  constructor(
    readonly model: string,
    message: string,
    readonly hint?: string,
  ) {
    super(`model '${model}': ${message}${hint ? `\n  hint: ${hint}` : ''}`);
    this.name = 'ModelError';
  }
}

const PICKLE_EXTENSIONS = new Set(['.ckpt', '.pt', '.pth', '.bin', '.pkl']);

/** A folder for the worker's temporary outputs: inside the cache, so moving into the CAS is a rename. */
export async function workerScratch(ctx: StageContext, label: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = join(ctx.cacheDir, 'tmp', `${label}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

async function builtinModel(ctx: StageContext, name: string, arch: 'tiny', seed: number): Promise<ResolvedModel> {
  const worker = await ctx.worker();
  const hello = await worker.hello();
  // quiet: the model is not one of the stage's items (cells, captions), so it is not counted with them
  const build = async () => {
    const scratch = await workerScratch(ctx, 'builtin');
    try {
      const path = join(scratch.dir, `${arch}-${seed}.safetensors`);
      await worker.request('build_builtin', { arch, seed, path }, { signal: ctx.signal, log: (l) => ctx.log(l) });
      const blob = await ctx.putBlob({ file: path });
      return { sha256: blob.sha256 };
    } finally {
      await scratch.cleanup();
    }
  };
  const memo = await ctx.item(`model ${name}`, { builtin: arch, seed, worker: hello.worker_version }, build, { quiet: true });
  return { path: ctx.blobPath(memo.sha256), sha256: memo.sha256, arch };
}

/** The sha256 the shipped toy model's card records (after checking that the file and card are there). */
function toyCardSha256(name: string): string {
  const problem = toyModelProblem();
  if (problem) throw new ModelError(name, problem, TOY_HINT);
  return readToyCard().sha256;
}

async function toyModel(ctx: StageContext, name: string): Promise<ResolvedModel> {
  const recorded = toyCardSha256(name);
  const sha256 = await ctx.hashFile(TOY_MODEL_FILE);
  if (sha256 !== recorded) {
    throw new ModelError(name, `the shipped toy model ${TOY_MODEL_FILE} has sha256 ${sha256.slice(0, 12)}… but its card records ${recorded.slice(0, 12)}…`, TOY_HINT);
  }
  return { path: TOY_MODEL_FILE, sha256, arch: 'toy' };
}

async function checkpointModel(ctx: StageContext, name: string, file: string, allowPickle: boolean): Promise<ResolvedModel> {
  const path = resolveUserPath(ctx.config, file);
  if (!existsSync(path)) {
    throw new ModelError(name, `checkpoint ${file} does not exist (looked at ${path})`, 'fix `checkpoint:` in lorafile.yaml; relative paths start at the lorafile folder');
  }
  const ext = extname(path).toLowerCase();
  if (PICKLE_EXTENSIONS.has(ext)) {
    if (!allowPickle) {
      throw new ModelError(
        name,
        `${file} is a pickled checkpoint (${ext}); loading it can run arbitrary code from the file`,
        'use a .safetensors version of the model, or set `allow_pickle: true` on this model if you trust the file',
      );
    }
    return { path, sha256: await ctx.hashFile(path), arch: 'sd15' };
  }
  let arch: ModelArch = 'sd15';
  try {
    const info = await inspectSafetensors(path);
    if (info.kind === 'lora') {
      throw new ModelError(name, `${file} is a LoRA, not a base model`, 'point `checkpoint:` at the SD1.5 checkpoint (e.g. DreamShaper_8_pruned.safetensors)');
    }
    const family = info.checkpoint?.family ?? 'unknown';
    if (family === 'sdxl' || family === 'sd2') {
      const label = family === 'sdxl' ? 'an SDXL' : 'an SD2.x';
      throw new ModelError(name, `${file} is ${label} checkpoint; lorabuild trains SD1.x`, 'use an SD1.5-based checkpoint (e.g. DreamShaper 8, v1-5-pruned-emaonly)');
    }
    arch = builtinArchOf(info.metadata) ?? 'sd15';
  } catch (err) {
    if (err instanceof SafetensorsError) throw new ModelError(name, err.message, 'the file is damaged or not a safetensors checkpoint; download it again');
    throw err;
  }
  return { path, sha256: await ctx.hashFile(path), arch };
}

/**
 * What identifies a model's content without building or loading it (for fingerprints): builtin tiny
 * is fully determined by (seed, worker version); builtin toy and a checkpoint by their file hash.
 */
export async function modelIdentity(ctx: StageContext, modelName: string, workerVersion: string): Promise<string> {
  const spec = ctx.config.models[modelName];
  if (!spec) throw new ModelError(modelName, 'is not defined under models: in the lorafile');
  if (spec.builtin === 'toy') return `builtin:toy:sha256=${toyCardSha256(modelName)}`;
  if (spec.builtin) return `builtin:${spec.builtin}:seed=${spec.seed}:worker=${workerVersion}`;
  if (spec.checkpoint) {
    const path = resolveUserPath(ctx.config, spec.checkpoint);
    // `lorabuild check` in CI has no checkpoint: it passes the identity its lock recorded
    const recorded = ctx.options.modelIdentityIfMissing;
    if (!existsSync(path) && typeof recorded === 'string') return recorded;
    if (!existsSync(path)) throw new ModelError(modelName, `checkpoint ${spec.checkpoint} does not exist (looked at ${path})`, 'fix `checkpoint:` in lorafile.yaml; relative paths start at the lorafile folder');
    return `sha256:${await ctx.hashFile(path)}`;
  }
  return (await resolveModel(ctx, modelName)).sha256;
}

/** Resolves a `models:` entry to a file, its sha256 and its architecture. */
export async function resolveModel(ctx: StageContext, modelName: string): Promise<ResolvedModel> {
  const spec = ctx.config.models[modelName];
  if (!spec) throw new ModelError(modelName, 'is not defined under models: in the lorafile');
  if (spec.builtin === 'toy') return toyModel(ctx, modelName);
  if (spec.builtin) return builtinModel(ctx, modelName, spec.builtin, spec.seed);
  if (spec.checkpoint) return checkpointModel(ctx, modelName, spec.checkpoint, spec.allow_pickle);
  if (spec.hub) {
    throw new ModelError(
      modelName,
      `hub models (${spec.hub}) are not downloaded by this build`,
      `download ${spec.file ?? 'the .safetensors file'} from huggingface.co/${spec.hub} and name it with \`checkpoint:\``,
    );
  }
  throw new ModelError(modelName, 'needs one of builtin:, checkpoint: or hub:');
}
