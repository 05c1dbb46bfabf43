// report — out/report.html (self-contained) and out/report.md from every validate, train and render
// stage of the run: per LoRA the loss curve, parameters and files, its A/B grids with a
// before/after slider per cell, and the validation summaries.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Json, OutputFile, StageContext, StageImpl, StageInputs, StageKind, StageNode, StageResult } from '../engine/types.js';
import type { ReportImage, ReportLora, ReportModel, ReportRender, ReportRenderLora, ReportScores, ReportValidation } from '../report/model.js';
import { stageRegistry } from './index.js';

/** Above this many bytes of images, later images are linked instead of inlined. */
const INLINE_BUDGET = 24 * 1024 * 1024;
/** diagnostics of a dataset the report lists (the first 20 open, the rest folded); validation.md has them all */
const MAX_MESSAGES = 500;

type Obj = Record<string, Json>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class ImageInliner {
  private used = 0;
  constructor(private readonly ctx: StageContext) {}

  image(href: string, blob: OutputFile, width: number, height: number, linkable: boolean): ReportImage {
    if (blob.size + this.used <= INLINE_BUDGET || !linkable) {
      this.used += blob.size;
      const data = readFileSync(this.ctx.blobPath(blob.sha256)).toString('base64');
      return { href, dataUri: `data:image/png;base64,${data}`, width, height };
    }
    return { href, dataUri: null, width, height };
  }
}

async function outFolder(ctx: StageContext, id: string): Promise<string | null> {
  const [kind, target] = id.split(':') as [StageKind, string];
  const node: StageNode = { id, kind, target, deps: [], resource: 'cpu' };
  const impl = await stageRegistry(kind);
  const folder = impl.materializeTo(node, ctx.config);
  return folder === null ? null : folder.split(/[\\/]/).filter(Boolean).join('/');
}

const linkUnder = (folder: string | null, name: string) => (folder ? `${folder}/${name}`.replace(/^\//, '') : name);

function readJson(ctx: StageContext, id: string, name: string): unknown {
  return JSON.parse(readFileSync(ctx.upstreamPath(id, name), 'utf8'));
}

async function loraOf(ctx: StageContext, id: string): Promise<ReportLora> {
  const name = id.slice('train:'.length);
  const outputs = ctx.upstream(id);
  const folder = await outFolder(ctx, id);
  const lossFile = outputs.files['loss.json'] ? (readJson(ctx, id, 'loss.json') as { loss?: unknown }) : {};
  const loss = Array.isArray(lossFile.loss) ? (lossFile.loss.filter((p) => Array.isArray(p) && p.length === 2) as [number, number][]) : [];
  const files = Object.entries(outputs.files)
    .filter(([file]) => file.endsWith('.safetensors'))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([file, blob]) => ({ name: file, href: linkUnder(folder, file), size: blob.size }));
  const spec = ctx.config.loras[name];
  const meta = isObj(outputs.meta) ? outputs.meta : {};
  const warnings = Array.isArray(meta.warnings) ? meta.warnings.filter((w): w is string => typeof w === 'string') : [];
  return { name, params: (spec ?? {}) as unknown as Obj, loss, files, meta, warnings };
}

interface CellsJson {
  lora: string | null;
  loras?: ReportRenderLora[];
  model: string;
  sampler: string;
  /** absent in cells.json written before renders had schedulers */
  scheduler?: string;
  denoise?: number;
  init_image?: string | null;
  steps: number;
  cfg: number;
  width: number;
  height: number;
  negative_prompt: string;
  columns: { label: string; strength: number; step: number | null }[];
  rows: { prompt: string; seed: number }[];
  cells: { row: number; col: number; file: string; strength: number; step: number | null; parameters: string }[];
  grid: { file: string; width: number; height: number };
  diagnostics?: { message?: string }[];
}

const BUILTIN_NOTES: Record<string, string> = {
  toy:
    "lorabuild's builtin toy model: a small SD1-architecture model pretrained on 64 px pictures of filled shapes " +
    '(circle, square, triangle, star, heart, house, diamond, cross) in named colors on plain backgrounds. ' +
    'The strength 0 column is what it draws from the prompt alone; the other columns add the LoRA, from the same noise.',
  tiny: "lorabuild's builtin tiny model has random weights: its pictures are noise. It tests the pipeline, not the pictures.",
};

async function renderOf(ctx: StageContext, id: string, inline: ImageInliner): Promise<ReportRender> {
  const name = id.slice('render:'.length);
  const outputs = ctx.upstream(id);
  const folder = await outFolder(ctx, id);
  const data = readJson(ctx, id, 'cells.json') as CellsJson;
  const blobOf = (file: string): OutputFile => {
    const blob = outputs.files[file];
    if (!blob) throw new Error(`${id}: cells.json names ${file}, which is not among the stage's outputs`);
    return blob;
  };
  const image = (file: string, w: number, h: number) => inline.image(linkUnder(folder, file), blobOf(file), w, h, folder !== null);
  return {
    name,
    lora: data.lora ?? '',
    loras: data.loras ?? [],
    model: data.model,
    modelNote: BUILTIN_NOTES[ctx.config.models[data.model]?.builtin ?? ''],
    settings: {
      sampler: data.sampler,
      ...(data.scheduler !== undefined ? { scheduler: data.scheduler } : {}),
      steps: data.steps,
      cfg: data.cfg,
      ...(data.denoise !== undefined && data.denoise < 1 ? { denoise: data.denoise } : {}),
      ...(data.init_image ? { init_image: data.init_image } : {}),
      size: `${data.width}x${data.height}`,
      negative_prompt: data.negative_prompt,
    },
    columns: data.columns,
    rows: data.rows,
    grid: image(data.grid.file, data.grid.width, data.grid.height),
    cells: data.cells.map((c) => ({ row: c.row, col: c.col, strength: c.strength, step: c.step, parameters: c.parameters, image: image(c.file, data.width, data.height) })),
    warnings: (data.diagnostics ?? []).map((d) => String(d.message ?? '')).filter(Boolean),
  };
}

/** Reads a validation report without assuming more than diagnostics with severity and message. */
async function validationOf(ctx: StageContext, id: string): Promise<ReportValidation> {
  const dataset = id.slice('validate:'.length);
  const outputs = ctx.upstream(id);
  const folder = await outFolder(ctx, id);
  const meta = isObj(outputs.meta) ? outputs.meta : {};
  const json = outputs.files['validation.json'] ? readJson(ctx, id, 'validation.json') : {};
  const diagnostics = (isObj(json) && Array.isArray(json.diagnostics) ? json.diagnostics : []).filter(isObj);
  const count = (severity: string, key: string) => {
    const fromMeta = [meta[key], isObj(json) ? json[key] : undefined, isObj(json) && isObj(json.summary) ? json.summary[key] : undefined].find((v) => typeof v === 'number');
    return typeof fromMeta === 'number' ? fromMeta : diagnostics.filter((d) => d.severity === severity).length;
  };
  const messages = diagnostics.slice(0, MAX_MESSAGES).map((d) => {
    const where = [d.file, d.line, d.col].filter((v) => v !== undefined && v !== null).join(':') || (typeof d.item === 'string' ? `item ${d.item}` : '');
    return { severity: String(d.severity ?? 'info'), text: `${where ? `${where}: ` : ''}${String(d.message ?? JSON.stringify(d))}` };
  });
  return {
    dataset,
    errors: count('error', 'errors'),
    warnings: count('warning', 'warnings'),
    messages,
    meta,
    href: outputs.files['validation.md'] && folder !== null ? linkUnder(folder, 'validation.md') : null,
  };
}

async function inputs(ctx: StageContext): Promise<StageInputs> {
  // the LoRA settings the report prints (a change that does not retrain, such as publish:, still shows)
  const loras = Object.fromEntries(
    ctx.node.deps.filter((id) => id.startsWith('train:')).map((id) => [id, (ctx.config.loras[id.slice('train:'.length)] ?? null) as unknown as Json]),
  );
  return { params: { stages: ctx.node.deps, out: ctx.config.out, loras }, files: {} };
}

export async function buildReportModel(ctx: StageContext): Promise<ReportModel> {
  const inline = new ImageInliner(ctx);
  const model: ReportModel = { title: `lorabuild report — ${basename(ctx.config.file)}`, lorafile: basename(ctx.config.file), loras: [], renders: [], validations: [], missing: [] };
  for (const id of ctx.node.deps) {
    let outputs;
    try {
      outputs = ctx.upstream(id);
    } catch {
      model.missing.push(id);
      continue;
    }
    if (!outputs) {
      model.missing.push(id);
      continue;
    }
    if (id.startsWith('train:')) model.loras.push(await loraOf(ctx, id));
    else if (id.startsWith('render:')) model.renders.push(await renderOf(ctx, id, inline));
    else if (id.startsWith('validate:')) model.validations.push(await validationOf(ctx, id));
    else if (id.startsWith('score:')) {
      const render = model.renders.find((r) => r.name === id.slice('score:'.length));
      if (render) render.scores = readJson(ctx, id, 'scores.json') as ReportScores;
    }
  }
  return model;
}

async function run(ctx: StageContext): Promise<StageResult> {
  const model = await buildReportModel(ctx);
  // the writers load only when the report is built (status and no-op runs only fingerprint it)
  const [{ reportHtml }, { reportMarkdown }] = await Promise.all([import('../report/html.js'), import('../report/markdown.js')]);
  await writeFile(join(ctx.outDir, 'report.html'), reportHtml(model));
  await writeFile(join(ctx.outDir, 'report.md'), reportMarkdown(model));
  return {
    meta: {
      html: 'report.html',
      markdown: 'report.md',
      loras: model.loras.length,
      renders: model.renders.length,
      cells: model.renders.reduce((n, r) => n + r.cells.length, 0),
      validations: model.validations.length,
    },
  };
}

export const stage: StageImpl = {
  kind: 'report',
  version: 4,
  // the out/ root, so out/report.html's relative links reach loras/ and renders/
  materializeTo: () => '',
  inputs,
  run,
};
