// The facts a rubric is graded on, as one JSON tree (paths like `loras.one_line_art.rank`):
//
//   check      the verdict of `lorabuild check` (status, exit_code, counts, per-stage status)
//   lorafile   the lorafile's models / datasets / loras / renders as written (defaults filled in)
//   lock       per stage id: the params and summary the lock recorded
//   datasets   per dataset: items, captions, validation errors/warnings, trigger coverage
//   loras      per LoRA, read from the submitted .safetensors: rank, alpha, targets, steps, base model
//   renders    per render, read from cells.json and the cell images: both arms present, counts;
//              `scores` from the score stage when the render has `score:` (CLIP-T / CLIP-I effect)
//
// Everything comes from the lorafile, the lock, the check's re-run outputs and out/; nothing runs.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import type { CheckResult } from '../engine/check.js';
import type { Json, StageOutputs } from '../engine/types.js';
import { displayPath } from '../engine/outputs.js';
import { inspectSafetensors } from '../safetensors/inspect.js';

type Obj = { [key: string]: Json };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const MAX_CELLS_JSON = 16 * 1024 * 1024;

export async function gatherFacts(config: Config, check: CheckResult): Promise<Obj> {
  return {
    check: checkFacts(check),
    lorafile: JSON.parse(JSON.stringify({ models: config.models, datasets: config.datasets, loras: config.loras, renders: config.renders ?? {} })) as Json,
    lock: lockFacts(check),
    datasets: datasetFacts(config, check),
    loras: await loraFacts(config, check),
    renders: renderFacts(config, check),
  };
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

function lockFacts(check: CheckResult): Obj {
  const stages: Obj = {};
  for (const [id, entry] of Object.entries(check.lock.stages)) stages[id] = { params: entry.params ?? {}, meta: entry.meta ?? null };
  return { exists: Object.keys(check.lock.stages).length > 0, stages };
}

/** A stage's outputs as the check saw them (re-run or verified), else as the lock recorded them. */
function outputsOf(check: CheckResult, id: string): StageOutputs | undefined {
  const now = check.outputs.get(id);
  if (now) return now;
  const entry = check.lock.stages[id];
  return entry ? { files: entry.outputs, meta: entry.meta } : undefined;
}

function datasetFacts(config: Config, check: CheckResult): Obj {
  const out: Obj = {};
  for (const [name, spec] of Object.entries(config.datasets)) {
    const prepared = outputsOf(check, `prepare:${name}`)?.meta;
    const validated = outputsOf(check, `validate:${name}`)?.meta;
    const p = isObj(prepared) ? prepared : {};
    const v = isObj(validated) ? validated : {};
    const coverage = isObj(v.trigger_coverage) ? v.trigger_coverage : null;
    const present = coverage && typeof coverage.present === 'number' ? coverage.present : null;
    const of = coverage && typeof coverage.of === 'number' ? coverage.of : null;
    out[name] = {
      source: spec.folder ? 'folder' : 'hub',
      trigger: spec.trigger ?? null,
      items: p.items ?? v.items ?? null,
      images: p.images ?? null,
      captions: p.captions ?? null,
      images_without_caption: p.images_without_caption ?? null,
      captions_without_image: p.captions_without_image ?? null,
      validated: isObj(validated),
      errors: v.errors ?? null,
      warnings: v.warnings ?? null,
      max_tokens: v.max_tokens ?? null,
      trigger_coverage: coverage ? { present, of, ratio: present !== null && of ? present / of : null } : null,
    };
  }
  return out;
}

async function loraFacts(config: Config, check: CheckResult): Promise<Obj> {
  const out: Obj = {};
  for (const name of Object.keys(config.loras)) {
    const outputs = outputsOf(check, `train:${name}`);
    const folder = resolve(config.root, config.out, 'loras', name);
    const fileName = `${name}.safetensors`;
    const onDisk = join(folder, fileName);
    const facts: Obj = { file: null, checkpoints: [] };
    out[name] = facts;
    if (!existsSync(onDisk)) continue;
    facts.file = displayPath(config.root, onDisk);
    facts.size = statSync(onDisk).size;
    facts.checkpoints = Object.keys(outputs?.files ?? {})
      .map((f) => /-step(\d+)\.safetensors$/.exec(f)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
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
      facts.base_model = md.ss_sd_model_name ?? null;
      facts.base_model_sha256 = md.ss_new_sd_model_hash ?? null;
      facts.base_model_version = md.ss_base_model_version ?? null;
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
        facts.fits = info.lora.fit.fits;
        facts.arch = info.lora.fit.arch;
      }
    } catch (err) {
      facts.error = err instanceof Error ? err.message : String(err);
    }
  }
  return out;
}

interface CellRecord {
  file: string;
  sha256: string;
  strength: number;
}

function readCells(path: string): { cells: CellRecord[]; rows: number; columns: number } | string {
  let data: unknown;
  try {
    if (statSync(path).size > MAX_CELLS_JSON) return `${path} is larger than ${MAX_CELLS_JSON} bytes`;
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
  return { cells, rows: data.rows.length, columns: data.columns.length };
}

function renderFacts(config: Config, check: CheckResult): Obj {
  const out: Obj = {};
  for (const [name, spec] of Object.entries(config.renders ?? {})) {
    const folder = resolve(config.root, config.out, 'renders', name);
    const facts: Obj = { cells_json: false, cells: 0, cells_present: 0, with_lora: 0, without_lora: 0, both_arms: false, grid: existsSync(join(folder, 'grid.png')) };
    out[name] = facts;
    facts.prompts = spec.prompts.length;
    facts.seeds = spec.seeds.length;
    facts.status = check.stages.find((s) => s.stage === `render:${name}`)?.status ?? null;
    facts.scores = scoreFacts(outputsOf(check, `score:${name}`)?.meta);
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
    facts.cells = read.cells.length;
    let withLora = 0;
    let without = 0;
    let present = 0;
    for (const cell of read.cells) {
      const abs = join(folder, ...cell.file.split('/'));
      let sha: string;
      try {
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
