// `hub: owner/name` models: with `file:` one single-file checkpoint of the repo, without it the
// repo's diffusers model. Pinned like hub datasets (the commit and the files' hashes go into the
// params of every stage that uses the model, so lorafile.lock holds them and a later run makes no
// request), downloaded into the HF cache (models--owner--name) only when a stage needs the weights.
// The kind of model is known before any weights are downloaded: the single file's header comes by
// two Range requests, a diffusers repo's unet/config.json is small; SDXL, SD2 and LoRAs are refused
// then, not after gigabytes.
import { dirname, extname } from 'node:path';
import type { ModelSpec } from '../config/schema.js';
import type { Json, StageContext } from '../engine/types.js';
import { modelRepoPin, hubPinnedFiles, pinnedSafetensorsHeader, pinnedSha256, type HubRepoPin } from '../datasets/hub/model-repo.js';
import { kindOfHeader, kindOfUnetConfig, type ModelArch } from './arch.js';
import { choose, diffusersIdentity, identityHash, readModelJson, requireSd1, weightFiles } from './diffusers-model.js';
import { ModelError, type ModelFacts, type ResolvedModel } from './facts.js';
import { HubError } from '../datasets/hub/errors.js';
import { modelView } from './view.js';

export const PICKLE_EXTENSIONS = new Set(['.ckpt', '.pt', '.pth', '.bin', '.pkl']);

/** The pin as recorded: with the architecture, so later runs need neither a header nor a config. */
type RecordedPin = HubRepoPin & { arch?: ModelArch };

interface Options {
  preferHalf: boolean;
  allowPickle: boolean;
}

function pickleRefusal(model: string, path: string): ModelError {
  return new ModelError(model, `${path} is a pickled checkpoint (${extname(path)}); loading it can run arbitrary code from the file`, 'use a .safetensors file of the model, or set `allow_pickle: true` on this model if you trust it');
}

async function singleFileFacts(ctx: StageContext, model: string, spec: ModelSpec & { hub: string; file: string }, options: Options, known?: RecordedPin): Promise<{ facts: ModelFacts & { arch: ModelArch }; pin: RecordedPin }> {
  const pickled = PICKLE_EXTENSIONS.has(extname(spec.file).toLowerCase());
  if (pickled && !options.allowPickle) throw pickleRefusal(model, `${spec.hub}/${spec.file}`);
  const pin: RecordedPin = known ?? (await modelRepoPin(ctx, { repo: spec.hub, revision: spec.revision, file: spec.file }));
  let arch = pin.arch;
  if (arch !== 'sd15' && arch !== 'tiny') {
    arch = pickled ? 'sd15' : requireSd1(model, kindOfHeader(await pinnedSafetensorsHeader(ctx, pin, spec.file)), `${spec.hub}/${spec.file}`);
  }
  const sha256 = pinnedSha256(pin, spec.file);
  const identity = sha256 ? `sha256:${sha256}` : `hub:${pin.hub}@${pin.commit}/${spec.file}:${pin.files[spec.file].etag}`;
  const recorded = { ...pin, arch };
  return { facts: { identity, arch, pin: recorded as unknown as Json }, pin: recorded };
}

interface DiffusersPlan {
  facts: ModelFacts & { arch: ModelArch };
  pin: RecordedPin;
  /** every file the build uses (configs, tokenizer, weights) */
  used: string[];
}

/** Files to have before any weights: shard indexes, unet/config.json (unless the pin knows the architecture). */
async function smallFiles(ctx: StageContext, pin: RecordedPin, paths: string[]): Promise<Map<string, string>> {
  if (paths.length === 0) return new Map();
  return new Map((await hubPinnedFiles(ctx, pin, paths)).map((f) => [f.path, f.abs]));
}

/**
 * The tokenizer folder of a pinned diffusers model. Offline without it in the HF cache, none: the
 * shipped CLIP vocabulary is what every SD1.x tokenizer/ holds (a different one shows up as a
 * changed tokenizer id, never silently).
 */
async function tokenizerFolder(ctx: StageContext, pin: RecordedPin, small: string[]): Promise<string | undefined> {
  const files = small.filter((p) => p.startsWith('tokenizer/'));
  if (!files.includes('tokenizer/vocab.json') || !files.includes('tokenizer/merges.txt')) return undefined;
  try {
    const cached = await hubPinnedFiles(ctx, pin, files);
    return dirname(dirname(cached.find((f) => f.path === 'tokenizer/vocab.json')!.abs));
  } catch (err) {
    if (err instanceof HubError && err.code === 'offline-not-cached') {
      ctx.log(`warning: HF_HUB_OFFLINE=1 and the tokenizer of ${pin.hub}@${pin.commit} is not in the Hugging Face cache; using the CLIP vocabulary that ships with lorabuild`);
      return undefined;
    }
    throw err;
  }
}

async function diffusersPlan(ctx: StageContext, model: string, spec: ModelSpec & { hub: string }, options: Options, known?: RecordedPin): Promise<DiffusersPlan> {
  const pin: RecordedPin = known ?? (await modelRepoPin(ctx, { repo: spec.hub, revision: spec.revision, file: null }));
  const where = `model ${spec.hub}@${pin.commit.slice(0, 12)}`;
  const available = new Set(Object.keys(pin.files));
  const choice = choose(model, available, { ...options, where });
  const archKnown = pin.arch === 'sd15' || pin.arch === 'tiny';
  const indexes = choice.weights.filter((w) => w.sharded).map((w) => w.file);
  // before any weights: the kind of model (refused now if it is not SD1) and the shard lists
  const located = await smallFiles(ctx, pin, [...indexes, ...(!archKnown && available.has('unet/config.json') ? ['unet/config.json'] : [])]);
  const weights = await weightFiles(model, choice, available, async (rel) => located.get(rel)!);
  let arch = pin.arch;
  if (arch !== 'sd15' && arch !== 'tiny') {
    const config = located.get('unet/config.json');
    if (config) arch = requireSd1(model, kindOfUnetConfig(await readModelJson(model, config, 'unet/config.json')), where);
    else {
      const unet = weights.find((w) => w.startsWith('unet/') && w.endsWith('.safetensors'));
      arch = unet ? requireSd1(model, kindOfHeader(await pinnedSafetensorsHeader(ctx, pin, unet)), where) : 'sd15';
    }
  }
  const used = [...new Set([...choice.small, ...weights])];
  const identity = diffusersIdentity(used.map((rel) => [rel, pin.files[rel].etag]));
  const tokenizerDir = await tokenizerFolder(ctx, pin, choice.small);
  const recorded = { ...pin, arch };
  return { facts: { identity, arch, pin: recorded as unknown as Json, ...(tokenizerDir ? { tokenizerDir } : {}) }, pin: recorded, used };
}

function hasFile(spec: ModelSpec): spec is ModelSpec & { hub: string; file: string } {
  return typeof spec.file === 'string';
}

export async function hubModelFacts(ctx: StageContext, model: string, spec: ModelSpec & { hub: string }, options: Options): Promise<ModelFacts> {
  return hasFile(spec) ? (await singleFileFacts(ctx, model, spec, options)).facts : (await diffusersPlan(ctx, model, spec, options)).facts;
}

/**
 * Downloads what the model needs (resume, verify) and gives the worker a file or a folder. `facts`:
 * what modelFacts found for this run (its pin, with the architecture), so nothing is asked twice.
 */
export async function hubModel(ctx: StageContext, model: string, spec: ModelSpec & { hub: string }, options: Options, facts: ModelFacts): Promise<ResolvedModel> {
  const known = facts.pin as unknown as RecordedPin | undefined;
  if (hasFile(spec)) {
    const { pin, facts: single } = await singleFileFacts(ctx, model, spec, options, known);
    const [file] = await hubPinnedFiles(ctx, pin, [spec.file]);
    return { path: file.abs, sha256: file.sha256, arch: single.arch };
  }
  const plan = await diffusersPlan(ctx, model, spec, options, known);
  const files = await hubPinnedFiles(ctx, plan.pin, plan.used);
  const path = await modelView(ctx.cacheDir, Object.fromEntries(files.map((f) => [f.path, f.abs])));
  return { path, sha256: identityHash(plan.facts.identity), arch: plan.facts.arch };
}
