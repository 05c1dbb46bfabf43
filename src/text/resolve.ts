// Which tokenizer a model uses: CLIP's BPE for every model, lorabuild's builtin ones included (their
// text encoders read CLIP ids), so a caption has one token count in validation, watch, `lorabuild
// tokenize`, training and rendering. A model's own tokenizer files take precedence, in this order:
//   1. the model's `tokenizer:` setting (an error when it holds none)
//   2. the model's own files: a diffusers folder's tokenizer/ (local, or the pinned hub snapshot the
//      stage passes as `model.tokenizerDir`), or the checkpoint's folder
//   3. the model's hub repo in the Hugging Face cache (tokenizer/ of the snapshot refs/<revision>
//      names), for callers without a pinned snapshot (`lorabuild tokenize --model`)
//   4. LORABUILD_CLIP_TOKENIZER
//   5. the vocabulary that ships with lorabuild (assets/clip: OpenAI's bpe_simple_vocab_16e6.txt.gz,
//      MIT), which every SD1.x text encoder uses; so validation never needs a download.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config, ModelSpec } from '../config/schema.js';
import { hubEnv } from '../datasets/hub/env.js';
import type { ModelArch } from '../models/arch.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { expandUserPath } from '../worker/selection.js';
import { findTokenizerFiles, loadClipTokenizer, OPENAI_BPE_FILE, type TokenizerFiles } from './load.js';
import type { Tokenizer } from './tokenizer.js';

export const TOKENIZER_ENV = 'LORABUILD_CLIP_TOKENIZER';

/** The CLIP BPE vocabulary shipped with lorabuild. */
export const SHIPPED_CLIP_BPE = join(PACKAGE_ROOT, 'assets', 'clip', OPENAI_BPE_FILE);

export class TokenizerNotFoundError extends Error {
  constructor(
    readonly subject: string,
    readonly looked: string[],
  ) {
    super(
      `no CLIP tokenizer found for ${subject}; looked in:\n${looked.map((l) => `  - ${l}`).join('\n')}\n` +
        `fix: point it at a folder with vocab.json + merges.txt, a tokenizer/ folder or openai's bpe_simple_vocab_16e6.txt.gz, ` +
        `or remove the setting: lorabuild ships the SD1.x CLIP vocabulary`,
    );
  }
}

interface Place {
  label: string;
  path: string;
}

/** The snapshot of a hub model repo that refs/<revision> (or the revision as a sha) names in the HF cache. */
function hubSnapshot(cacheDir: string, repo: string, revision: string): string | undefined {
  const dir = join(cacheDir, `models--${repo.replace('/', '--')}`);
  let sha = revision;
  if (!/^[0-9a-f]{40}$/.test(revision)) {
    try {
      sha = readFileSync(join(dir, 'refs', ...revision.split('/').filter((s) => s && s !== '..')), 'utf8').trim();
    } catch {
      return undefined;
    }
  }
  const snapshot = join(dir, 'snapshots', sha);
  return /^[0-9a-f]{40}$/.test(sha) && existsSync(snapshot) ? snapshot : undefined;
}

/** The checkpoint's own folder: a diffusers folder itself, a single file's folder. */
function checkpointFolder(config: Config, checkpoint: string): string {
  const path = expandUserPath(config.root, checkpoint);
  try {
    if (statSync(path).isDirectory()) return path;
  } catch {
    // not on this machine: its folder may still hold a tokenizer
  }
  return dirname(path);
}

function placesFor(config: Config | undefined, model: ModelSpec | undefined, env: NodeJS.ProcessEnv, own: ModelTokenizerHint | undefined): Place[] {
  const places: Place[] = [];
  if (own?.tokenizerDir) places.push({ label: "the model's own files", path: own.tokenizerDir });
  if (model?.checkpoint && config) places.push({ label: "the checkpoint's folder", path: checkpointFolder(config, model.checkpoint) });
  if (model?.hub && !own?.tokenizerDir) {
    const snapshot = hubSnapshot(hubEnv(env).cacheDir, model.hub, model.revision);
    if (snapshot) places.push({ label: `the Hugging Face cache (${model.hub})`, path: snapshot });
  }
  const fromEnv = env[TOKENIZER_ENV];
  if (fromEnv) places.push({ label: TOKENIZER_ENV, path: expandUserPath(process.cwd(), fromEnv) });
  return places;
}

/** What a stage knows of a model's own files (stages/model.ts modelFacts): its architecture and tokenizer folder. */
export interface ModelTokenizerHint {
  arch: ModelArch | null;
  tokenizerDir?: string;
}

/** Where the CLIP tokenizer of a model (or, without one, of the environment) comes from. */
export function clipTokenizerFiles(config: Config | undefined, modelName?: string, env: NodeJS.ProcessEnv = process.env, own?: ModelTokenizerHint): TokenizerFiles {
  const model = modelName !== undefined ? config?.models[modelName] : undefined;
  if (model?.tokenizer && config) {
    const path = expandUserPath(config.root, model.tokenizer);
    const files = findTokenizerFiles(path);
    if (!files) {
      throw new TokenizerNotFoundError(`model '${modelName}'`, [
        `tokenizer: ${model.tokenizer} (${path}) holds no vocab.json + merges.txt, tokenizer/ folder or bpe_simple_vocab_16e6.txt.gz`,
      ]);
    }
    return files;
  }
  for (const place of placesFor(config, model, env, own)) {
    const files = findTokenizerFiles(place.path);
    if (files) return files;
  }
  return { kind: 'openai', bpe: SHIPPED_CLIP_BPE };
}

/**
 * The CLIP tokenizer for a model (or, without one, for the environment): the model's own files when
 * it has them, else the shipped vocabulary. Throws TokenizerNotFoundError only for a `tokenizer:`
 * setting that holds no tokenizer.
 */
export async function resolveClipTokenizer(
  config: Config | undefined,
  modelName?: string,
  env: NodeJS.ProcessEnv = process.env,
  cacheDir?: string,
  own?: ModelTokenizerHint,
): Promise<Tokenizer> {
  return loadClipTokenizer(clipTokenizerFiles(config, modelName, env, own), cacheDir);
}

export interface ResolveOptions {
  /** the lorabuild cache: remembers tokenizer identities so fingerprinting need not parse the vocabulary */
  cacheDir?: string;
  /** what the stage found out about the model (hub models: only a stage with a pin knows) */
  model?: ModelTokenizerHint;
  /** the same, for any model by name (tokenizerForDataset asks for the model of a lora); undefined: look at local files */
  modelHint?: (modelName: string) => Promise<ModelTokenizerHint | undefined>;
}

/** The tokenizer a model's text encoder uses (CLIP BPE: its own files, else the shipped vocabulary). */
export async function resolveTokenizer(config: Config, modelName: string, options: ResolveOptions = {}): Promise<Tokenizer> {
  const model = config.models[modelName];
  if (!model) throw new Error(`unknown model '${modelName}' (models: ${Object.keys(config.models).join(', ') || 'none'})`);
  const own = options.model ?? (await options.modelHint?.(modelName));
  return resolveClipTokenizer(config, modelName, process.env, options.cacheDir, own);
}

export interface DatasetTokenizer {
  tokenizer: Tokenizer;
  /** why this one, for the report: "CLIP BPE of model 'dreamshaper8' (lora 'x')" */
  reason: string;
}

/**
 * The tokenizer to validate a dataset's captions with: that of the model of the first lora that
 * trains on it; for a dataset no lora uses, CLIP.
 */
export async function tokenizerForDataset(config: Config, dataset: string, options: ResolveOptions = {}): Promise<DatasetTokenizer> {
  const lora = Object.entries(config.loras).find(([, spec]) => spec.dataset === dataset);
  if (lora) {
    const [loraName, spec] = lora;
    const tokenizer = await resolveTokenizer(config, spec.model, options);
    return { tokenizer, reason: `CLIP BPE tokenizer of model '${spec.model}' (lora '${loraName}')` };
  }
  return { tokenizer: await resolveClipTokenizer(config, undefined, process.env, options.cacheDir), reason: 'CLIP BPE tokenizer (no lora trains on this dataset)' };
}
