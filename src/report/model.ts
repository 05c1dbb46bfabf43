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

export interface ReportRender {
  name: string;
  lora: string;
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
