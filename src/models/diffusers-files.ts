// Which files of a diffusers model (a local folder or a hub repo) a build needs: per component
// (unet, vae, text_encoder) one set of weights — the fp16 variant when the device is CUDA and the
// repo has it, else the full-precision files (or the other variant when only it exists); a single
// .safetensors or an index plus its shards; pickled .bin only with allow_pickle — plus the configs
// and the tokenizer. Safety checkers, feature extractors, EMA copies and single-file checkpoints
// that repos also carry are not needed. Pure: paths in, choice out (the worker applies the same
// preference to a folder holding both variants, diffusers_layout.py).

export const COMPONENTS = ['unet', 'vae', 'text_encoder'] as const;
export type Component = (typeof COMPONENTS)[number];

const WEIGHT_BASES: Record<Component, string[]> = {
  unet: ['diffusion_pytorch_model'],
  vae: ['diffusion_pytorch_model'],
  text_encoder: ['model', 'pytorch_model'],
};
const TOKENIZER_FILES = ['tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer/tokenizer_config.json', 'tokenizer/special_tokens_map.json'];
const VARIANT = 'fp16';
const MAX_SHARDS = 1000;

export interface WeightChoice {
  component: Component;
  /** a weights file, or the index of sharded weights (its shards come from shardsOf) */
  file: string;
  sharded: boolean;
  pickled: boolean;
}

export interface DiffusersChoice {
  weights: WeightChoice[];
  /** model_index.json, <component>/config.json and tokenizer files the repo has */
  small: string[];
}

export class DiffusersLayoutError extends Error {
  constructor(
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'DiffusersLayoutError';
  }
}

/** Candidate weight files of a component, most preferred first. */
function candidates(component: Component, preferHalf: boolean): Array<{ file: string; sharded: boolean; pickled: boolean }> {
  const variants = preferHalf ? [`.${VARIANT}`, ''] : ['', `.${VARIANT}`];
  const found: Array<{ file: string; sharded: boolean; pickled: boolean }> = [];
  for (const [ext, pickled] of [['.safetensors', false], ['.bin', true]] as const) {
    for (const variant of variants) {
      for (const base of WEIGHT_BASES[component]) {
        found.push({ file: `${component}/${base}${variant}${ext}`, sharded: false, pickled });
        found.push({ file: `${component}/${base}${ext}.index${variant}.json`, sharded: true, pickled });
        if (variant) found.push({ file: `${component}/${base}${variant}${ext}.index.json`, sharded: true, pickled });
      }
    }
  }
  return found;
}

/** Whether a folder or repo looks like a diffusers model (model_index.json or unet/ weights). */
export function looksLikeDiffusers(paths: Iterable<string>): boolean {
  for (const path of paths) if (path === 'model_index.json' || path.startsWith('unet/')) return true;
  return false;
}

export function chooseDiffusersFiles(paths: Iterable<string>, options: { preferHalf: boolean; allowPickle: boolean; where: string }): DiffusersChoice {
  const available = new Set(paths);
  const weights: WeightChoice[] = [];
  for (const component of COMPONENTS) {
    const options_ = candidates(component, options.preferHalf);
    const pick = options_.find((c) => available.has(c.file) && !c.pickled) ?? options_.find((c) => available.has(c.file));
    if (!pick) {
      throw new DiffusersLayoutError(
        `${options.where} has no ${component} weights (looked for ${component}/${WEIGHT_BASES[component][0]}.safetensors, its fp16 variant, sharded weights and .bin)`,
        'a diffusers model has model_index.json, unet/, vae/ and text_encoder/; for a single-file checkpoint set `file:` to it',
      );
    }
    if (pick.pickled && !options.allowPickle) {
      throw new DiffusersLayoutError(
        `${options.where}: ${pick.file} is a pickled checkpoint and the model has no .safetensors ${component} weights; loading a pickle can run arbitrary code from the file`,
        'use a repo or revision with .safetensors weights (many have one under refs/pr/N), or set `allow_pickle: true` on this model if you trust it',
      );
    }
    weights.push({ component, ...pick });
  }
  const small = ['model_index.json', ...COMPONENTS.map((c) => `${c}/config.json`), ...TOKENIZER_FILES].filter((p) => available.has(p));
  return { weights, small };
}

/** The shard files an index names (plain names in the index's folder), checked against what exists. */
export function shardsOf(indexPath: string, indexJson: unknown, available: ReadonlySet<string>): string[] {
  const map = (indexJson as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object' || Array.isArray(map)) {
    throw new DiffusersLayoutError(`${indexPath} is not a sharded-weights index (no weight_map)`, 'download the model again; the index file is damaged');
  }
  const folder = indexPath.slice(0, indexPath.lastIndexOf('/'));
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  if (shards.length === 0 || shards.length > MAX_SHARDS) throw new DiffusersLayoutError(`${indexPath} names ${shards.length} shards`, 'the index file is damaged');
  return shards
    .map((shard) => {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard === '.' || shard === '..' || shard === '') {
        throw new DiffusersLayoutError(`${indexPath} names a shard ${JSON.stringify(shard)} that is not a file in ${folder}/`, 'the index must name files beside it');
      }
      const path = `${folder}/${shard}`;
      if (!available.has(path)) throw new DiffusersLayoutError(`${indexPath} names ${path}, which the model does not have`, 'the model is incomplete; download it again');
      return path;
    })
    .sort();
}
