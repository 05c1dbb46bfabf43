// The dataset-wide part of validation and the report it produces (validation.json): per-item
// results plus numbering, stray files, duplicates, trigger coverage, token lengths and tags.
import type { Diagnostic } from '../config/diagnostic.js';
import type { Manifest } from '../datasets/manifest.js';
import type { ItemCheck, ValidationSettings } from './check-item.js';
import { checkDuplicates, checkNumbering, checkStray } from './rules/dataset.js';
import { Findings } from './rules/findings.js';
import { isTagStyle, tagFrequency } from './rules/tags.js';

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
  const diagnostics = sortByPlace([...checks.flatMap((c) => c.diagnostics), ...datasetFindings.diagnostics]);

  const where = (i: number) => manifest.items[i].caption?.origin ?? manifest.items[i].id;
  let trigger: ValidationReport['trigger'] = null;
  if (settings.trigger !== null) {
    const withCaption = checks.filter((c) => c.trigger !== null);
    trigger = {
      phrase: settings.trigger,
      present: withCaption.filter((c) => c.trigger === 'present').length,
      of: withCaption.length,
      missing: checks.flatMap((c, i) => (c.trigger === 'missing' ? [where(i)] : [])),
      cut: checks.flatMap((c, i) => (c.trigger === 'cut' ? [where(i)] : [])),
    };
  }
  const counts = checks.flatMap((c) => (c.tokens === null ? [] : [c.tokens]));
  const limit = settings.rules.max_tokens;
  const tagLists = checks.filter((c) => c.tokens !== null).map((c) => c.tags);
  const frequency = isTagStyle(tagLists, counts.length) ? tagFrequency(tagLists) : null;
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
      max: counts.reduce((m, c) => Math.max(m, c), 0),
      mean: counts.length ? Math.round((counts.reduce((a, b) => a + b, 0) / counts.length) * 10) / 10 : 0,
      over: counts.filter((c) => c > limit).length,
      histogram: histogram(counts, limit),
    },
    tagFrequency: frequency ? Object.fromEntries(Object.entries(frequency).slice(0, REPORT_TAGS)) : null,
    tagsDistinct: frequency ? Object.keys(frequency).length : null,
  };
}
