// The base model a train or render stage uses:
//  - builtin: tiny: built once per (seed, worker version) by the worker, kept in the CAS;
//  - builtin: toy: the pretrained weights that ship in assets/toy, checked against their recorded sha256;
//  - checkpoint: the user's single file (hashed through the stat memo; pickles refused unless
//    allowed; non-SD1 files refused with what they are) or diffusers folder (models/local-diffusers.ts);
//  - hub: a single file or a diffusers repo from the Hugging Face hub, pinned in lorafile.lock
//    and kept in the HF cache (models/hub-model.ts).
// modelFacts is cheap (fingerprints, status, the tokenizer choice): it loads and downloads no
// weights. resolveModel gives the worker a file or a folder.
import { mkdir, rm, stat } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { kindOf } from '../cache/safe-fs.js';
import { dirname, extname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Json, StageContext } from '../engine/types.js';
import type { Config, ModelSpec } from '../config/schema.js';
import { inspectSafetensors } from '../safetensors/inspect.js';
import { SafetensorsError } from '../safetensors/format.js';
import { readSafetensorsHeader } from '../safetensors/io.js';
import { resolveUserPath } from '../config/paths.js';
import { kindOfHeader, type ModelArch } from '../models/arch.js';
import { ModelError, prefersHalf, type ModelFacts, type ResolvedModel } from '../models/facts.js';
import { localDiffusersFacts, localDiffusersModel } from '../models/local-diffusers.js';
import { hubModel, hubModelFacts, PICKLE_EXTENSIONS } from '../models/hub-model.js';
import { HubError } from '../datasets/hub/errors.js';
import { readToyCard, TOY_HINT, TOY_MODEL_FILE, toyModelProblem } from './toy-model.js';

export { ModelError, type ModelFacts, type ResolvedModel } from '../models/facts.js';
export type { ModelArch } from '../models/arch.js';

/** A folder for the worker's temporary outputs: inside the cache, so moving into the CAS is a rename. */
export async function workerScratch(ctx: StageContext, label: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = join(ctx.cacheDir, 'tmp', `${label}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { recursive: true });
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function modelSpec(ctx: StageContext, modelName: string): ModelSpec {
  const spec = ctx.config.models[modelName];
  if (!spec) throw new ModelError(modelName, 'is not defined under models: in the lorafile');
  return spec;
}

/** A device or FIFO where the checkpoint belongs would be read forever or block: refused, naming the model. */
function assertFileOrFolder(modelName: string, file: string, path: string): void {
  const st = statSync(path);
  if (st.isFile() || st.isDirectory()) return;
  throw new ModelError(modelName, `checkpoint ${file} is ${kindOf(st)}, not a .safetensors file or a diffusers folder`, 'point `checkpoint:` at the model file itself (e.g. models/checkpoints/DreamShaper_8_pruned.safetensors)');
}

function missingCheckpoint(modelName: string, file: string, path: string): ModelError {
  return new ModelError(modelName, `checkpoint ${file} does not exist (looked at ${path})`, 'fix `checkpoint:` in lorafile.yaml; relative paths start at the lorafile folder');
}

/** Hub failures keep their own message and hint, under the model's name. */
async function asModelError<T>(modelName: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof HubError) throw new ModelError(modelName, err.summary, err.hint);
    throw err;
  }
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

async function checkpointModel(ctx: StageContext, name: string, file: string, allowPickle: boolean, device: string | undefined): Promise<ResolvedModel> {
  const path = resolveUserPath(ctx.config, file);
  if (!existsSync(path)) throw missingCheckpoint(name, file, path);
  assertFileOrFolder(name, file, path);
  if ((await stat(path)).isDirectory()) return localDiffusersModel(ctx, name, path, { preferHalf: prefersHalf(device), allowPickle });
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
    if (info.checkpoint?.arch === 'tiny' || info.checkpoint?.arch === 'toy') arch = info.checkpoint.arch;
  } catch (err) {
    if (err instanceof SafetensorsError) throw new ModelError(name, err.message, 'the file is damaged or not a safetensors checkpoint; download it again');
    throw err;
  }
  return { path, sha256: await ctx.hashFile(path), arch };
}

/** The architecture a single checkpoint file declares (null when its header does not say or does not read). */
async function fileArch(path: string): Promise<ModelArch | null> {
  try {
    return kindOfHeader(await readSafetensorsHeader(path)).arch;
  } catch {
    return null;
  }
}

/**
 * A model's architecture when it is known from the lorafile and local headers alone (for checks
 * before any compute): builtin, or an SD1 `checkpoint:` single file's. Null when it cannot be told
 * here (a hub model, a diffusers folder, a missing file, a file that is not SD1: its stage reports those).
 */
export async function knownModelArch(config: Config, modelName: string): Promise<ModelArch | null> {
  const spec = config.models[modelName];
  if (spec?.builtin) return spec.builtin;
  if (!spec?.checkpoint) return null;
  try {
    const path = resolveUserPath(config, spec.checkpoint); // a Windows path throws: reported elsewhere
    if (!existsSync(path) || (await stat(path)).isDirectory()) return null;
    if (PICKLE_EXTENSIONS.has(extname(path).toLowerCase())) return 'sd15';
    const kind = kindOfHeader(await readSafetensorsHeader(path));
    return kind.family === 'sd1' ? kind.arch : null;
  } catch {
    return null;
  }
}

async function checkpointFacts(ctx: StageContext, name: string, spec: ModelSpec & { checkpoint: string }, device: string | undefined): Promise<ModelFacts> {
  const path = resolveUserPath(ctx.config, spec.checkpoint);
  if (!existsSync(path)) {
    // `lorabuild check` in CI has no checkpoint: it passes the identity its lock recorded
    const recorded = ctx.options.modelIdentityIfMissing;
    if (typeof recorded === 'string') return { identity: recorded, arch: null };
    throw missingCheckpoint(name, spec.checkpoint, path);
  }
  assertFileOrFolder(name, spec.checkpoint, path);
  if ((await stat(path)).isDirectory()) return localDiffusersFacts(ctx, name, path, { preferHalf: prefersHalf(device), allowPickle: spec.allow_pickle });
  const arch = PICKLE_EXTENSIONS.has(extname(path).toLowerCase()) ? null : await fileArch(path);
  return { identity: `sha256:${await ctx.hashFile(path)}`, arch, tokenizerDir: dirname(path) };
}

/** per run (every stage of a run shares its abort signal): facts are worked out once per model and device */
const runFacts = new WeakMap<object, Map<string, Promise<ModelFacts>>>();

/**
 * What identifies the model, its architecture, its tokenizer folder and (hub) its pin, without
 * loading or downloading weights. `device` is the worker's device ('cuda' chooses fp16 variants of
 * diffusers weights); a builtin's identity includes the worker version.
 */
export async function modelFacts(ctx: StageContext, modelName: string, options: { workerVersion?: string; device?: string } = {}): Promise<ModelFacts> {
  const spec = modelSpec(ctx, modelName);
  let memo = runFacts.get(ctx.signal);
  if (!memo) runFacts.set(ctx.signal, (memo = new Map()));
  // what the facts depend on: a builtin's worker version, a diffusers model's device (fp16 variants)
  const key = JSON.stringify([modelName, spec.builtin ? (options.workerVersion ?? null) : null, spec.file || spec.builtin ? null : prefersHalf(options.device)]);
  let pending = memo.get(key);
  if (!pending) {
    pending = (async (): Promise<ModelFacts> => {
      // toy ships pretrained: its file's hash is its identity; tiny is made from (seed, worker version)
      if (spec.builtin === 'toy') return { identity: `builtin:toy:sha256=${toyCardSha256(modelName)}`, arch: 'toy' };
      if (spec.builtin) return { identity: `builtin:${spec.builtin}:seed=${spec.seed}:worker=${options.workerVersion ?? '?'}`, arch: spec.builtin };
      if (spec.checkpoint) return checkpointFacts(ctx, modelName, spec as ModelSpec & { checkpoint: string }, options.device);
      if (spec.hub) {
        const hub = spec as ModelSpec & { hub: string };
        return asModelError(modelName, () => hubModelFacts(ctx, modelName, hub, { preferHalf: prefersHalf(options.device), allowPickle: spec.allow_pickle }));
      }
      throw new ModelError(modelName, 'needs one of builtin:, checkpoint: or hub:');
    })();
    memo.set(key, pending);
    pending.catch(() => memo!.delete(key));
  }
  return pending;
}

/** What identifies a model's content, for fingerprints (see modelFacts). */
export async function modelIdentity(ctx: StageContext, modelName: string, workerVersion: string, device?: string): Promise<string> {
  return (await modelFacts(ctx, modelName, { workerVersion, ...(device ? { device } : {}) })).identity;
}

/**
 * What a hub model's pinned files say about its tokenizer (architecture, tokenizer/ folder); for
 * other models undefined: the tokenizer resolver reads local files itself, and needs no checkpoint
 * (CI validates captions without the model).
 */
export async function modelTokenizerHint(ctx: StageContext, modelName: string): Promise<ModelFacts | undefined> {
  return ctx.config.models[modelName]?.hub ? modelFacts(ctx, modelName) : undefined;
}

/** `{ model_hub: pin }` for a hub model (what a stage puts in its params so the lock pins it), else `{}`. */
export async function modelPinParams(ctx: StageContext, modelName: string, device?: string): Promise<Record<string, Json>> {
  if (!modelSpec(ctx, modelName).hub) return {};
  const facts = await modelFacts(ctx, modelName, device ? { device } : {});
  return facts.pin === undefined ? {} : { model_hub: facts.pin };
}

/** Resolves a `models:` entry to a file or folder for the worker, its hash and its architecture. */
export async function resolveModel(ctx: StageContext, modelName: string, device?: string): Promise<ResolvedModel> {
  const spec = modelSpec(ctx, modelName);
  const pickles = (model: ResolvedModel): ResolvedModel => (spec.allow_pickle ? { ...model, allowPickle: true } : model);
  if (spec.builtin === 'toy') return toyModel(ctx, modelName);
  if (spec.builtin) return builtinModel(ctx, modelName, spec.builtin, spec.seed);
  if (spec.checkpoint) return pickles(await checkpointModel(ctx, modelName, spec.checkpoint, spec.allow_pickle, device));
  if (spec.hub) {
    const hub = spec as ModelSpec & { hub: string };
    const facts = await modelFacts(ctx, modelName, device ? { device } : {});
    return pickles(await asModelError(modelName, () => hubModel(ctx, modelName, hub, { preferHalf: prefersHalf(device), allowPickle: spec.allow_pickle }, facts)));
  }
  throw new ModelError(modelName, 'needs one of builtin:, checkpoint: or hub:');
}
