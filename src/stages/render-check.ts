// `lorabuild check` on a render it does not re-run: every cell records the LoRA it was sampled
// with (A1111's "Lora hashes" in its parameters) and cells.json the base model. Those must be the
// LoRA and model the lock records now; otherwise the LoRA (or its hash in the lock) was replaced
// after rendering, and the LoRA file is named.
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { lockPathFor } from '../engine/lockfile.js';
import type { CrossCheckContext, CrossCheckProblem } from '../engine/types.js';

const MAX_CELLS_JSON = 16 * 1024 * 1024;
const LORA_HASHES = /Lora hashes: "([^"]*)"/;

interface Cell {
  lora_file?: unknown;
  parameters?: unknown;
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
  const lora = ctx.entry.params.lora;
  const trainId = `train:${String(lora)}`;
  const trained = ctx.lock.stages[trainId]?.outputs ?? {};
  const reported = new Set<string>();
  for (const cell of Array.isArray(cells.cells) ? (cells.cells as Cell[]) : []) {
    if (typeof cell?.lora_file !== 'string' || typeof cell.parameters !== 'string') continue;
    const hashes = LORA_HASHES.exec(cell.parameters)?.[1] ?? '';
    const used = hashes
      .split(',')
      .map((pair) => pair.split(':').map((part) => part.trim()))
      .find(([name]) => name === lora)?.[1];
    if (used === undefined || reported.has(cell.lora_file)) continue;
    const now = trained[cell.lora_file]?.sha256;
    if (now?.startsWith(used)) continue;
    reported.add(cell.lora_file);
    const loraFile = ctx.verifiedOutput(trainId, cell.lora_file);
    const shown = loraFile ? ctx.display(loraFile) : `${cell.lora_file} of ${trainId}`;
    problems.push({
      message: `${shown} is not the LoRA ${ctx.node.id} was rendered with (its cells used ${used}…, ${lockName} records ${now ? `${now.slice(0, 12)}…` : 'no such file'}): the LoRA or its hash in ${lockName} was changed after rendering`,
      file: shown,
    });
  }
  const model = ctx.entry.params.model;
  if (typeof model === 'string' && model.startsWith('sha256:') && typeof cells.model_sha256 === 'string' && cells.model_sha256 !== model.slice(7)) {
    problems.push({ message: `${ctx.display(file)} was rendered on the base model ${cells.model_sha256.slice(0, 12)}…, but ${lockName} records ${model.slice(7, 19)}…`, file: ctx.display(file) });
  }
  return problems;
}
