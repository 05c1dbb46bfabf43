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
      sink.atKey(base, 'model-source', `model '${name}' has no source`, "give exactly one of 'checkpoint: PATH.safetensors', 'hub: owner/name' (with 'file:'), or 'builtin: tiny'");
    } else if (sources.length > 1) {
      sink.atKey([...base, sources[1]], 'model-source', `model '${name}' has both ${sources[0]} and ${sources[1]}`, `keep only one of ${sources.join(', ')}`);
    }
    if (sources.length === 1 && present(m, 'hub') && !present(m, 'file')) {
      sink.atKey([...base, 'hub'], 'hub-file', `model '${name}': hub needs 'file' (which checkpoint file of the repo to use)`, "add 'file: NAME.safetensors'");
    }
    if (present(m, 'file') && !present(m, 'hub')) {
      sink.atKey([...base, 'file'], 'hub-file', `model '${name}': 'file' only applies to hub models`, "add 'hub: owner/name' or remove 'file'");
    }
    const parsed = ModelSchema.safeParse(value);
    if (parsed.success && parsed.data.checkpoint && /\.(ckpt|pt|pth|bin)$/i.test(parsed.data.checkpoint) && !parsed.data.allow_pickle) {
      sink.atValue(
        [...base, 'checkpoint'],
        'pickle-checkpoint',
        `model '${name}': ${parsed.data.checkpoint} is a pickle file, and loading a pickle can run code from it`,
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

function checkRenders(sink: DiagnosticSink, raw: unknown, loras: Map<string, Schedule>): void {
  for (const [name, value] of Object.entries(section(raw, 'renders'))) {
    const base: PathSegment[] = ['renders', name];
    const r = entry(value);
    const known = checkReference(sink, raw, [...base, 'lora'], r.lora, 'lora');
    const columns = field(RenderSchema, r, 'columns') as string | undefined;
    const checkpoints = field(RenderSchema, r, 'checkpoints') as number[] | undefined;
    if (columns?.includes('checkpoint') && !checkpoints && !sink.reported([...base, 'checkpoints'])) {
      sink.atValue([...base, 'columns'], 'checkpoint-columns', `render '${name}': columns '${columns}' needs a checkpoints list`, "add 'checkpoints: [...]' with the training steps to show");
    }
    const lora = known ? loras.get(r.lora as string) : undefined;
    if (!lora?.steps || !checkpoints) continue;
    const { steps } = lora;
    const every = lora.checkpoint_every;
    checkpoints.forEach((step, i) => {
      const path = [...base, 'checkpoints', i];
      if (step > steps) {
        sink.atValue(path, 'render-checkpoint', `render '${name}': checkpoint ${step} is beyond the ${steps} training steps of lora '${String(r.lora)}'`, `use a step of at most ${steps}`);
      } else if (every !== undefined && step % every !== 0 && step !== steps) {
        const below = Math.floor(step / every) * every;
        const options = [below, below + every].filter((s) => s > 0 && s <= steps);
        sink.atValue(
          path,
          'render-checkpoint',
          `render '${name}': lora '${String(r.lora)}' saves no checkpoint at step ${step} (it saves every ${every} steps)`,
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
