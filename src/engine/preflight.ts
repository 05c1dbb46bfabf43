// Before anything runs: every input the planned stages need that can be checked without running
// them (dataset folders, checkpoint files, the shipped toy model, LoRA files and whether they fit their model, tokenizer
// settings, the publish folder, renders' init images, a Python with torch). All problems come at once, each on the lorafile line that names the input, a missing
// file with the closest name in its folder. `run` stops on them (or, with --keep-going, fails only
// the stages that need them); `doctor` lists them.
import { existsSync, readdirSync, statSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Diagnostic } from '../config/diagnostic.js';
import { displayFileName } from '../config/display.js';
import { ConfigError } from '../config/errors.js';
import { locatorOf } from '../config/lazy.js';
import type { PathSegment } from '../config/locate.js';
import { portablePath, resolveUserPath } from '../config/paths.js';
import type { Config } from '../config/schema.js';
import { renderLoraEntries, renderModelName } from '../config/render-loras.js';
import { didYouMean } from '../config/suggest.js';
import { kindOf } from '../cache/safe-fs.js';
import { clipTokenizerFiles, TokenizerNotFoundError } from '../text/resolve.js';
import { modelPathsOf, rememberedHello } from '../worker/selection.js';
import { findPython, PythonNotFoundError } from '../worker/python.js';
import type { Plan } from './types.js';

export interface PreflightResult {
  /** every problem, in lorafile order */
  diagnostics: Diagnostic[];
  /** stage id -> why it cannot run (the stages that need a missing input) */
  blocked: Map<string, string>;
}

export interface PreflightOptions {
  cacheDir: string;
  env?: NodeJS.ProcessEnv;
  /** check for a Python with torch when train or render stages are planned (default true) */
  python?: boolean;
}

/** 'file or folder': a checkpoint may be a single file or a diffusers model folder */
type Kind = 'file' | 'folder' | 'file or folder';

/** Whether `abs` is there as the kind wanted: null when it is, else what is wrong. */
function absence(abs: string, kind: Kind): string | null {
  let st: Stats;
  try {
    st = statSync(abs);
  } catch {
    return 'does not exist';
  }
  if (kind === 'folder' && !st.isDirectory()) return `is ${st.isFile() ? 'a file' : kindOf(st)}, not a folder`;
  // a FIFO would block the run that opens it, a device would be read forever
  if (kind === 'file' && !st.isFile()) return `is ${kindOf(st)}, not a file`;
  if (kind === 'file or folder' && !st.isFile() && !st.isDirectory()) return `is ${kindOf(st)}, not a file or a folder`;
  return null;
}

/**
 * A hint for a missing path: the closest name in its folder ('DreamShaper8_...' -> 'DreamShaper_8_...'),
 * written the way the lorafile wrote the path, or the nearest folder above it that is missing too.
 */
export function missingPathHint(written: string, abs: string, config: Pick<Config, 'root'>): string | undefined {
  const folder = dirname(abs);
  if (existsSync(folder)) {
    let entries: string[];
    try {
      entries = readdirSync(folder);
    } catch {
      return undefined;
    }
    const close = didYouMean(basename(abs), entries);
    if (close) return `did you mean '${written.replace(/[^/\\]*[/\\]?$/, (last) => close + (/[/\\]$/.test(last) ? last.slice(-1) : ''))}'?`;
    return undefined;
  }
  let missing = folder;
  while (!existsSync(dirname(missing)) && dirname(missing) !== missing) missing = dirname(missing);
  return `its folder ${portablePath(config, missing)} does not exist either`;
}

/** "did you mean 'x'? fix ..." / "its folder ... does not exist either; fix ..." */
function joinHints(near: string | undefined, fix: string): string {
  if (!near) return fix;
  return near.endsWith('?') ? `${near} Otherwise ${fix}` : `${near}; ${fix}`;
}

class Collector {
  readonly diagnostics: Diagnostic[] = [];
  readonly blocked = new Map<string, string>();
  constructor(private readonly config: Config) {}

  add(at: PathSegment[] | null, stages: string[], message: string, hint?: string): void {
    const span = at ? locatorOf(this.config)?.value(at) : undefined;
    this.diagnostics.push({
      severity: 'error',
      code: 'missing-input',
      file: displayFileName(this.config.file),
      ...(span ? { line: span.line, col: span.col, endCol: span.endCol } : {}),
      message,
      ...(hint ? { hint } : {}),
    });
    for (const stage of stages) if (!this.blocked.has(stage)) this.blocked.set(stage, message);
  }

  /** a diagnostic made elsewhere (already positioned) that stops `stages` */
  push(diagnostic: Diagnostic, stages: string[]): void {
    this.diagnostics.push(diagnostic);
    for (const stage of stages) if (!this.blocked.has(stage)) this.blocked.set(stage, diagnostic.message);
  }

  /** a path the lorafile writes; a Windows path on Linux comes back as its own positioned error */
  resolve(written: string, stages: string[]): string | null {
    try {
      return resolveUserPath(this.config, written);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const d of err.diagnostics) {
        this.diagnostics.push(d);
        for (const stage of stages) if (!this.blocked.has(stage)) this.blocked.set(stage, d.message);
      }
      return null;
    }
  }

  needPath(at: PathSegment[], written: string, kind: Kind, stages: string[], what: string, fix: string): void {
    const abs = this.resolve(written, stages);
    if (abs === null) return;
    const problem = absence(abs, kind);
    if (!problem) return;
    const near = problem === 'does not exist' ? missingPathHint(written, abs, this.config) : undefined;
    this.add(at, stages, `${what} ${written} ${problem}${abs !== written ? ` (looked at ${abs})` : ''}`, joinHints(near, fix));
  }
}

/** The model each planned train/render stage needs, with those stages. */
function modelsNeeded(config: Config, plan: Plan): Map<string, string[]> {
  const needs = new Map<string, string[]>();
  const need = (model: string | undefined, stage: string) => {
    if (model === undefined || !config.models[model]) return;
    needs.set(model, [...(needs.get(model) ?? []), stage]);
  };
  for (const id of plan.order) {
    const node = plan.stages.get(id)!;
    if (node.kind === 'train') need(config.loras[node.target]?.model, id);
    if (node.kind === 'render' && config.renders[node.target]) need(renderModelName(config, config.renders[node.target]), id);
  }
  return needs;
}

export async function preflight(config: Config, plan: Plan, options: PreflightOptions): Promise<PreflightResult> {
  const env = options.env ?? process.env;
  const found = new Collector(config);
  const planned = (kind: string, target: string) => plan.stages.has(`${kind}:${target}`);

  for (const [name, spec] of Object.entries(config.datasets)) {
    if (!spec.folder || !planned('fetch', name)) continue;
    found.needPath(['datasets', name, 'folder'], spec.folder, 'folder', [`fetch:${name}`], `dataset '${name}': folder`, 'fix `folder:` (relative to the lorafile), or create the folder with image/ and text/ in it');
  }

  const models = modelsNeeded(config, plan);
  for (const [name, stages] of models) {
    const spec = config.models[name];
    if (spec.checkpoint) {
      found.needPath(['models', name, 'checkpoint'], spec.checkpoint, 'file or folder', stages, `model '${name}': checkpoint`, 'fix `checkpoint:` (relative to the lorafile, or ~/...), or put the file there');
    }
    if (spec.builtin === 'toy') {
      const { toyModelProblem, TOY_HINT } = await import('../stages/toy-model.js');
      const problem = toyModelProblem();
      if (problem) found.add(['models', name, 'builtin'], stages, `model '${name}': ${problem}`, TOY_HINT);
    }
  }
  // the LoRA files renders apply: there, and fitting their model (family, widths, keys)
  for (const [name, spec] of Object.entries(config.renders)) {
    if (!planned('render', name)) continue;
    for (const entry of renderLoraEntries(spec)) {
      if (entry.kind !== 'file') continue;
      found.needPath(['renders', name, ...entry.at, 'file'], entry.file, 'file', [`render:${name}`], `render '${name}': LoRA file`, 'fix `file:` (relative to the lorafile, or ~/...), or put the file there');
    }
  }
  if (Object.keys(config.renders).some((name) => planned('render', name))) {
    const { loraFitProblems } = await import('../loras/preflight.js'); // header reading loads only when renders are planned
    for (const { diagnostic, stage } of await loraFitProblems(config, plan)) found.push(diagnostic, [stage]);
  }

  for (const [name, spec] of Object.entries(config.models)) {
    if (!spec.tokenizer) continue;
    const users = Object.entries(config.loras).filter(([, l]) => l.model === name);
    const stages = [
      ...(models.get(name) ?? []),
      ...users.map(([, l]) => `validate:${l.dataset}`).filter((id) => plan.stages.has(id)),
    ];
    if (stages.length === 0) continue;
    try {
      clipTokenizerFiles(config, name, env);
    } catch (err) {
      if (!(err instanceof TokenizerNotFoundError)) throw err;
      const abs = found.resolve(spec.tokenizer, stages);
      if (abs === null) continue;
      const near = existsSync(abs) ? undefined : missingPathHint(spec.tokenizer, abs, config);
      found.add(
        ['models', name, 'tokenizer'],
        [...new Set(stages)],
        `model '${name}': tokenizer ${spec.tokenizer} ${existsSync(abs) ? 'holds no vocab.json + merges.txt, tokenizer/ folder or bpe_simple_vocab_16e6.txt.gz' : 'does not exist'}`,
        joinHints(near, 'fix `tokenizer:`, or remove it: lorabuild ships the SD1.x CLIP vocabulary'),
      );
    }
  }

  for (const [name, spec] of Object.entries(config.renders)) {
    if (!spec.init_image || !planned('render', name)) continue;
    found.needPath(['renders', name, 'init_image'], spec.init_image, 'file', [`render:${name}`], `render '${name}': init_image`, 'fix `init_image:` (relative to the lorafile), or put the image there');
  }

  for (const [name, spec] of Object.entries(config.loras)) {
    if (!spec.publish || !planned('train', name)) continue;
    const target = found.resolve(spec.publish, [`train:${name}`]);
    if (target === null) continue;
    const { publishFolderProblem } = await import('../safetensors/publish.js'); // safetensors code loads only for `publish:`
    const problem = publishFolderProblem(target, portablePath(config, target), name);
    if (problem) found.add(['loras', name, 'publish'], [`train:${name}`], `lora '${name}': ${problem.message}`, problem.hint);
  }

  const workerStages = plan.order.filter((id) => ['train', 'render'].includes(plan.stages.get(id)!.kind));
  if ((options.python ?? true) && workerStages.length > 0 && !rememberedHello(config, options.cacheDir, env)) {
    const configured = config.python ? found.resolve(config.python, workerStages) : undefined;
    if (configured !== null) {
      try {
        await findPython({ configured, modelPaths: modelPathsOf(config), env });
      } catch (err) {
        if (err instanceof ConfigError) return finish(found); // a Windows checkpoint path: reported above
        if (!(err instanceof PythonNotFoundError)) throw err;
        const [first, ...rest] = err.message.split('\n');
        found.add(config.python ? ['python'] : null, workerStages, first, rest.join('\n').trim() || undefined);
      }
    }
  }

  return finish(found);
}

function finish(found: Collector): PreflightResult {
  const diagnostics = found.diagnostics.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.col ?? 0) - (b.col ?? 0));
  return { diagnostics, blocked: found.blocked };
}
