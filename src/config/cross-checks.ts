// Checks zod cannot do because they span entries: references between sections, init_from cycles,
// exactly-one-source rules, and render checkpoints against the lora's schedule.
import { defaultCheckpointEvery, LoraSchema, ModelSchema, RenderSchema } from './schema.js';
import type { PathSegment } from './locate.js';
import { prefix, type DiagnosticSink } from './sink.js';
import { didYouMean } from './suggest.js';

type Entries = Record<string, unknown>;

function section(raw: unknown, key: string): Entries {
  const value = raw && typeof raw === 'object' ? (raw as Entries)[key] : undefined;
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Entries) : {};
}

function entry(value: unknown): Entries {
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Entries) : {};
}

/** The value of one field parsed on its own (defaults applied), or undefined when that field is invalid. */
function field<S extends { shape: Record<string, { safeParse(v: unknown): { success: boolean; data?: unknown } }> }, K extends string & keyof S['shape']>(
  schema: S,
  e: Entries,
  key: K,
): unknown {
  const result = schema.shape[key].safeParse(e[key]);
  return result.success ? result.data : undefined;
}

/** The schedule of a lora, as far as its fields are valid on their own. */
interface Schedule {
  steps?: number;
  checkpoint_every?: number;
  warmup_steps?: number;
  rank?: number;
  targets?: string;
}

function scheduleOf(l: Entries): Schedule {
  return {
    steps: field(LoraSchema, l, 'steps') as number | undefined,
    checkpoint_every: field(LoraSchema, l, 'checkpoint_every') as number | undefined,
    warmup_steps: field(LoraSchema, l, 'warmup_steps') as number | undefined,
    rank: field(LoraSchema, l, 'rank') as number | undefined,
    targets: field(LoraSchema, l, 'targets') as string | undefined,
  };
}

/** Whether the entry has a misspelling of one of `keys` (already reported as an unknown key). */
function misspells(e: Entries, keys: string[]): boolean {
  return Object.keys(e).some((k) => !keys.includes(k) && didYouMean(k, keys) !== undefined);
}

function present(e: Entries, key: string): boolean {
  return e[key] !== undefined && e[key] !== null;
}

function checkModels(sink: DiagnosticSink, models: Entries): void {
  for (const [name, value] of Object.entries(models)) {
    const m = entry(value);
    const base: PathSegment[] = ['models', name];
    const sources = ['checkpoint', 'hub', 'builtin'].filter((k) => present(m, k));
    if (sources.length === 0 && !misspells(m, ['checkpoint', 'hub', 'builtin'])) {
      sink.atKey(base, 'model-source', `model '${name}' has no source`, "give exactly one of 'checkpoint: PATH.safetensors' (or a diffusers folder), 'hub: owner/name' (a diffusers repo, or with 'file:' one checkpoint of it), or 'builtin: tiny'");
    } else if (sources.length > 1) {
      sink.atKey([...base, sources[1]], 'model-source', `model '${name}' has both ${sources[0]} and ${sources[1]}`, `keep only one of ${sources.join(', ')}`);
    }
    if (present(m, 'file') && !present(m, 'hub')) {
      sink.atKey([...base, 'file'], 'hub-file', `model '${name}': 'file' only applies to hub models`, "add 'hub: owner/name' or remove 'file'");
    }
    const parsed = ModelSchema.safeParse(value);
    const pickle = parsed.success ? ([['checkpoint', parsed.data.checkpoint], ['file', parsed.data.file]] as const).find(([, v]) => v && /\.(ckpt|pt|pth|bin)$/i.test(v)) : undefined;
    if (parsed.success && pickle && !parsed.data.allow_pickle) {
      sink.atValue(
        [...base, pickle[0]],
        'pickle-checkpoint',
        `model '${name}': ${pickle[1]} is a pickle file, and loading a pickle can run code from it`,
        "convert it to .safetensors, or add 'allow_pickle: true' if you trust where it came from",
      );
    }
  }
}

function checkDatasets(sink: DiagnosticSink, datasets: Entries): void {
  for (const [name, value] of Object.entries(datasets)) {
    const d = entry(value);
    const base: PathSegment[] = ['datasets', name];
    const hasFolder = present(d, 'folder');
    const hasHub = present(d, 'hub');
    if (!hasFolder && !hasHub && !misspells(d, ['folder', 'hub'])) {
      sink.atKey(base, 'dataset-source', `dataset '${name}' has no source`, "give 'folder: PATH' (a local dataset) or 'hub: owner/name' (a Hugging Face dataset)");
    } else if (hasFolder && hasHub) {
      sink.atKey([...base, 'hub'], 'dataset-source', `dataset '${name}' has both folder and hub`, 'keep only one of them');
    }
  }
}

/** Checks that `value` names an entry of section `noun`s; a name from another section gets a pointed hint. */
function checkReference(sink: DiagnosticSink, raw: unknown, path: PathSegment[], value: unknown, noun: string): boolean {
  if (typeof value !== 'string' || sink.reported(path)) return false;
  const targets = section(raw, `${noun}s`);
  if (Object.hasOwn(targets, value)) return true;
  const names = Object.keys(targets);
  const suggestion = didYouMean(value, names);
  const elsewhere = ['model', 'dataset', 'lora', 'render'].find((other) => other !== noun && Object.hasOwn(section(raw, `${other}s`), value));
  const listed = names.length ? `defined ${noun}s: ${names.join(', ')}` : `add it under '${noun}s:'`;
  const hint = suggestion ? `did you mean '${suggestion}'?` : elsewhere ? `'${value}' is a ${elsewhere}, but this names a ${noun}; ${listed}` : listed;
  sink.atValue(path, 'unknown-reference', `${prefix(path)}${String(path[path.length - 1])} '${value}' is not defined in ${noun}s`, hint);
  return false;
}

function checkLoras(sink: DiagnosticSink, raw: unknown): Map<string, Schedule> {
  const loras = section(raw, 'loras');
  const schedules = new Map<string, Schedule>();
  for (const [name, value] of Object.entries(loras)) {
    const l = entry(value);
    const base: PathSegment[] = ['loras', name];
    checkReference(sink, raw, [...base, 'model'], l.model, 'model');
    checkReference(sink, raw, [...base, 'dataset'], l.dataset, 'dataset');
    if (l.init_from !== undefined) checkReference(sink, raw, [...base, 'init_from'], l.init_from, 'lora');
    const s = scheduleOf(l);
    schedules.set(name, s);
    if (s.steps === undefined) continue;
    if (!present(l, 'checkpoint_every') && s.checkpoint_every === undefined) s.checkpoint_every = defaultCheckpointEvery(s.steps);
    if (s.checkpoint_every !== undefined && s.checkpoint_every > s.steps) {
      sink.atValue(
        [...base, 'checkpoint_every'],
        'checkpoint-every',
        `lora '${name}': checkpoint_every (${s.checkpoint_every}) is larger than steps (${s.steps})`,
        `set checkpoint_every to at most ${s.steps}, or raise steps`,
      );
    }
    if (s.warmup_steps !== undefined && s.warmup_steps > s.steps) {
      sink.atValue([...base, 'warmup_steps'], 'warmup-steps', `lora '${name}': warmup_steps (${s.warmup_steps}) is larger than steps (${s.steps})`, `use at most ${s.steps} warmup steps`);
    }
  }
  checkInitFrom(sink, loras, schedules);
  return schedules;
}

function checkInitFrom(sink: DiagnosticSink, loras: Entries, schedules: Map<string, Schedule>): void {
  const next = (name: string): string | undefined => {
    const target = entry(loras[name]).init_from;
    return typeof target === 'string' && Object.hasOwn(loras, target) ? target : undefined;
  };
  const inCycle = new Set<string>();
  for (const start of Object.keys(loras)) {
    if (inCycle.has(start)) continue;
    const chain: string[] = [];
    let current: string | undefined = start;
    while (current !== undefined && !chain.includes(current) && !inCycle.has(current)) {
      chain.push(current);
      current = next(current);
    }
    if (current === undefined || inCycle.has(current)) continue;
    const cycle = chain.slice(chain.indexOf(current));
    for (const member of cycle) inCycle.add(member);
    const first = Object.keys(loras).find((n) => cycle.includes(n))!;
    const from = cycle.indexOf(first);
    const ordered = [...cycle.slice(from), ...cycle.slice(0, from), first];
    const message =
      cycle.length === 1 ? `lora '${first}' starts from itself (init_from: ${first})` : `init_from cycle: ${ordered.join(' -> ')}`;
    sink.atValue(['loras', first, 'init_from'], 'init-cycle', message, 'a lora cannot start from itself, directly or through others: remove init_from from one of them');
  }
  for (const name of Object.keys(loras)) {
    const from = next(name);
    if (from === undefined || inCycle.has(name)) continue;
    const mine = schedules.get(name)!;
    const theirs = schedules.get(from)!;
    for (const key of ['rank', 'targets'] as const) {
      if (mine[key] !== undefined && theirs[key] !== undefined && mine[key] !== theirs[key]) {
        sink.atValue(
          ['loras', name, 'init_from'],
          'init-mismatch',
          `lora '${name}' starts from lora '${from}', but their ${key} differs (${String(mine[key])} vs ${String(theirs[key])})`,
          `use the same ${key} in both, or remove init_from`,
        );
      }
    }
  }
}

/** The render's LoRA entries: checks each names exactly one source; returns the trained LoRA names it applies. */
function checkRenderLoras(sink: DiagnosticSink, raw: unknown, name: string, r: Entries): string[] {
  const base: PathSegment[] = ['renders', name];
  const trained: string[] = [];
  if (present(r, 'lora') && present(r, 'loras')) {
    sink.atKey([...base, 'loras'], 'render-loras', `render '${name}' has both lora and loras`, `keep one: move 'lora: ${String(r.lora)}' into the list as '- { lora: ${String(r.lora)} }'`);
  } else if (!present(r, 'lora') && !present(r, 'loras') && !misspells(r, ['lora', 'loras'])) {
    sink.atKey(base, 'render-loras', `render '${name}' applies no LoRA`, "add 'loras:' with '- { file: PATH.safetensors }' or '- { lora: NAME }' entries, or 'lora: NAME'");
  }
  if (present(r, 'lora') && checkReference(sink, raw, [...base, 'lora'], r.lora, 'lora')) trained.push(r.lora as string);
  if (Array.isArray(r.loras)) {
    r.loras.forEach((value, i) => {
      const at: PathSegment[] = [...base, 'loras', i];
      const e = entry(value);
      const sources = ['file', 'hub', 'lora'].filter((k) => present(e, k));
      if (sources.length === 0 && !misspells(e, ['file', 'hub', 'lora']) && !sink.reported(at)) {
        sink.atValue(at, 'lora-source', `render '${name}': loras[${i}] names no LoRA`, "give 'file: PATH.safetensors' (a LoRA file), 'hub: owner/name' with 'file:' (a file of a Hub repo) or 'lora: NAME' (a LoRA this lorafile trains)");
      } else if (present(e, 'lora') && sources.length > 1) {
        sink.atKey([...at, 'lora'], 'lora-source', `render '${name}': loras[${i}] has both ${sources[0]} and lora`, 'keep only one of them: one entry is one LoRA');
      } else if (present(e, 'hub') && !present(e, 'file')) {
        sink.atKey([...at, 'hub'], 'hub-file', `render '${name}': loras[${i}] names hub ${String(e.hub)} but no file in it`, "add 'file: NAME.safetensors', the LoRA's path in that repo");
      }
      if (present(e, 'revision') && !present(e, 'hub')) {
        sink.atKey([...at, 'revision'], 'hub-revision', `render '${name}': loras[${i}]: 'revision' only applies to hub LoRAs`, "add 'hub: owner/name' or remove 'revision'");
      }
      if (present(e, 'lora') && checkReference(sink, raw, [...at, 'lora'], e.lora, 'lora')) trained.push(e.lora as string);
    });
  }
  return trained;
}

function checkRenders(sink: DiagnosticSink, raw: unknown, loras: Map<string, Schedule>): void {
  for (const [name, value] of Object.entries(section(raw, 'renders'))) {
    const base: PathSegment[] = ['renders', name];
    const r = entry(value);
    const trained = checkRenderLoras(sink, raw, name, r);
    const trainedModels = [...new Set(trained.map((t) => entry(section(raw, 'loras')[t]).model).filter((m): m is string => typeof m === 'string'))];
    if (present(r, 'model')) {
      checkReference(sink, raw, [...base, 'model'], r.model, 'model');
    } else if (trained.length === 0 && present(r, 'loras') && !misspells(r, ['model'])) {
      sink.atKey(base, 'render-model', `render '${name}' needs 'model:': its LoRAs are files, so nothing names the base model`, `add 'model: NAME' with one of the models: ${Object.keys(section(raw, 'models')).join(', ') || '(none defined yet)'}`);
    } else if (trainedModels.length > 1) {
      sink.atKey(base, 'render-model', `render '${name}': its trained LoRAs come from different models (${trainedModels.join(', ')})`, "name the base model to render with: 'model: NAME'");
    }
    if (present(r, 'score') && trained.length === 0 && !sink.reported([...base, 'loras'])) {
      sink.atKey([...base, 'score'], 'render-score', `render '${name}': score: compares cells with the training images of a trained LoRA, and this render applies none`, "add a '- { lora: NAME }' entry, or remove score:");
    }
    const columns = field(RenderSchema, r, 'columns') as string | undefined;
    const checkpoints = field(RenderSchema, r, 'checkpoints') as number[] | undefined;
    if (columns?.includes('checkpoint') && !checkpoints && !sink.reported([...base, 'checkpoints'])) {
      sink.atValue([...base, 'columns'], 'checkpoint-columns', `render '${name}': columns '${columns}' needs a checkpoints list`, "add 'checkpoints: [...]' with the training steps to show");
    }
    const distinct = [...new Set(trained)];
    if (checkpoints && distinct.length !== 1) {
      sink.atKey(
        [...base, 'checkpoints'],
        'render-checkpoint',
        `render '${name}': checkpoints: walks the training checkpoints of one trained LoRA, and this render applies ${distinct.length === 0 ? 'none' : `${distinct.length} (${distinct.join(', ')})`}`,
        distinct.length === 0 ? "add a '- { lora: NAME }' entry, or remove checkpoints:" : 'keep one trained LoRA in the render, or remove checkpoints:',
      );
      continue;
    }
    const loraName = distinct[0];
    const lora = loraName !== undefined ? loras.get(loraName) : undefined;
    if (!lora?.steps || !checkpoints) continue;
    const { steps } = lora;
    const every = lora.checkpoint_every;
    checkpoints.forEach((step, i) => {
      const path = [...base, 'checkpoints', i];
      if (step > steps) {
        sink.atValue(path, 'render-checkpoint', `render '${name}': checkpoint ${step} is beyond the ${steps} training steps of lora '${loraName}'`, `use a step of at most ${steps}`);
      } else if (every !== undefined && step % every !== 0 && step !== steps) {
        const below = Math.floor(step / every) * every;
        const options = [below, below + every].filter((s) => s > 0 && s <= steps);
        sink.atValue(
          path,
          'render-checkpoint',
          `render '${name}': lora '${loraName}' saves no checkpoint at step ${step} (it saves every ${every} steps)`,
          `use a multiple of ${every}${options.length ? ` such as ${options.join(' or ')}` : ''}, or the final step ${steps}`,
        );
      }
    });
  }
}

export function crossCheck(sink: DiagnosticSink, raw: unknown): void {
  checkModels(sink, section(raw, 'models'));
  checkDatasets(sink, section(raw, 'datasets'));
  const loras = checkLoras(sink, raw);
  checkRenders(sink, raw, loras);
}
