// render:NAME — an A/B sample grid: rows = prompts × seeds, columns = LoRA strengths and/or training
// checkpoints. The render applies an ordered list of LoRAs (files, or LoRAs this lorafile trains; see
// loras/render-stack.ts) on its base model, each at strengths × its strength_model / strength_clip.
// Every cell is cached on its own (ctx.item) under a key of exactly what decides its pixels, so adding
// a seed renders only the new cells and re-training a LoRA re-renders only the cells that use it. A
// strength-0 cell ("without") applies no LoRA and its key names only the base model and sampling, so
// every render on the same base shares it.
// Cells still to render go to the worker as one `sample` request (it batches cells that share weights).
// Sampling follows ComfyUI's KSampler (sampler + scheduler + denoise) and prompts are weighted and
// chunked as its CLIPTextEncode does (text/prompt.ts), so a cell is the picture the lab's ComfyUI shows.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { locatorOf } from '../config/lazy.js';
import type { Diagnostic } from '../config/diagnostic.js';
import { displayPath, resolveUserPath } from '../config/paths.js';
import { resolveSampling, type Sampling } from '../config/sampling.js';
import { checkpointLora, renderModelName, trainedLoraNames } from '../config/render-loras.js';
import type { Config, LoraSpec, RenderSpec } from '../config/schema.js';
import type { Json, OutputFile, StageContext, StageImpl, StageInputs, StageResult } from '../engine/types.js';
import { chunkWeights, encodePrompt, type EncodedPrompt } from '../text/prompt.js';
import { resolveTokenizer } from '../text/resolve.js';
import type { HelloResult } from '../worker/client.js';
import { workerHello } from '../worker/start.js';
import { RenderLoras, renderLoraInputs, type AppliedLora } from '../loras/render-stack.js';
import { trainedLoraFile } from '../loras/source.js';
import { modelFacts, resolveModel, workerScratch, type ResolvedModel } from './model.js';
import { crossCheckRender } from './render-check.js';

/** Bump when the worker's sampling changes the pixels of a cell with the same settings. */
const SAMPLING_VERSION = 'comfy-ksampler-1';

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

/**
 * The PNG "parameters" text in A1111's layout (A1111 PNG info, ComfyUI and Civitai read it), with the
 * sampler and scheduler named as ComfyUI names them.
 */
export function a1111Parameters(p: {
  prompt: string;
  negative: string;
  steps: number;
  sampler: string;
  scheduler: string;
  denoise?: number;
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
    `Sampler: ${p.sampler}`,
    `Scheduler: ${p.scheduler}`,
    `CFG scale: ${p.cfg}`,
    `Seed: ${p.seed}`,
    `Size: ${p.width}x${p.height}`,
    ...(p.denoise !== undefined && p.denoise < 1 ? [`Denoising strength: ${p.denoise}`] : []),
    `Model hash: ${p.modelSha.slice(0, 10)}`,
    `Model: ${p.modelName}`,
    ...(p.loras.length ? [`Lora hashes: "${p.loras.map((l) => `${l.label}: ${l.sha256.slice(0, 12)}`).join(', ')}"`] : []),
    `Version: lorabuild worker ${p.workerVersion}`,
  ];
  return `${prompt}\nNegative prompt: ${p.negative}\n${fields.join(', ')}`;
}

/** Notes on a render's settings: an old sampler name, and prompts that name textual-inversion embeddings. */
export function settingNotes(config: Config, renderName: string, spec: RenderSpec, sampling: Sampling): Diagnostic[] {
  const notes: Diagnostic[] = [];
  const at = (path: (string | number)[]) => {
    const pos = locatorOf(config)?.value(['renders', renderName, ...path]);
    return pos ? { line: pos.line, col: pos.col, endCol: pos.endCol } : {};
  };
  if (sampling.legacy) {
    notes.push({
      severity: 'info',
      code: 'sampler-name',
      message: `sampler '${sampling.legacy.name}' is the old name of ${sampling.legacy.instead} (ComfyUI's names)`,
      hint: `write ${sampling.legacy.instead}; the pictures are the same`,
      file: config.file,
      ...at(['sampler']),
      item: 'sampler',
    });
  }
  const prompts: [string, (string | number)[], string][] = spec.prompts.map((p, i) => [p, ['prompts', i], `prompt ${i + 1}`]);
  prompts.push([spec.negative_prompt, ['negative_prompt'], 'negative_prompt']);
  for (const [text, path, item] of prompts) {
    const name = /(?:^|[\s,(])embedding:([^\s,()]+)/.exec(text)?.[1];
    if (!name) continue;
    notes.push({
      severity: 'warning',
      code: 'prompt_embedding',
      message: `${item} of render '${renderName}' names the textual-inversion embedding '${name}'; lorabuild does not load embeddings, so "embedding:${name}" is read as plain words`,
      hint: 'ComfyUI inserts the embedding file here: the picture will differ from ComfyUI\'s; remove it from the prompt for a like-for-like comparison',
      file: config.file,
      ...at(path),
      item,
    });
  }
  return notes;
}

interface Prepared {
  spec: RenderSpec;
  sampling: Sampling;
  modelName: string;
  /** the trained LoRA whose checkpoints the columns may walk, and its spec */
  trained: { name: string; spec: LoraSpec } | null;
  clipSkip: number;
  hello: HelloResult;
  width: number;
  height: number;
  /** absolute path and display path of the img2img image */
  initImage: { abs: string; display: string } | null;
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
  const sampling = resolveSampling(spec.sampler, spec.scheduler);
  const initImage = spec.init_image === undefined ? null : initImageOf(ctx.config, spec.init_image);
  return { spec, sampling, modelName, trained, clipSkip: trained?.spec.clip_skip ?? 1, hello, width: spec.width ?? size, height: spec.height ?? size, initImage };
}

function initImageOf(config: Config, raw: string): { abs: string; display: string } {
  const abs = resolveUserPath(config, raw);
  return { abs, display: displayPath(config, abs) };
}

async function hashInitImage(ctx: StageContext, image: { abs: string; display: string }): Promise<string> {
  try {
    return await ctx.hashFile(image.abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const pos = locatorOf(ctx.config)?.value(['renders', ctx.node.target, 'init_image']);
    const where = pos ? `${ctx.config.file}:${pos.line}:${pos.col}` : ctx.config.file;
    throw new Error(`${where}: init_image of render '${ctx.node.target}' cannot be read: ${image.abs} (${code ?? String(err)})\n  hint: give the path of an image file, relative to the lorafile`);
  }
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
    sampler: p.sampling.sampler,
    scheduler: p.sampling.scheduler,
    steps: spec.steps,
    cfg: spec.cfg,
    denoise: spec.denoise,
    init_image: p.initImage?.display ?? null,
    width: p.width,
    height: p.height,
    clip_skip: p.clipSkip,
    worker_version: p.hello.worker_version,
    ...(spec.portable ? { portable: true } : { torch: p.hello.torch, device: deviceClass(p.hello) }),
  };
  const files: Record<string, string> = { ...loras.files, ...(p.initImage ? { [p.initImage.display]: await hashInitImage(ctx, p.initImage) } : {}) };
  return { params, files };
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
  cond: EncodedPrompt;
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

async function run(ctx: StageContext, inputs: StageInputs): Promise<StageResult> {
  const p = await prepare(ctx);
  const { spec, trained, hello, sampling } = p;
  const facts = await modelFacts(ctx, p.modelName, { workerVersion: hello.worker_version, device: hello.device });
  const model: ResolvedModel = await resolveModel(ctx, p.modelName, hello.device);
  const tokenizer = await resolveTokenizer(ctx.config, p.modelName, { model: facts });

  const diagnostics: Diagnostic[] = settingNotes(ctx.config, ctx.node.target, spec, sampling);

  const available = trained ? checkpointSteps(trained.name, ctx.upstream(`train:${trained.name}`).files) : [];
  const columns = planColumns(spec, trained?.spec ?? null, available);
  const rows = planRows(spec);
  const walked = columns.some((c) => c.step !== null) ? trained!.name : null;
  const loras = await RenderLoras.resolve(ctx, ctx.node.target, spec, { name: p.modelName, arch: model.arch }, columns.map((c) => c.step), walked);
  diagnostics.push(...loras.diagnostics);
  for (const d of diagnostics) ctx.emit({ item: d.item, diagnostics: [d as unknown as Json] });

  const uncond = encodePrompt(tokenizer, spec.negative_prompt);
  const initImageSha = p.initImage ? inputs.files[p.initImage.display] : null;
  const prompts = new Map(spec.prompts.map((prompt) => [prompt, encodePrompt(tokenizer, prompt)]));
  const cells: CellPlan[] = [];
  rows.forEach((row, r) => {
    const cond = prompts.get(row.prompt)!;
    columns.forEach((column, c) => {
      const applied = loras.stack(column);
      const parameters = a1111Parameters({
        prompt: row.prompt,
        negative: spec.negative_prompt,
        steps: spec.steps,
        sampler: sampling.sampler,
        scheduler: sampling.scheduler,
        denoise: spec.denoise,
        cfg: spec.cfg,
        seed: row.seed,
        width: p.width,
        height: p.height,
        modelSha: model.sha256,
        modelName: p.modelName,
        loras: applied,
        workerVersion: hello.worker_version,
      });
      const key: Json = {
        model: model.sha256,
        // the "without" arm applies nothing: its key is the same for every render on this base
        loras: loras.cellKey(applied),
        cond: cond.chunks.map((c) => c.ids),
        cond_weights: chunkWeights(cond),
        uncond: uncond.chunks.map((c) => c.ids),
        uncond_weights: chunkWeights(uncond),
        seed: row.seed,
        sampling: SAMPLING_VERSION,
        sampler: sampling.sampler,
        scheduler: sampling.scheduler,
        steps: spec.steps,
        cfg: spec.cfg,
        denoise: spec.denoise,
        init_image: initImageSha,
        width: p.width,
        height: p.height,
        clip_skip: p.clipSkip,
        worker: hello.worker_version,
        torch: hello.torch,
        device: deviceClass(hello),
        // the PNG carries the prompt as written: "(cat:1.0)" and "cat" are the same pixels, not the same file
        png_parameters: parameters,
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
        cond,
        parameters,
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
        empty_ids: tokenizer.encodePadded('').ids,
        lora_files: loras.workerFiles(missing.map((cell) => cell.loras)),
        cells: missing.map((cell, i) => ({
          cond_ids: cell.cond.chunks.map((c) => c.ids),
          cond_weights: chunkWeights(cell.cond),
          uncond_ids: uncond.chunks.map((c) => c.ids),
          uncond_weights: chunkWeights(uncond),
          seed: cell.seed,
          width: p.width,
          height: p.height,
          sampler: sampling.sampler,
          scheduler: sampling.scheduler,
          steps: spec.steps,
          cfg: spec.cfg,
          denoise: spec.denoise,
          ...(p.initImage ? { init_image: p.initImage.abs } : {}),
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
    sampler: sampling.sampler,
    scheduler: sampling.scheduler,
    steps: spec.steps,
    cfg: spec.cfg,
    denoise: spec.denoise,
    init_image: p.initImage?.display ?? null,
    width: p.width,
    height: p.height,
    negative_prompt: spec.negative_prompt,
    columns: columns.map(({ label, strength, step }) => ({ label, strength, step })),
    rows: rows.map(({ prompt, promptIndex, seed }) => {
      const encoded = prompts.get(prompt)!;
      return { prompt, prompt_index: promptIndex, seed, tokens: encoded.tokens.length, chunks: encoded.chunks.length };
    }),
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
  crossCheck: crossCheckRender,
};
