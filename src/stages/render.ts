// render:NAME — an A/B sample grid: rows = prompts × seeds, columns = LoRA strengths and/or training
// checkpoints. The render applies an ordered list of LoRAs (files, or LoRAs this lorafile trains; see
// loras/render-stack.ts) on its base model, each at strengths × its strength_model / strength_clip.
// Every cell is cached on its own (ctx.item) under a key of exactly what decides its pixels, so adding
// a seed renders only the new cells and re-training a LoRA re-renders only the cells that use it. A
// strength-0 cell ("without") applies no LoRA and its key names only the base model and sampling, so
// every render on the same base shares it.
// Cells still to render go to the worker as one `sample` request (it batches cells that share weights).
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { locatorOf } from '../config/load.js';
import type { Diagnostic } from '../config/diagnostic.js';
import { checkpointLora, renderModelName, trainedLoraNames } from '../config/render-loras.js';
import type { Config, LoraSpec, RenderSpec } from '../config/schema.js';
import type { Json, OutputFile, StageContext, StageImpl, StageInputs, StageResult } from '../engine/types.js';
import { resolveTokenizer } from '../text/resolve.js';
import type { Tokenizer } from '../text/tokenizer.js';
import type { HelloResult } from '../worker/client.js';
import { workerHello } from '../worker/start.js';
import { RenderLoras, renderLoraInputs, type AppliedLora } from '../loras/render-stack.js';
import { trainedLoraFile } from '../loras/source.js';
import { modelFacts, resolveModel, workerScratch, type ResolvedModel } from './model.js';

const SAMPLER_NAMES: Record<RenderSpec['sampler'], string> = {
  euler: 'Euler',
  euler_a: 'Euler a',
  ddim: 'DDIM',
  dpmpp_2m_karras: 'DPM++ 2M Karras',
};

/** One grid column: a LoRA strength, at the final LoRA (step null) or at a training checkpoint. */
export interface Column {
  strength: number;
  /** training step of the checkpoint used; null = the final LoRA */
  step: number | null;
  label: string;
  slug: string;
}

export interface Row {
  prompt: string;
  /** 1-based position in `prompts:` */
  promptIndex: number;
  seed: number;
}

const padStep = (step: number) => String(step).padStart(5, '0');

/**
 * Columns per `columns:`. Strength 0 does not depend on the checkpoint, so it appears once, first.
 * `lora`: the trained LoRA whose checkpoints a checkpoint axis walks (null when the render has none).
 */
export function planColumns(spec: RenderSpec, lora: Pick<LoraSpec, 'steps'> | null, available: number[]): Column[] {
  const strengths = [...new Set(spec.strengths)];
  const withStrength = (strength: number, step: number | null): Column => {
    const s = `strength ${strength}`;
    if (strength === 0) return { strength, step: null, label: 'strength 0 (no LoRA)', slug: 's0' };
    if (step === null) return { strength, step, label: s, slug: `s${strength}` };
    return { strength, step, label: `step ${step} · ${s}`, slug: `step${padStep(step)}-s${strength}` };
  };
  if (spec.columns === 'strength' || !lora) return strengths.map((s) => withStrength(s, null));

  const steps = [...new Set(spec.checkpoints ?? [...available, lora.steps])].sort((a, b) => a - b);
  const columns: Column[] = strengths.includes(0) ? [withStrength(0, null)] : [];
  const nonZero = strengths.filter((s) => s !== 0);
  const used = spec.columns === 'checkpoint' ? nonZero.slice(0, 1) : nonZero;
  if (used.length === 0) used.push(1);
  for (const step of steps) for (const s of used) columns.push(withStrength(s, step));
  return columns;
}

export function planRows(spec: RenderSpec): Row[] {
  const seeds = [...new Set(spec.seeds)];
  return spec.prompts.flatMap((prompt, i) => seeds.map((seed) => ({ prompt, promptIndex: i + 1, seed })));
}

/** The train output that holds the LoRA of a column: `<lora>.safetensors` or `<lora>-stepNNNNN.safetensors`. */
export function loraFileFor(loraName: string, lora: LoraSpec, column: Column): string {
  return trainedLoraFile(loraName, lora, column.step);
}

/** A1111's "parameters" text, so other tools (A1111 PNG info, ComfyUI, Civitai) show how a cell was made. */
export function a1111Parameters(p: {
  prompt: string;
  negative: string;
  steps: number;
  sampler: RenderSpec['sampler'];
  cfg: number;
  seed: number;
  width: number;
  height: number;
  modelSha: string;
  modelName: string;
  /** the LoRAs the cell applies, in order ([] = none) */
  loras: Pick<AppliedLora, 'label' | 'sha256' | 'strength_model' | 'strength_clip'>[];
  workerVersion: string;
}): string {
  // A1111's tag is <lora:name:te:unet>, one multiplier when both are the same
  const tag = (l: (typeof p.loras)[number]) => `<lora:${l.label}:${l.strength_clip === l.strength_model ? l.strength_model : `${l.strength_clip}:${l.strength_model}`}>`;
  const prompt = p.loras.length ? `${p.prompt} ${p.loras.map(tag).join(' ')}` : p.prompt;
  const fields = [
    `Steps: ${p.steps}`,
    `Sampler: ${SAMPLER_NAMES[p.sampler]}`,
    `CFG scale: ${p.cfg}`,
    `Seed: ${p.seed}`,
    `Size: ${p.width}x${p.height}`,
    `Model hash: ${p.modelSha.slice(0, 10)}`,
    `Model: ${p.modelName}`,
    ...(p.loras.length ? [`Lora hashes: "${p.loras.map((l) => `${l.label}: ${l.sha256.slice(0, 12)}`).join(', ')}"`] : []),
    `Version: lorabuild worker ${p.workerVersion}`,
  ];
  return `${prompt}\nNegative prompt: ${p.negative}\n${fields.join(', ')}`;
}

/** A prompt longer than the text encoder's window: a warning that names the words that are cut. */
export function truncationWarning(config: Config, renderName: string, index: number, prompt: string, tokenizer: Tokenizer): Diagnostic | null {
  const encoded = tokenizer.encode(prompt);
  const room = tokenizer.contextLength - 2;
  if (encoded.ids.length <= room) return null;
  const cutFrom = encoded.spans[room][0];
  const cut = prompt.slice(cutFrom).trim();
  const pos = locatorOf(config)?.value(['renders', renderName, 'prompts', index]);
  return {
    severity: 'warning',
    code: 'prompt_too_long',
    message: `prompt ${index + 1} of render '${renderName}' has ${encoded.ids.length} tokens but the text encoder sees ${room}; cut: "${cut}"`,
    hint: 'shorten the prompt or move the important words to the front',
    file: config.file,
    ...(pos ? { line: pos.line, col: pos.col, endCol: pos.endCol } : {}),
    item: `prompt ${index + 1}`,
  };
}

interface Prepared {
  spec: RenderSpec;
  modelName: string;
  /** the trained LoRA whose checkpoints the columns may walk, and its spec */
  trained: { name: string; spec: LoraSpec } | null;
  clipSkip: number;
  hello: HelloResult;
  width: number;
  height: number;
}

async function prepare(ctx: StageContext): Promise<Prepared> {
  const spec = ctx.config.renders[ctx.node.target];
  if (!spec) throw new Error(`render '${ctx.node.target}' is not in the lorafile`);
  const modelName = renderModelName(ctx.config, spec);
  if (!modelName) throw new Error(`render '${ctx.node.target}' names no model: add 'model:'`);
  const walked = checkpointLora(spec) ?? trainedLoraNames(spec)[0];
  const trained = walked && ctx.config.loras[walked] ? { name: walked, spec: ctx.config.loras[walked] } : null;
  // without a trained LoRA to take it from: the model's native size (the tiny builtin renders at 64 px)
  const size = trained?.spec.resolution ?? (ctx.config.models[modelName]?.builtin === 'tiny' ? 64 : 512);
  const hello = await workerHello(ctx);
  return { spec, modelName, trained, clipSkip: trained?.spec.clip_skip ?? 1, hello, width: spec.width ?? size, height: spec.height ?? size };
}

function deviceClass(hello: HelloResult): string {
  return hello.device === 'cuda' ? `cuda:${hello.gpu_name ?? 'gpu'}` : 'cpu';
}

async function inputs(ctx: StageContext): Promise<StageInputs> {
  const p = await prepare(ctx);
  const { spec } = p;
  const loras = await renderLoraInputs(ctx, spec);
  const facts = await modelFacts(ctx, p.modelName, { workerVersion: p.hello.worker_version, device: p.hello.device });
  const params: Record<string, Json> = {
    ...loras.params,
    model: facts.identity,
    ...(facts.pin !== undefined ? { model_hub: facts.pin } : {}),
    prompts: spec.prompts,
    negative_prompt: spec.negative_prompt,
    seeds: spec.seeds,
    strengths: spec.strengths,
    checkpoints: spec.checkpoints ?? null,
    columns: spec.columns,
    sampler: spec.sampler,
    steps: spec.steps,
    cfg: spec.cfg,
    width: p.width,
    height: p.height,
    clip_skip: p.clipSkip,
    worker_version: p.hello.worker_version,
    ...(spec.portable ? { portable: true } : { torch: p.hello.torch, device: deviceClass(p.hello) }),
  };
  return { params, files: loras.files };
}

interface CellPlan {
  row: number;
  col: number;
  label: string;
  file: string;
  key: Json;
  loras: AppliedLora[];
  strength: number;
  parameters: string;
  condIds: number[];
  uncondIds: number[];
  seed: number;
}

interface CellResult extends Record<string, Json> {
  sha256: string;
  size: number;
}

/**
 * Runs ctx.item for every cell at once; the cells whose memo misses are collected and rendered in
 * one worker request once every cell has either hit the memo or asked to be computed. This relies
 * on ctx.item starting the computes of concurrent calls without waiting for one another.
 */
async function renderCells(ctx: StageContext, cells: CellPlan[], renderMissing: (missing: CellPlan[]) => Promise<Map<CellPlan, CellResult>>): Promise<CellResult[]> {
  const waiting: { cell: CellPlan; resolve: (r: CellResult) => void; reject: (e: unknown) => void }[] = [];
  let unsettled = cells.length;
  let allArrived!: () => void;
  const arrived = new Promise<void>((resolve) => (allArrived = resolve));
  const settle = () => {
    if (--unsettled === 0) allArrived();
  };
  if (cells.length === 0) allArrived();
  const entered = new Set<CellPlan>();
  const results = cells.map((cell) =>
    ctx
      .item<CellResult>(cell.label, cell.key, () => {
        entered.add(cell);
        const promise = new Promise<CellResult>((resolve, reject) => waiting.push({ cell, resolve, reject }));
        settle();
        return promise;
      })
      .finally(() => {
        if (!entered.has(cell)) settle();
      }),
  );
  // a rejected item must not leave an unhandled rejection while we wait for the others
  results.forEach((r) => r.catch(() => undefined));
  await arrived;
  if (waiting.length > 0) {
    try {
      const rendered = await renderMissing(waiting.map((w) => w.cell));
      for (const w of waiting) w.resolve(rendered.get(w.cell)!);
    } catch (err) {
      for (const w of waiting) w.reject(err);
    }
  }
  return Promise.all(results);
}

async function run(ctx: StageContext): Promise<StageResult> {
  const p = await prepare(ctx);
  const { spec, trained, hello } = p;
  const facts = await modelFacts(ctx, p.modelName, { workerVersion: hello.worker_version, device: hello.device });
  const model: ResolvedModel = await resolveModel(ctx, p.modelName, hello.device);
  const tokenizer = await resolveTokenizer(ctx.config, p.modelName, { model: facts });

  const diagnostics: Diagnostic[] = [];
  spec.prompts.forEach((prompt, i) => {
    const d = truncationWarning(ctx.config, ctx.node.target, i, prompt, tokenizer);
    if (d) diagnostics.push(d);
  });
  if (spec.negative_prompt) {
    const neg = tokenizer.encode(spec.negative_prompt);
    if (neg.ids.length > tokenizer.contextLength - 2) {
      const negPos = locatorOf(ctx.config)?.value(['renders', ctx.node.target, 'negative_prompt']);
      diagnostics.push({
        severity: 'warning',
        code: 'prompt_too_long',
        message: `the negative prompt of render '${ctx.node.target}' has ${neg.ids.length} tokens but the text encoder sees ${tokenizer.contextLength - 2}; cut: "${spec.negative_prompt.slice(neg.spans[tokenizer.contextLength - 2][0]).trim()}"`,
        hint: 'shorten the negative prompt',
        file: ctx.config.file,
        ...(negPos ? { line: negPos.line, col: negPos.col, endCol: negPos.endCol } : {}),
        item: 'negative_prompt',
      });
    }
  }

  const available = trained ? checkpointSteps(trained.name, ctx.upstream(`train:${trained.name}`).files) : [];
  const columns = planColumns(spec, trained?.spec ?? null, available);
  const rows = planRows(spec);
  const walked = columns.some((c) => c.step !== null) ? trained!.name : null;
  const loras = await RenderLoras.resolve(ctx, ctx.node.target, spec, { name: p.modelName, arch: model.arch }, columns.map((c) => c.step), walked);
  diagnostics.push(...loras.diagnostics);
  for (const d of diagnostics) ctx.emit({ item: d.item, diagnostics: [d as unknown as Json] });

  const uncondIds = tokenizer.encodePadded(spec.negative_prompt).ids;
  const cells: CellPlan[] = [];
  rows.forEach((row, r) => {
    const condIds = tokenizer.encodePadded(row.prompt).ids;
    columns.forEach((column, c) => {
      const applied = loras.stack(column);
      const key: Json = {
        model: model.sha256,
        // the "without" arm applies nothing: its key is the same for every render on this base
        loras: loras.cellKey(applied),
        cond: condIds,
        uncond: uncondIds,
        seed: row.seed,
        sampler: spec.sampler,
        steps: spec.steps,
        cfg: spec.cfg,
        width: p.width,
        height: p.height,
        clip_skip: p.clipSkip,
        worker: hello.worker_version,
        torch: hello.torch,
        device: deviceClass(hello),
      };
      const file = `cells/p${row.promptIndex}-seed${row.seed}-${column.slug}.png`;
      cells.push({
        row: r,
        col: c,
        label: `p${row.promptIndex} seed ${row.seed} · ${column.label}`,
        file,
        key,
        loras: applied,
        strength: column.strength,
        seed: row.seed,
        condIds,
        uncondIds,
        parameters: a1111Parameters({
          prompt: row.prompt,
          negative: spec.negative_prompt,
          steps: spec.steps,
          sampler: spec.sampler,
          cfg: spec.cfg,
          seed: row.seed,
          width: p.width,
          height: p.height,
          modelSha: model.sha256,
          modelName: p.modelName,
          loras: applied,
          workerVersion: hello.worker_version,
        }),
      });
    });
  });

  const modelSpec = ctx.config.models[p.modelName];
  const results = await renderCells(ctx, cells, async (missing) => {
    const scratch = await workerScratch(ctx, 'render');
    try {
      const worker = await ctx.worker();
      const args: Record<string, Json> = {
        model: model.path,
        arch: model.arch,
        allow_pickle: modelSpec?.allow_pickle ?? false,
        clip_skip: p.clipSkip,
        lora_files: loras.workerFiles(missing.map((cell) => cell.loras)),
        cells: missing.map((cell, i) => ({
          cond_ids: cell.condIds,
          uncond_ids: cell.uncondIds,
          seed: cell.seed,
          width: p.width,
          height: p.height,
          sampler: spec.sampler,
          steps: spec.steps,
          cfg: spec.cfg,
          loras: cell.loras.map((l) => ({ file: l.sha256, strength_model: l.strength_model, strength_clip: l.strength_clip })),
          out: join(scratch.dir, `cell-${i}.png`),
          parameters: cell.parameters,
        })),
      };
      await worker.request('sample', args, {
        signal: ctx.signal,
        log: (line) => ctx.log(line),
        onEvent: (event) => {
          if (event.type === 'progress') ctx.progress(event.step, event.total, event.message, 'step');
        },
      });
      const out = new Map<CellPlan, CellResult>();
      for (const [i, cell] of missing.entries()) {
        const blob = await ctx.putBlob({ file: join(scratch.dir, `cell-${i}.png`) });
        out.set(cell, { sha256: blob.sha256, size: blob.size });
      }
      return out;
    } finally {
      await scratch.cleanup();
    }
  });

  cells.forEach((cell, i) => ctx.addOutput(cell.file, results[i]));

  const cellWidth = Math.max(128, Math.min(512, p.width));
  const cellHeight = Math.round((cellWidth * p.height) / p.width);
  const { renderGrid } = await import('../images/grid.js'); // sharp loads only when a render runs
  const grid = await renderGrid({
    columns: columns.map((c) => c.label),
    rows: rows.map((r) => `${r.prompt}\nseed ${r.seed}`),
    cells: rows.map((_, r) => columns.map((_, c) => ctx.blobPath(results[r * columns.length + c].sha256))),
    cellWidth,
    cellHeight,
  });
  await writeFile(join(ctx.outDir, 'grid.png'), grid.png);

  const cellsJson = {
    render: ctx.node.target,
    lora: trained?.name ?? null,
    loras: loras.summary(ctx),
    model: p.modelName,
    model_sha256: model.sha256,
    sampler: spec.sampler,
    steps: spec.steps,
    cfg: spec.cfg,
    width: p.width,
    height: p.height,
    negative_prompt: spec.negative_prompt,
    columns: columns.map(({ label, strength, step }) => ({ label, strength, step })),
    rows: rows.map(({ prompt, promptIndex, seed }) => ({ prompt, prompt_index: promptIndex, seed })),
    cells: cells.map((cell, i) => ({
      row: cell.row,
      col: cell.col,
      file: cell.file,
      sha256: results[i].sha256,
      strength: cell.strength,
      step: columns[cell.col].step,
      loras: cell.loras as unknown as Json,
      parameters: cell.parameters,
    })),
    grid: { file: 'grid.png', width: grid.layout.width, height: grid.layout.height },
    diagnostics: diagnostics as unknown as Json[],
  };
  await writeFile(join(ctx.outDir, 'cells.json'), `${JSON.stringify(cellsJson, null, 2)}\n`);

  return {
    meta: {
      render: ctx.node.target,
      model: p.modelName,
      loras: loras.entries.length,
      cells: cells.length,
      rows: rows.length,
      columns: columns.length,
      grid: 'grid.png',
      warnings: diagnostics.length,
    },
  };
}

/** The training steps a train stage saved checkpoints for (`<name>-stepNNNNN.safetensors`). */
function checkpointSteps(loraName: string, files: Record<string, OutputFile>): number[] {
  return Object.keys(files)
    .map((name) => new RegExp(`^${escapeRegExp(loraName)}-step(\\d+)\\.safetensors$`).exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export const stage: StageImpl = {
  kind: 'render',
  version: 2,
  materializeTo: (node) => `renders/${node.target}`,
  inputs,
  run,
};
