// `lorabuild check` on a render it does not re-run: every cell records the LoRAs it was sampled
// with (their sha256) and cells.json the base model. Those must be the
// LoRA and model the lock records now; otherwise the LoRA (or its hash in the lock) was replaced
// after rendering, and the LoRA file is named.
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { lockPathFor } from '../engine/lockfile.js';
import type { CrossCheckContext, CrossCheckProblem } from '../engine/types.js';
import { trainedLoraNames } from '../config/render-loras.js';
import { trainedLoraFile } from '../loras/source.js';

const MAX_CELLS_JSON = 16 * 1024 * 1024;

interface Cell {
  loras?: unknown;
}

export async function crossCheckRender(ctx: CrossCheckContext): Promise<CrossCheckProblem[]> {
  const file = ctx.verifiedOutput(ctx.node.id, 'cells.json');
  if (!file || statSync(file).size > MAX_CELLS_JSON) return [];
  let cells: { cells?: unknown; model_sha256?: unknown };
  try {
    cells = JSON.parse(readFileSync(file, 'utf8')) as typeof cells;
  } catch {
    return [{ message: `${ctx.display(file)} is not valid JSON`, file: ctx.display(file) }];
  }
  const problems: CrossCheckProblem[] = [];
  const lockName = basename(lockPathFor(ctx.config.file));
  const render = ctx.config.renders[ctx.node.target];
  const trained = new Set(render ? trainedLoraNames(render) : []);
  const reported = new Set<string>();
  for (const cell of Array.isArray(cells.cells) ? (cells.cells as Cell[]) : []) {
    for (const applied of Array.isArray(cell?.loras) ? (cell.loras as { label?: unknown; sha256?: unknown }[]) : []) {
      if (typeof applied?.label !== 'string' || typeof applied.sha256 !== 'string') continue;
      // a trained LoRA is labelled NAME, or NAME@STEP for a training checkpoint
      const [name, at] = applied.label.split('@');
      const spec = ctx.config.loras[name];
      if (!trained.has(name) || !spec) continue;
      const loraFile = trainedLoraFile(name, spec, at === undefined ? null : Number(at));
      const trainId = `train:${name}`;
      const now = ctx.lock.stages[trainId]?.outputs?.[loraFile]?.sha256;
      if (now === applied.sha256 || reported.has(`${trainId} ${loraFile}`)) continue;
      reported.add(`${trainId} ${loraFile}`);
      const onDisk = ctx.verifiedOutput(trainId, loraFile);
      const shown = onDisk ? ctx.display(onDisk) : `${loraFile} of ${trainId}`;
      problems.push({
        message: `${shown} is not the LoRA ${ctx.node.id} was rendered with (its cells used ${applied.sha256.slice(0, 12)}…, ${lockName} records ${now ? `${now.slice(0, 12)}…` : 'no such file'}): the LoRA or its hash in ${lockName} was changed after rendering`,
        file: shown,
      });
    }
  }
  const model = ctx.entry.params.model;
  if (typeof model === 'string' && model.startsWith('sha256:') && typeof cells.model_sha256 === 'string' && cells.model_sha256 !== model.slice(7)) {
    problems.push({ message: `${ctx.display(file)} was rendered on the base model ${cells.model_sha256.slice(0, 12)}…, but ${lockName} records ${model.slice(7, 19)}…`, file: ctx.display(file) });
  }
  return problems;
}
