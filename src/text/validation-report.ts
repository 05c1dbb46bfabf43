// The dataset-wide part of validation and the report it produces (validation.json): per-item
// results plus numbering, stray files, duplicates, trigger coverage, token lengths and tags.
import type { Diagnostic } from '../config/diagnostic.js';
import type { Manifest } from '../datasets/manifest.js';
import type { ItemCheck, ValidationSettings } from './check-item.js';
import { checkDuplicates, checkNumbering, checkStray } from './rules/dataset.js';
import { Findings } from './rules/findings.js';
import { isTagStyle, tagCounts } from './rules/tags.js';

/** tags kept in validation.json, most frequent first (validation.md shows fewer) */
export const REPORT_TAGS = 1000;

export interface ValidationReport {
  dataset: string;
  tokenizer: { id: string; reason: string };
  settings: { max_tokens: number; min_size: number; max_aspect: number; trigger: string | null };
  items: number;
  errors: number;
  warnings: number;
  diagnostics: Diagnostic[];
  trigger: { phrase: string; present: number; of: number; missing: string[]; cut: string[] } | null;
  tokens: { max: number; mean: number; over: number; histogram: { range: string; count: number }[] };
  /**
   * like kohya's ss_tag_frequency, the REPORT_TAGS most frequent; null when the captions are not
   * tag lists (100,000 unique captions would make the report, rewritten on every edit, O(dataset))
   */
  tagFrequency: Record<string, number> | null;
  /** how many distinct tags there are (tagFrequency may hold fewer) */
  tagsDistinct: number | null;
}

/** the token histogram's bins: 0-9, 10-19, ... up to the limit, then >limit */
export function histogramRanges(limit: number): string[] {
  const ranges: string[] = [];
  for (let from = 0; from <= limit; from += 10) ranges.push(`${from}-${Math.min(from + 9, limit)}`);
  ranges.push(`>${limit}`);
  return ranges;
}

/** the bin of a caption of `tokens` tokens (histogramRanges) */
export function histogramBin(tokens: number, limit: number, bins: number): number {
  return tokens > limit ? bins - 1 : Math.floor(tokens / 10);
}

function histogram(counts: number[], limit: number): number[] {
  const bins = histogramRanges(limit).map(() => 0);
  for (const c of counts) bins[histogramBin(c, limit, bins.length)]++;
  return bins;
}

// made on first use: creating an ICU collator costs milliseconds, and a no-op run never sorts
let collator: Intl.Collator | undefined;
export const naturalOrder = (a: string, b: string): number => (collator ??= new Intl.Collator('en', { numeric: true })).compare(a, b);

/** Diagnostics by file (image/2 before image/10), then line and column. */
export function sortByPlace(diagnostics: Diagnostic[]): Diagnostic[] {
  const keyed = diagnostics.map((d) => ({ d, key: d.file ?? d.item ?? '' }));
  keyed.sort((a, b) => (a.key === b.key ? 0 : naturalOrder(a.key, b.key)) || (a.d.line ?? 0) - (b.d.line ?? 0) || (a.d.col ?? 0) - (b.d.col ?? 0));
  return keyed.map((k) => k.d);
}

/** an array index as a property key ('0', '17'; not '01' or '-1'): objects list these first, ascending */
export function isIndexKey(key: string): boolean {
  return /^(?:0|[1-9]\d{0,9})$/.test(key) && Number(key) < 4294967295;
}

/**
 * `entries` (distinct keys) in the order Object.entries would give them back from
 * Object.fromEntries(entries): array-index keys first, ascending, then the rest as given. The
 * report's tags keep exactly the order they had when they went through an object of every tag.
 */
function inPropertyOrder(entries: [string, number][]): [string, number][] {
  const index = entries.filter(([k]) => isIndexKey(k));
  if (index.length === 0) return entries;
  index.sort((a, b) => Number(a[0]) - Number(b[0]));
  return [...index, ...entries.filter(([k]) => !isIndexKey(k))];
}

/** images that bad_images: skip dropped */
export function checkSkipped(findings: Findings, manifest: Manifest): void {
  for (const skipped of manifest.skipped) {
    if (!findings.enabled('undecodable')) continue;
    findings.diagnostics.push({
      severity: 'warning',
      code: 'undecodable',
      file: skipped.origin,
      message: `skipped: ${skipped.reason}`,
      hint: 'replace or remove the image (bad_images: skip drops it from training)',
    });
  }
}

/** What the report is made of, however it was computed (buildReport, or kept and updated: validation-delta.ts). */
export interface ReportParts {
  /** in place order (sortByPlace) */
  diagnostics: Diagnostic[];
  trigger: { present: number; of: number; missing: string[]; cut: string[] };
  tokens: { max: number; sum: number; captions: number; over: number; bins: number[] };
  /** the report's tags (at most REPORT_TAGS, in report order) and how many there are; null: not tag-style captions */
  tags: { top: [string, number][]; distinct: number } | null;
}

/** Object.fromEntries, a few times faster for a thousand keys (a plain assignment, except for '__proto__') */
function objectOf(entries: [string, number][]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of entries) {
    if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    else out[key] = value;
  }
  return out;
}

export function assembleReport(manifest: Manifest, settings: ValidationSettings, tokenizer: { id: string; reason: string }, parts: ReportParts): ValidationReport {
  const { diagnostics, tokens, tags } = parts;
  const limit = settings.rules.max_tokens;
  const ranges = histogramRanges(limit);
  let errors = 0;
  let warnings = 0;
  for (const d of diagnostics) {
    if (d.severity === 'error') errors++;
    else if (d.severity === 'warning') warnings++;
  }
  return {
    dataset: manifest.dataset,
    tokenizer,
    settings: { max_tokens: limit, min_size: settings.minSize, max_aspect: settings.rules.max_aspect, trigger: settings.trigger },
    items: manifest.items.length,
    errors,
    warnings,
    diagnostics,
    trigger: settings.trigger === null ? null : { phrase: settings.trigger, ...parts.trigger },
    tokens: {
      max: tokens.max,
      mean: tokens.captions ? Math.round((tokens.sum / tokens.captions) * 10) / 10 : 0,
      over: tokens.over,
      histogram: ranges.map((range, i) => ({ range, count: tokens.bins[i] })),
    },
    tagFrequency: tags ? objectOf(tags.top) : null,
    tagsDistinct: tags ? tags.distinct : null,
  };
}

export function buildReport(
  manifest: Manifest,
  checks: ItemCheck[],
  settings: ValidationSettings,
  tokenizer: { id: string; reason: string },
): ValidationReport {
  const datasetFindings = new Findings(settings.rules);
  checkNumbering(datasetFindings, manifest);
  checkStray(datasetFindings, manifest);
  checkDuplicates(datasetFindings, manifest.items, checks.map((c) => c.captionKey));
  checkSkipped(datasetFindings, manifest);
  // one pass over the items' checks (a save in `lorabuild watch` builds this report for every item)
  const itemDiagnostics: Diagnostic[] = [];
  const counts: number[] = [];
  const tagLists: string[][] = [];
  const missing: string[] = [];
  const cut: string[] = [];
  let withTrigger = 0;
  let present = 0;
  let tokenMax = 0;
  let tokenSum = 0;
  let over = 0;
  const limit = settings.rules.max_tokens;
  const where = (i: number) => manifest.items[i].caption?.origin ?? manifest.items[i].id;
  for (let i = 0; i < checks.length; i++) {
    const c = checks[i];
    for (const d of c.diagnostics) itemDiagnostics.push(d);
    if (c.trigger !== null) {
      withTrigger++;
      if (c.trigger === 'present') present++;
      else if (c.trigger === 'missing') missing.push(where(i));
      else if (c.trigger === 'cut') cut.push(where(i));
    }
    if (c.tokens !== null) {
      counts.push(c.tokens);
      tagLists.push(c.tags);
      if (c.tokens > tokenMax) tokenMax = c.tokens;
      tokenSum += c.tokens;
      if (c.tokens > limit) over++;
    }
  }
  for (const d of datasetFindings.diagnostics) itemDiagnostics.push(d);
  const diagnostics = sortByPlace(itemDiagnostics);
  const tags = isTagStyle(tagLists, counts.length) ? tagCounts(tagLists) : null;
  return assembleReport(manifest, settings, tokenizer, {
    diagnostics,
    trigger: { present, of: withTrigger, missing, cut },
    tokens: { max: tokenMax, sum: tokenSum, captions: counts.length, over, bins: histogram(counts, limit) },
    tags: tags ? { top: inPropertyOrder(tags).slice(0, REPORT_TAGS), distinct: tags.length } : null,
  });
}
