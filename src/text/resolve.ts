// Which tokenizer a model uses. `builtin: tiny` models use the byte tokenizer; SD1.x checkpoints
// use CLIP's BPE, whose files are found locally (never downloaded here), in this order:
//   1. the model's `tokenizer:` setting          4. LORABUILD_CLIP_TOKENIZER
//   2. the checkpoint's folder (or tokenizer/)   5. the Hugging Face cache: the model's hub repo
//   3. the ComfyUI install the checkpoint is in     (tokenizer/) and openai/clip-vit-large-patch14
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import type { Config, ModelSpec } from '../config/schema.js';
import { hubEnv } from '../datasets/hub/env.js';
import { expandUserPath } from '../worker/start.js';
import { byteTokenizer } from './byte-tokenizer.js';
import { findTokenizerFiles, loadClipTokenizer } from './load.js';
import type { Tokenizer } from './tokenizer.js';

export const TOKENIZER_ENV = 'LORABUILD_CLIP_TOKENIZER';
const CLIP_L_REPO = 'openai/clip-vit-large-patch14';

export class TokenizerNotFoundError extends Error {
  constructor(
    readonly subject: string,
    readonly looked: string[],
  ) {
    super(
      `no CLIP tokenizer found for ${subject}; looked in:\n${looked.map((l) => `  - ${l}`).join('\n')}\n` +
        `fix: set \`tokenizer:\` on the model to a folder with vocab.json + merges.txt (ComfyUI has one in ComfyUI/comfy/sd1_tokenizer) ` +
        `or to openai's bpe_simple_vocab_16e6.txt.gz, or set ${TOKENIZER_ENV}, or download ${CLIP_L_REPO} into the Hugging Face cache ` +
        `(huggingface-cli download ${CLIP_L_REPO} vocab.json merges.txt)`,
    );
  }
}

interface Place {
  label: string;
  path: string;
}

/** `…/ComfyUI/models/checkpoints/x.safetensors` -> `…/ComfyUI/comfy/sd1_tokenizer` */
export function comfyTokenizerFolder(checkpoint: string): string | null {
  const parts = checkpoint.split(/[\\/]/);
  for (let i = parts.length - 2; i >= 1; i--) {
    if (parts[i] === 'checkpoints' && parts[i - 1] === 'models') return [...parts.slice(0, i - 1), 'comfy', 'sd1_tokenizer'].join(sep);
  }
  return null;
}

/** snapshot folders of a hub model repo in the HF cache, newest name last */
function hubSnapshots(cacheDir: string, repo: string): string[] {
  const snapshots = join(cacheDir, `models--${repo.replace('/', '--')}`, 'snapshots');
  if (!existsSync(snapshots)) return [];
  return readdirSync(snapshots)
    .sort()
    .map((s) => join(snapshots, s));
}

function placesFor(config: Config | undefined, model: ModelSpec | undefined, env: NodeJS.ProcessEnv): Place[] {
  const places: Place[] = [];
  if (model?.checkpoint && config) {
    const checkpoint = expandUserPath(config.root, model.checkpoint);
    places.push({ label: "the checkpoint's folder", path: dirname(checkpoint) });
    const comfy = comfyTokenizerFolder(checkpoint);
    if (comfy) places.push({ label: 'the ComfyUI install of the checkpoint', path: comfy });
  }
  const fromEnv = env[TOKENIZER_ENV];
  places.push({ label: TOKENIZER_ENV, path: fromEnv ? expandUserPath(process.cwd(), fromEnv) : '(not set)' });
  const cacheDir = hubEnv(env).cacheDir;
  const repos = model?.hub ? [model.hub, CLIP_L_REPO] : [CLIP_L_REPO];
  for (const repo of repos) {
    const snapshots = hubSnapshots(cacheDir, repo);
    if (snapshots.length === 0) places.push({ label: `the Hugging Face cache (${repo})`, path: join(cacheDir, `models--${repo.replace('/', '--')}`, 'snapshots', '*') });
    for (const snapshot of snapshots.reverse()) places.push({ label: `the Hugging Face cache (${repo})`, path: snapshot });
  }
  return places;
}

/**
 * The CLIP tokenizer for a model (or, without one, for the environment). Throws
 * TokenizerNotFoundError listing every place it looked.
 */
export async function resolveClipTokenizer(
  config: Config | undefined,
  modelName?: string,
  env: NodeJS.ProcessEnv = process.env,
  cacheDir?: string,
): Promise<Tokenizer> {
  const model = modelName !== undefined ? config?.models[modelName] : undefined;
  if (model?.tokenizer && config) {
    const path = expandUserPath(config.root, model.tokenizer);
    const files = findTokenizerFiles(path);
    if (!files) {
      throw new TokenizerNotFoundError(`model '${modelName}'`, [
        `tokenizer: ${model.tokenizer} (${path}) holds no vocab.json + merges.txt, tokenizer/ folder or bpe_simple_vocab_16e6.txt.gz`,
      ]);
    }
    return loadClipTokenizer(files, cacheDir);
  }
  const places = placesFor(config, model, env);
  for (const place of places) {
    const files = place.path.startsWith('(') ? null : findTokenizerFiles(place.path);
    if (files) return loadClipTokenizer(files, cacheDir);
  }
  throw new TokenizerNotFoundError(modelName !== undefined ? `model '${modelName}'` : 'this text', places.map((p) => `${p.label}: ${p.path}`));
}

export interface ResolveOptions {
  /** the lorabuild cache: remembers tokenizer identities so fingerprinting need not parse the vocabulary */
  cacheDir?: string;
}

/** The tokenizer a model's text encoder uses: bytes for `builtin: tiny`, CLIP BPE otherwise. */
export async function resolveTokenizer(config: Config, modelName: string, options: ResolveOptions = {}): Promise<Tokenizer> {
  const model = config.models[modelName];
  if (!model) throw new Error(`unknown model '${modelName}' (models: ${Object.keys(config.models).join(', ') || 'none'})`);
  if (model.builtin) return byteTokenizer();
  return resolveClipTokenizer(config, modelName, process.env, options.cacheDir);
}

export interface DatasetTokenizer {
  tokenizer: Tokenizer;
  /** why this one, for the report: "CLIP BPE of model 'dreamshaper8' (lora 'x')" */
  reason: string;
}

/**
 * The tokenizer to validate a dataset's captions with: that of the model of the first lora that
 * trains on it; for a dataset no lora uses, CLIP when its files can be found, else bytes.
 */
export async function tokenizerForDataset(config: Config, dataset: string, options: ResolveOptions = {}): Promise<DatasetTokenizer> {
  const lora = Object.entries(config.loras).find(([, spec]) => spec.dataset === dataset);
  if (lora) {
    const [loraName, spec] = lora;
    const tokenizer = await resolveTokenizer(config, spec.model, options);
    const kind = tokenizer.id === 'byte-v1' ? 'byte tokenizer' : 'CLIP BPE tokenizer';
    return { tokenizer, reason: `${kind} of model '${spec.model}' (lora '${loraName}')` };
  }
  try {
    return { tokenizer: await resolveClipTokenizer(config, undefined, process.env, options.cacheDir), reason: 'CLIP BPE tokenizer (no lora trains on this dataset)' };
  } catch (err) {
    if (!(err instanceof TokenizerNotFoundError)) throw err;
    return { tokenizer: byteTokenizer(), reason: 'byte tokenizer (no lora trains on this dataset and no CLIP tokenizer files were found)' };
  }
}
