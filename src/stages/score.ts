// score:RENDER — measures what the LoRA does, with CLIP as ONNX in-process: per cell CLIP-T (cosine of
// the image and its prompt) and CLIP-I (mean cosine of the image and every training image), per arm
// (grid column) the means, and the LoRA's effect as each arm minus the strength-0 arm.
// Embeddings are cached per image and per prompt (ctx.item), keyed by the model files' hashes, so
// adding a seed embeds only the new cells and the training images are embedded once per model.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { displayPath } from '../config/paths.js';
import { trainedLoraNames } from '../config/render-loras.js';
import type { Manifest } from '../datasets/manifest.js';
import type { Json, StageContext, StageImpl } from '../engine/types.js';
import { findModelDir } from '../onnx/find-model.js';
import { scoreCells, type CellEmbedding, type ScoreSummary } from '../onnx/score.js';
import { findTokenizerFiles, loadClipTokenizer } from '../text/load.js';
import { resolveClipTokenizer } from '../text/resolve.js';
import type { Tokenizer } from '../text/tokenizer.js';

const CLIP_FILES = [['text_model.onnx', 'onnx/text_model.onnx'], ['vision_model.onnx', 'onnx/vision_model.onnx']];

interface RenderCells {
  columns: { label: string; strength: number }[];
  rows: { prompt: string }[];
  cells: { row: number; col: number; file: string; sha256: string; strength: number }[];
}

function renderOf(ctx: StageContext) {
  const spec = ctx.config.renders[ctx.node.target];
  if (!spec?.score) throw new Error(`${ctx.node.id}: render '${ctx.node.target}' has no score: setting`);
  // CLIP-I compares with the training images of the render's (first) trained LoRA
  const lora = ctx.config.loras[trainedLoraNames(spec)[0] ?? ''];
  if (!lora) throw new Error(`${ctx.node.id}: render '${ctx.node.target}' applies no trained LoRA, so there are no training images to compare with`);
  return { spec, score: spec.score, dataset: lora.dataset };
}

/** The CLIP BPE for the text tower: the export's own files, else the one SD uses (same vocabulary). */
async function clipTokenizer(ctx: StageContext, modelDir: string): Promise<Tokenizer> {
  const own = findTokenizerFiles(modelDir);
  return own ? loadClipTokenizer(own, ctx.cacheDir) : resolveClipTokenizer(ctx.config, undefined, process.env, ctx.cacheDir);
}

function toArray(v: Float32Array): number[] {
  return Array.from(v, (x) => Number(x.toFixed(7)));
}

export const stage: StageImpl = {
  kind: 'score',
  version: 1,
  materializeTo: (node) => `renders/${node.target}/scores`,

  async inputs(ctx) {
    const { score } = renderOf(ctx);
    const dir = await findModelDir(score.clip, CLIP_FILES, ctx.root);
    const files: Record<string, string> = {};
    for (const alts of CLIP_FILES) {
      const abs = alts.map((f) => join(dir, f)).find((f) => existsSync(f))!; // findModelDir checked they exist
      files[displayPath(ctx.config, abs)] = await ctx.hashFile(abs);
    }
    const tokenizer = await clipTokenizer(ctx, dir);
    return { params: { clip: score.clip, tokenizer: tokenizer.id }, files };
  },

  async run(ctx, inputs) {
    const { spec, dataset } = renderOf(ctx);
    const dir = await findModelDir(spec.score!.clip, CLIP_FILES, ctx.root);
    const modelKey = Object.values(inputs.files).sort().join(':');
    const { ClipScorer } = await import('../onnx/clip.js'); // onnxruntime loads only when scoring runs
    const scorer = await ClipScorer.load(dir);
    const tokenizer = await clipTokenizer(ctx, dir);

    const render = JSON.parse(await readFile(ctx.upstreamPath(`render:${ctx.node.target}`, 'cells.json'), 'utf8')) as RenderCells;
    const manifest = ctx.readJson(`prepare:${dataset}`, 'manifest.json') as unknown as Manifest;
    const trainingShas = [...new Set(manifest.items.filter((i) => i.image && !i.error).map((i) => i.image!.sha256))];

    const imageEmbedding = (sha: string, label: string) =>
      ctx.item(`clip-image ${label}`, { model: modelKey, image: sha, v: 1 }, async () => toArray((await scorer.embedImages([ctx.blobPath(sha)]))[0]));
    const promptEmbedding = (prompt: string) => {
      const ids = tokenizer.encodePadded(prompt).ids;
      return ctx.item(`clip-text ${prompt.slice(0, 40)}`, { model: modelKey, ids, v: 1 }, async () => toArray((await scorer.embedTexts([ids]))[0]));
    };

    const total = trainingShas.length + render.cells.length;
    let done = 0;
    const training: number[][] = [];
    for (const sha of trainingShas) {
      training.push(await imageEmbedding(sha, `train ${sha.slice(0, 12)}`));
      ctx.progress(++done, total, 'embedding training images');
    }
    const prompts = new Map<number, number[]>();
    const cells: CellEmbedding[] = [];
    for (const cell of render.cells) {
      if (!prompts.has(cell.row)) prompts.set(cell.row, await promptEmbedding(render.rows[cell.row].prompt));
      cells.push({
        cell: cell.file,
        arm: render.columns[cell.col].label,
        strength: cell.strength,
        image: await imageEmbedding(cell.sha256, cell.file),
        prompt: prompts.get(cell.row)!,
      });
      ctx.progress(++done, total, 'embedding cells');
    }
    const summary: ScoreSummary = scoreCells(cells, training);
    const round = (x: number) => Number(x.toFixed(4));
    await writeFile(join(ctx.outDir, 'scores.json'), `${JSON.stringify({ render: ctx.node.target, model: spec.score!.clip, training_images: training.length, ...summary }, null, 2)}\n`);
    const md = [
      `# Scores: ${ctx.node.target}`,
      '',
      `CLIP model: \`${spec.score!.clip}\`; CLIP-I against ${training.length} training images.`,
      '',
      '| arm | cells | CLIP-T | CLIP-I |',
      '|---|---:|---:|---:|',
      ...summary.arms.map((a) => `| ${a.arm} | ${a.cells} | ${round(a.clipT)} | ${round(a.clipI)} |`),
      '',
      ...summary.effect.map((e) => `LoRA effect (${e.arm} − strength 0): CLIP-T ${e.clipT >= 0 ? '+' : ''}${round(e.clipT)}, CLIP-I ${e.clipI >= 0 ? '+' : ''}${round(e.clipI)}`),
      '',
    ].join('\n');
    await writeFile(join(ctx.outDir, 'scores.md'), md);
    return {
      meta: {
        render: ctx.node.target,
        arms: summary.arms.map((a) => ({ arm: a.arm, strength: a.strength, cells: a.cells, clip_t: round(a.clipT), clip_i: round(a.clipI) })),
        effect: summary.effect.map((e) => ({ arm: e.arm, clip_t: round(e.clipT), clip_i: round(e.clipI) })),
      } as Json,
    };
  },
};
