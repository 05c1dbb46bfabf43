// Which fact paths exist at all, whatever the submission: a rubric that names another path has a
// typo, and that is the rubric's error (exit 2, with the closest fact), not zero points for every
// student. Names (of loras, datasets, stages ...) are wildcards: a submission that lacks the lora
// the rubric names loses the points, it does not break the rubric.
import { didYouMean } from '../config/suggest.js';
import { fieldAt, keysAt } from '../config/schema-walk.js';

/** A subtree of any shape (metadata, params: their keys depend on the file). */
const ANY = 'any';
/** A value without children. */
const LEAF = 'leaf';
type Shape = typeof ANY | typeof LEAF | { [key: string]: Shape };
/** The key under which a mapping of names (loras, datasets, stage ids) holds its entries. */
const NAMED = '*';

const leaves = (...keys: string[]): { [key: string]: Shape } => Object.fromEntries(keys.map((k) => [k, LEAF]));

export const FACT_SHAPE: { [key: string]: Shape } = {
  check: { ...leaves('ok', 'status', 'exit_code', 'stale', 'tampered', 'missing', 'failed'), messages: ANY, stages: { [NAMED]: LEAF } },
  lorafile: LEAF, // checked against the lorafile schema (lorafilePath)
  lock: { exists: LEAF, stages: { [NAMED]: { ...leaves('verified', 'status'), params: ANY, meta: ANY } } },
  models: { [NAMED]: leaves('source', 'builtin', 'checkpoint', 'identity', 'sha256', 'arch') },
  datasets: {
    [NAMED]: {
      ...leaves('source', 'trigger', 'items', 'images', 'captions', 'images_without_caption', 'captions_without_image', 'validated', 'verified', 'errors', 'warnings', 'max_tokens'),
      trigger_coverage: leaves('present', 'of', 'ratio'),
      image_sizes: leaves('min_width', 'min_height', 'max_width', 'max_height'),
    },
  },
  loras: {
    [NAMED]: {
      ...leaves('file', 'size', 'checkpoints', 'kind', 'verified', 'steps', 'learning_rate', 'batch_size', 'seed', 'resolution', 'base_model', 'base_model_sha256', 'base_model_version'),
      ...leaves('base_matches', 'train_images', 'format', 'modules', 'ranks', 'rank', 'alphas', 'alpha', 'targets', 'fits', 'fits_base', 'arch', 'error'),
      metadata: ANY,
      target_modules: ANY,
    },
  },
  renders: {
    [NAMED]: {
      ...leaves('cells_json', 'cells', 'cells_present', 'with_lora', 'without_lora', 'both_arms', 'grid', 'prompts', 'seeds', 'status', 'rows', 'columns', 'width', 'height', 'model_sha256', 'error'),
      scores: { arms: ANY, effects: ANY, effect: leaves('clip_t', 'clip_i') },
    },
  },
  reproduce: { [NAMED]: ANY },
};

export interface FactPathProblem {
  /** index of the first segment that names no fact */
  at: number;
  message: string;
}

/** Whether `path` can name a fact; otherwise which segment is wrong and the closest fact. */
export function checkFactPath(path: string[]): FactPathProblem | undefined {
  if (path[0] === 'lorafile') return lorafilePath(path);
  let shape: Shape = FACT_SHAPE;
  for (const [i, key] of path.entries()) {
    if (shape === ANY) return undefined;
    if (shape === LEAF) return { at: i, message: `'${path.slice(0, i).join('.')}' is a value, it has no '${key}'` };
    if (Object.hasOwn(shape, key)) {
      shape = shape[key];
      continue;
    }
    if (Object.hasOwn(shape, NAMED)) {
      shape = shape[NAMED];
      continue;
    }
    const known = Object.keys(shape);
    const guess = didYouMean(key, known);
    const where = i === 0 ? 'the facts' : `'${path.slice(0, i).join('.')}'`;
    return { at: i, message: `no fact '${path.join('.')}': ${where} has no '${key}' (${guess ? `did you mean '${guess}'? ` : ''}known: ${known.join(', ')})` };
  }
  return undefined;
}

/** `lorafile.…` mirrors the lorafile, so its paths are the lorafile schema's (names of entries are free). */
function lorafilePath(path: string[]): FactPathProblem | undefined {
  for (let i = 2; i <= path.length; i++) {
    if (fieldAt(path.slice(1, i)) !== undefined) continue;
    const known = keysAt(path.slice(1, i - 1));
    const key = path[i - 1];
    const guess = didYouMean(key, known);
    return {
      at: i - 1,
      message: `no fact '${path.join('.')}': the lorafile has no '${key}' at '${path.slice(0, i - 1).join('.')}'${guess ? ` (did you mean '${guess}'?)` : known.length ? ` (known: ${known.join(', ')})` : ''}`,
    };
  }
  return undefined;
}

/** The fact paths, one line per group, for `lorabuild grade --help` ("loras.NAME.{rank, alpha, ...}"). */
export function factPathLines(): string[] {
  const lines: string[] = ['lorafile.* (the lorafile as written, defaults filled in)'];
  const label = (key: string, child: Shape) => `${key === NAMED ? 'NAME' : key}${child === ANY ? '.*' : ''}`;
  const walk = (shape: Shape, prefix: string) => {
    if (shape === ANY || shape === LEAF) return;
    const ends = Object.entries(shape).filter(([, child]) => child === LEAF || child === ANY);
    if (ends.length) lines.push(`${prefix}${ends.length === 1 ? label(...ends[0]) : `{${ends.map(([k, c]) => label(k, c)).join(', ')}}`}`);
    for (const [key, child] of Object.entries(shape)) if (child !== LEAF && child !== ANY) walk(child, `${prefix}${label(key, child)}.`);
  };
  const { lorafile: _lorafile, ...rest } = FACT_SHAPE;
  walk(rest, '');
  return lines;
}
