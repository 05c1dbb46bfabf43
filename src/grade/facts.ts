// The facts a rubric is graded on, as one JSON tree (paths like `loras.one_line_art.rank`; every
// path that can exist is listed in fact-shape.ts):
//
//   check      the verdict of `lorabuild check` (status, exit_code, counts, per-stage status)
//   lorafile   the lorafile's models / datasets / loras / renders as written (defaults filled in)
//   lock       per stage id: the params and summary the lock recorded (only stages check found ok)
//   models     per model: source, identity and content sha256 (as the verified lock records it)
//   datasets   per dataset, from check's own re-run of prepare and validate: items, captions,
//              validation errors/warnings, trigger coverage, image sizes
//   loras      per LoRA, read from the submitted .safetensors: rank, alpha, targets, steps,
//              resolution, base model, and whether it fits the base model the lorafile names
//              (fits_base) and that base is SD1.5 (fits)
//   renders    per render, read from cells.json and the cell images: both arms present, counts;
//              `scores` from the score stage when the render has `score:` (CLIP-T / CLIP-I effect)
//
// Facts come from what check verified: the lock only where it is intact, validation only from
// check's own re-run. What could not be verified is listed in `unverified` (prefix -> why), and a
// rubric check on such a fact fails saying so, instead of trusting a value nobody checked.
import { renderModelName } from '../config/render-loras.js';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { CheckResult, StageCheck } from '../engine/check.js';
import { displayPath } from '../engine/outputs.js';
import type { Json, StageOutputs } from '../engine/types.js';
import { joinTrees } from '../cache/tree-json.js';
import { inspectSafetensors } from '../safetensors/inspect.js';

type Obj = { [key: string]: Json };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const MAX_JSON = 16 * 1024 * 1024;

export interface Facts {
  facts: Obj;
  /** fact path prefix (e.g. 'datasets.one-line-art') -> why its values are not verified */
  unverified: Record<string, string>;
}

export async function gatherFacts(config: Config, check: CheckResult): Promise<Facts> {
  const unverified: Record<string, string> = {};
  const renders = renderFacts(config, check, unverified);
  const models = modelFacts(config, check, renders);
  const facts: Obj = {
    check: checkFacts(check),
    lorafile: JSON.parse(JSON.stringify({ models: config.models, datasets: config.datasets, loras: config.loras, renders: config.renders ?? {} })) as Json,
    lock: lockFacts(check, unverified),
    models,
    datasets: datasetFacts(config, check, unverified),
    loras: await loraFacts(config, check, models, unverified),
    renders,
  };
  return { facts, unverified };
}

function checkFacts(check: CheckResult): Obj {
  const findings = [...check.general, ...check.stages.flatMap((s) => s.findings)];
  const count = (kind: string) => findings.filter((f) => f.kind === kind).length;
  const status = check.exitCode === 0 ? 'ok' : check.exitCode === 3 ? 'stale' : check.exitCode === 4 ? 'tampered' : 'failed';
  const stages: Obj = {};
  for (const s of check.stages) stages[s.stage] = s.status;
  return {
    ok: check.exitCode === 0,
    status,
    exit_code: check.exitCode,
    stale: count('stale'),
    tampered: count('tampered'),
    missing: count('missing'),
    failed: count('failed'),
    messages: findings.filter((f) => f.kind !== 'info' && f.kind !== 'environment').map((f) => f.message),
    stages,
  };
}

const stageCheck = (check: CheckResult, id: string): StageCheck | undefined => check.stages.find((s) => s.stage === id);

/** Why facts taken from a stage's lock entry or committed outputs cannot be trusted, if they cannot. */
function distrust(check: CheckResult, id: string): string | undefined {
  const s = stageCheck(check, id);
  if (!s) return `${id} is not part of this lorafile`;
  // stale: built from older inputs, but its lock entry and committed outputs are intact (check.* says
  // it is stale); what it built is still what the submission holds
  if (s.status === 'ok' || s.status === 'stale') return undefined;
  const finding = s.findings.find((f) => f.kind !== 'info' && f.kind !== 'environment') ?? s.findings[0];
  return `check found ${id} ${s.status}${finding ? ` (${finding.message})` : ''}`;
}

function lockFacts(check: CheckResult, unverified: Record<string, string>): Obj {
  const stages: Obj = {};
  // one edited entry can make another's record untrustworthy (a score's meta is vouched for by the
  // report's fingerprint): with any tampering, no lock value is a fact
  const tampered = check.exitCode === 4 ? 'check found the lock or the artifacts tampered' : undefined;
  for (const [id, entry] of Object.entries(check.lock.stages)) {
    const why = tampered ?? distrust(check, id);
    stages[id] = { verified: why === undefined, status: stageCheck(check, id)?.status ?? null, params: why ? null : (entry.params ?? {}), meta: why ? null : (entry.meta ?? null) };
    if (why) {
      unverified[`lock.stages.${id}.params`] = why;
      unverified[`lock.stages.${id}.meta`] = why;
    }
  }
  return { exists: Object.keys(check.lock.stages).length > 0, stages };
}

/** Outputs check produced itself by re-running the stage (fetch, prepare, validate). */
function rerunOutputs(check: CheckResult, id: string): StageOutputs | undefined {
  const s = stageCheck(check, id);
  return s?.mode === 'rerun' ? check.outputs.get(id) : undefined;
}

/** Outputs of a stage check verified against the lock and found intact. */
function verifiedOutputs(check: CheckResult, id: string): StageOutputs | undefined {
  return distrust(check, id) === undefined && check.exitCode !== 4 ? check.outputs.get(id) : undefined;
}

function datasetFacts(config: Config, check: CheckResult, unverified: Record<string, string>): Obj {
  const out: Obj = {};
  for (const [name, spec] of Object.entries(config.datasets)) {
    const prepared = rerunOutputs(check, `prepare:${name}`);
    const validated = rerunOutputs(check, `validate:${name}`);
    const p = isObj(prepared?.meta) ? prepared.meta : {};
    const v = isObj(validated?.meta) ? validated.meta : {};
    const coverage = isObj(v.trigger_coverage) ? v.trigger_coverage : null;
    const present = coverage && typeof coverage.present === 'number' ? coverage.present : null;
    const of = coverage && typeof coverage.of === 'number' ? coverage.of : null;
    if (!validated) {
      const s = stageCheck(check, `validate:${name}`);
      const why = s?.findings.find((f) => f.kind === 'failed' || f.kind === 'info')?.message ?? `check did not re-run validate:${name}`;
      for (const key of ['validated', 'errors', 'warnings', 'max_tokens', 'trigger_coverage']) unverified[`datasets.${name}.${key}`] = `validation did not re-run in check: ${why}`;
    }
    if (!prepared) unverified[`datasets.${name}`] = `check could not re-run prepare:${name}`;
    out[name] = {
      source: spec.folder ? 'folder' : 'hub',
      trigger: spec.trigger ?? null,
      items: p.items ?? v.items ?? null,
      images: p.images ?? null,
      captions: p.captions ?? null,
      images_without_caption: p.images_without_caption ?? null,
      captions_without_image: p.captions_without_image ?? null,
      validated: validated !== undefined,
      verified: validated !== undefined,
      errors: v.errors ?? null,
      warnings: v.warnings ?? null,
      max_tokens: v.max_tokens ?? null,
      trigger_coverage: coverage ? { present, of, ratio: present !== null && of ? present / of : null } : null,
      image_sizes: prepared ? imageSizes(check, prepared) : null,
    };
  }
  return out;
}

/** Smallest and largest image sides of the prepared manifest (check's own re-run). */
function imageSizes(check: CheckResult, prepared: StageOutputs): Json {
  const manifest = prepared.files['manifest.json'];
  if (!manifest) return null;
  let data: unknown;
  try {
    const path = check.blobPath(manifest.sha256);
    if (statSync(path).size > MAX_JSON * 16) return null;
    data = joinTrees(check.cas, JSON.parse(readFileSync(path, 'utf8')) as Json).value;
  } catch {
    return null;
  }
  const items = isObj(data) && Array.isArray(data.items) ? data.items : [];
  const sizes = items.map((i) => (isObj(i) && isObj(i.image) ? i.image : null)).filter((i): i is Obj => i !== null && typeof i.width === 'number' && typeof i.height === 'number');
  if (sizes.length === 0) return null;
  const widths = sizes.map((s) => s.width as number);
  const heights = sizes.map((s) => s.height as number);
  return { min_width: Math.min(...widths), min_height: Math.min(...heights), max_width: Math.max(...widths), max_height: Math.max(...heights) };
}

/**
 * Per model: where it comes from and its content hash. A checkpoint's sha256 is the identity the
 * lock records for the stages that use it (verified: intact entries only); a builtin's is the one
 * its verified renders were sampled with.
 */
function modelFacts(config: Config, check: CheckResult, renders: Obj): Obj {
  const out: Obj = {};
  for (const [name, spec] of Object.entries(config.models)) {
    let identity: string | null = null;
    for (const [lora, l] of Object.entries(config.loras)) {
      if (l.model !== name) continue;
      const entry = check.lock.stages[`train:${lora}`];
      const value = entry?.params?.model_identity;
      if (typeof value === 'string' && verifiedOutputs(check, `train:${lora}`)) identity = value;
    }
    let sha256 = identity?.startsWith('sha256:') ? identity.slice('sha256:'.length) : null;
    if (!sha256) {
      for (const [render, r] of Object.entries(config.renders ?? {})) {
        const facts = renders[render];
        if (renderModelName(config, r) === name && isObj(facts) && typeof facts.model_sha256 === 'string') sha256 = facts.model_sha256;
      }
    }
    out[name] = {
      source: spec.builtin ? 'builtin' : spec.checkpoint ? 'checkpoint' : 'hub',
      builtin: spec.builtin ?? null,
      checkpoint: spec.checkpoint ?? null,
      identity,
      sha256,
      arch: spec.builtin === 'tiny' ? 'tiny' : 'sd15',
    };
  }
  return out;
}

async function loraFacts(config: Config, check: CheckResult, models: Obj, unverified: Record<string, string>): Promise<Obj> {
  const out: Obj = {};
  for (const [name, spec] of Object.entries(config.loras)) {
    const id = `train:${name}`;
    const outputs = check.outputs.get(id);
    const folder = resolve(config.root, config.out, 'loras', name);
    const onDisk = join(folder, `${name}.safetensors`);
    const why = distrust(check, id);
    const facts: Obj = { file: null, checkpoints: [], verified: why === undefined };
    out[name] = facts;
    if (why) unverified[`loras.${name}`] = why;
    if (!existsSync(onDisk) || !statSync(onDisk).isFile()) continue;
    facts.file = displayPath(config.root, onDisk);
    facts.size = statSync(onDisk).size;
    facts.checkpoints = Object.keys(outputs?.files ?? {})
      .map((f) => /-step(\d+)\.safetensors$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const model = models[spec.model];
    const modelArch = isObj(model) && model.arch === 'tiny' ? 'tiny' : 'sd15';
    try {
      const info = await inspectSafetensors(onDisk);
      const md = info.metadata;
      const num = (key: string): number | null => (md[key] !== undefined && md[key] !== '' && Number.isFinite(Number(md[key])) ? Number(md[key]) : null);
      facts.kind = info.kind;
      facts.metadata = md;
      facts.steps = num('ss_steps');
      facts.learning_rate = num('ss_learning_rate');
      facts.batch_size = num('ss_batch_size_per_device');
      facts.seed = num('ss_seed');
      facts.resolution = resolutionOf(md);
      facts.base_model = md.ss_sd_model_name ?? null;
      facts.base_model_sha256 = md.ss_new_sd_model_hash ?? null;
      facts.base_model_version = md.ss_base_model_version ?? null;
      const modelSha = isObj(model) && typeof model.sha256 === 'string' ? model.sha256 : null;
      // trained on the very model the lorafile names (false: another base; null: unknown)
      facts.base_matches = modelSha && facts.base_model_sha256 ? facts.base_model_sha256 === modelSha : null;
      facts.train_images = num('ss_num_train_images');
      if (info.lora) {
        facts.format = info.lora.format;
        facts.modules = info.lora.modules;
        facts.ranks = info.lora.ranks;
        facts.rank = info.lora.ranks.length === 1 ? info.lora.ranks[0] : null;
        facts.alphas = info.lora.alphas;
        facts.alpha = info.lora.alphas.length === 1 ? info.lora.alphas[0] : null;
        facts.targets = Object.keys(info.lora.targets).sort();
        facts.target_modules = info.lora.targets;
        // never judged against the base the file claims: `fits_base` against the model the lorafile
        // names for it (its architecture, and trained on that very model); `fits` also requires
        // that model to be SD1.5 (the lab's family), so a LoRA of lorabuild's tiny test model, or
        // one trained on another checkpoint than the lorafile's, never fits
        const fitFor = async (arch: 'sd15' | 'tiny') => (info.lora!.fit.arch === arch ? info.lora! : (await inspectSafetensors(onDisk, { arch })).lora!);
        const asNamed = await fitFor(modelArch);
        facts.arch = modelArch;
        facts.fits_base = asNamed.fit.fits && facts.base_matches !== false;
        facts.fits = modelArch === 'sd15' && facts.fits_base === true;
      }
    } catch (err) {
      facts.error = err instanceof Error ? err.message : String(err);
    }
  }
  return out;
}

/** The training resolution a LoRA records: ss_resolution "(512, 512)" or modelspec "512x512". */
function resolutionOf(md: Record<string, string>): number | null {
  const m = /^\(?\s*(\d+)\s*[,x]\s*(\d+)\s*\)?$/.exec(md.ss_resolution ?? md['modelspec.resolution'] ?? '');
  return m && m[1] === m[2] ? Number(m[1]) : null;
}

interface CellRecord {
  file: string;
  sha256: string;
  strength: number;
}

interface CellsFile {
  cells: CellRecord[];
  rows: number;
  columns: number;
  width: number | null;
  height: number | null;
  model_sha256: string | null;
}

function readCells(path: string): CellsFile | string {
  let data: unknown;
  try {
    if (!statSync(path).isFile()) return `${path} is not a regular file`;
    if (statSync(path).size > MAX_JSON) return `${path} is larger than ${MAX_JSON} bytes`;
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  if (!isObj(data) || !Array.isArray(data.cells) || !Array.isArray(data.rows) || !Array.isArray(data.columns)) return 'cells.json lacks rows, columns or cells';
  const cells: CellRecord[] = [];
  for (const c of data.cells) {
    // file names come from a committed file: only plain names inside the render folder count
    if (!isObj(c) || typeof c.file !== 'string' || typeof c.sha256 !== 'string' || typeof c.strength !== 'number') continue;
    if (c.file.split('/').some((part) => part === '' || part === '.' || part === '..') || c.file.includes('\\') || c.file.startsWith('/')) continue;
    cells.push({ file: c.file, sha256: c.sha256, strength: c.strength });
  }
  const int = (v: Json | undefined) => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);
  return { cells, rows: data.rows.length, columns: data.columns.length, width: int(data.width), height: int(data.height), model_sha256: typeof data.model_sha256 === 'string' ? data.model_sha256 : null };
}

function renderFacts(config: Config, check: CheckResult, unverified: Record<string, string>): Obj {
  const out: Obj = {};
  for (const [name, spec] of Object.entries(config.renders ?? {})) {
    const folder = resolve(config.root, config.out, 'renders', name);
    const facts: Obj = { cells_json: false, cells: 0, cells_present: 0, with_lora: 0, without_lora: 0, both_arms: false, grid: existsSync(join(folder, 'grid.png')) };
    out[name] = facts;
    facts.prompts = spec.prompts.length;
    facts.seeds = spec.seeds.length;
    facts.status = stageCheck(check, `render:${name}`)?.status ?? null;
    const why = distrust(check, `render:${name}`);
    if (why) unverified[`renders.${name}.model_sha256`] = why;
    facts.scores = scoreFacts(verifiedOutputs(check, `score:${name}`)?.meta);
    if (spec.score) {
      const scoreWhy = distrust(check, `score:${name}`) ?? (check.exitCode === 4 ? 'check found the lock or the artifacts tampered' : undefined);
      if (scoreWhy) unverified[`renders.${name}.scores`] = scoreWhy;
    }
    const cellsPath = join(folder, 'cells.json');
    if (!existsSync(cellsPath)) continue;
    const read = readCells(cellsPath);
    if (typeof read === 'string') {
      facts.error = read;
      continue;
    }
    facts.cells_json = true;
    facts.rows = read.rows;
    facts.columns = read.columns;
    facts.width = read.width;
    facts.height = read.height;
    facts.model_sha256 = why ? null : read.model_sha256;
    facts.cells = read.cells.length;
    let withLora = 0;
    let without = 0;
    let present = 0;
    for (const cell of read.cells) {
      const abs = join(folder, ...cell.file.split('/'));
      let sha: string;
      try {
        if (!statSync(abs).isFile()) continue;
        sha = createHash('sha256').update(readFileSync(abs)).digest('hex');
      } catch {
        continue;
      }
      if (sha !== cell.sha256) continue;
      present++;
      if (cell.strength === 0) without++;
      else withLora++;
    }
    facts.cells_present = present;
    facts.with_lora = withLora;
    facts.without_lora = without;
    facts.both_arms = withLora > 0 && without > 0 && present === read.rows * read.columns;
  }
  return out;
}

/** The score stage's summary (CLIP-T / CLIP-I), when the render is scored: `scores.effect` is the first LoRA arm's effect. */
function scoreFacts(meta: Json | undefined): Json {
  if (!isObj(meta) || !Array.isArray(meta.arms)) return null;
  const effects = Array.isArray(meta.effect) ? meta.effect.filter(isObj) : [];
  return {
    arms: meta.arms,
    effects,
    effect: effects.length ? { clip_t: effects[0].clip_t ?? null, clip_i: effects[0].clip_i ?? null } : null,
  };
}
