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

function histogram(counts: number[], limit: number): { range: string; count: number }[] {
  const bins: { range: string; count: number }[] = [];
  for (let from = 0; from <= limit; from += 10) bins.push({ range: `${from}-${Math.min(from + 9, limit)}`, count: 0 });
  bins.push({ range: `>${limit}`, count: 0 });
  for (const c of counts) bins[c > limit ? bins.length - 1 : Math.floor(c / 10)].count++;
  return bins;
}

// made on first use: creating an ICU collator costs milliseconds, and a no-op run never sorts
let collator: Intl.Collator | undefined;
const naturalOrder = (a: string, b: string): number => (collator ??= new Intl.Collator('en', { numeric: true })).compare(a, b);

/** Diagnostics by file (image/2 before image/10), then line and column. */
function sortByPlace(diagnostics: Diagnostic[]): Diagnostic[] {
  const keyed = diagnostics.map((d) => ({ d, key: d.file ?? d.item ?? '' }));
  keyed.sort((a, b) => (a.key === b.key ? 0 : naturalOrder(a.key, b.key)) || (a.d.line ?? 0) - (b.d.line ?? 0) || (a.d.col ?? 0) - (b.d.col ?? 0));
  return keyed.map((k) => k.d);
}

/** an array index as a property key ('0', '17'; not '01' or '-1'): objects list these first, ascending */
function isIndexKey(key: string): boolean {
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
  for (const skipped of manifest.skipped) {
    if (!datasetFindings.enabled('undecodable')) continue;
    datasetFindings.diagnostics.push({
      severity: 'warning',
      code: 'undecodable',
      file: skipped.origin,
      message: `skipped: ${skipped.reason}`,
      hint: 'replace or remove the image (bad_images: skip drops it from training)',
    });
  }
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
  const trigger: ValidationReport['trigger'] = settings.trigger === null ? null : { phrase: settings.trigger, present, of: withTrigger, missing, cut };
  const tags = isTagStyle(tagLists, counts.length) ? tagCounts(tagLists) : null;
  return {
    dataset: manifest.dataset,
    tokenizer,
    settings: { max_tokens: limit, min_size: settings.minSize, max_aspect: settings.rules.max_aspect, trigger: settings.trigger },
    items: manifest.items.length,
    errors: diagnostics.filter((d) => d.severity === 'error').length,
    warnings: diagnostics.filter((d) => d.severity === 'warning').length,
    diagnostics,
    trigger,
    tokens: {
      max: tokenMax,
      mean: counts.length ? Math.round((tokenSum / counts.length) * 10) / 10 : 0,
      over,
      histogram: histogram(counts, limit),
    },
    tagFrequency: tags ? Object.fromEntries(inPropertyOrder(tags).slice(0, REPORT_TAGS)) : null,
    tagsDistinct: tags ? tags.length : null,
  };
}
