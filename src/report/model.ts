// What the report shows, gathered from the stage outputs (stages/report.ts) and written as HTML
// (report/html.ts) and Markdown (report/markdown.ts). Paths are relative to the out/ folder.
import type { Json } from '../engine/types.js';

export interface ReportImage {
  /** link relative to out/ (where the stage materializes the file) */
  href: string;
  /** data: URI when the image is inlined; null = use href */
  dataUri: string | null;
  width: number;
  height: number;
}

export interface ReportCell {
  row: number;
  col: number;
  image: ReportImage;
  strength: number;
  step: number | null;
  parameters: string;
}

/** One LoRA a render applies, as its cells.json lists it. */
export interface ReportRenderLora {
  label: string;
  /** the file as written (file: entries), the file in the repo (hub: entries) or the lora entry (trained ones) */
  file?: string;
  hub?: string;
  /** hub entries: the commit the file is pinned to */
  commit?: string | null;
  lora?: string;
  sha256: string;
  family: string;
  kinds: string[];
  ranks: number[];
  alphas: number[];
  strength_model: number;
  strength_clip: number;
  triggers: string[];
}

export interface ReportRender {
  name: string;
  /** the trained LoRA the render belongs to in the report ('' when it applies only files) */
  lora: string;
  loras: ReportRenderLora[];
  model: string;
  /** what the base model is, for lorabuild's builtin models: what the strength-0 column shows */
  modelNote?: string;
  settings: Record<string, Json>;
  columns: { label: string; strength: number; step: number | null }[];
  rows: { prompt: string; seed: number }[];
  cells: ReportCell[];
  grid: ReportImage;
  warnings: string[];
  /** CLIP scores from score:NAME, when the render sets `score:` */
  scores?: ReportScores;
}

export interface ReportScores {
  model: string;
  arms: { arm: string; cells: number; clipT: number; clipI: number }[];
  /** each LoRA arm minus the strength-0 arm */
  effect: { arm: string; clipT: number; clipI: number }[];
}

export interface ReportLora {
  name: string;
  params: Record<string, Json>;
  /** [step, loss] */
  loss: [number, number][];
  files: { name: string; href: string; size: number }[];
  meta: Record<string, Json>;
  /** training settings that were slow or could not take effect (e.g. compile without torch.compile) */
  warnings?: string[];
}

export interface ReportValidation {
  dataset: string;
  errors: number;
  warnings: number;
  /** the first diagnostics, as one-line messages */
  messages: { severity: string; text: string }[];
  meta: Record<string, Json>;
  /** link to the Markdown report of the dataset, when materialized */
  href: string | null;
}

export interface ReportModel {
  title: string;
  lorafile: string;
  loras: ReportLora[];
  renders: ReportRender[];
  validations: ReportValidation[];
  /** stages the report depends on that produced nothing (failed or skipped upstream) */
  missing: string[];
}

/** The columns a render's LoRA list shows, in both report formats. */
export const LORA_COLUMNS = ['LoRA', 'family', 'rank', 'alpha', 'strength_model', 'strength_clip', 'trigger words'] as const;

export function loraRow(l: ReportRenderLora): string[] {
  const list = (xs: number[]) => (xs.length ? xs.join(', ') : '—');
  const name = l.hub ? `${l.hub}/${l.file}${l.commit ? ` @ ${l.commit.slice(0, 10)}` : ''}` : (l.file ?? `${l.lora} (trained here)`);
  return [name, `${l.family} ${l.kinds.join('+') || 'LoRA'}`, list(l.ranks), l.alphas.length ? list(l.alphas) : 'none (scale 1)', String(l.strength_model), String(l.strength_clip), l.triggers.join(', ') || '—'];
}

/** "LoRAs a, b on dreamshaper8" for a render heading. */
export function renderSubtitle(render: ReportRender): string {
  const names = render.loras.length ? render.loras.map((l) => l.label).join(' + ') : render.lora;
  return `${render.loras.length > 1 ? 'LoRAs' : 'LoRA'} ${names} on ${render.model}; ${render.rows.length} rows × ${render.columns.length} columns`;
}
