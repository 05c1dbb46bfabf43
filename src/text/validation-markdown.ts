// validation.md: the report for people (the JSON twin is validation.json).
import type { Diagnostic } from '../config/diagnostic.js';
import type { ValidationReport } from './validation-report.js';
import { printable } from './printable.js';
import { groupDiagnostics } from '../config/diagnostic-groups.js';

/** rows of one kind of problem in the table before the rest are counted (validation.json lists all) */
const MD_ROWS_PER_KIND = 200;

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function placeOf(d: Diagnostic): string {
  const file = d.file ?? d.item ?? '';
  if (d.line === undefined) return file;
  return d.col === undefined ? `${file}:${d.line}` : `${file}:${d.line}:${d.col}`;
}

export function renderMarkdown(report: ValidationReport, tagRows = 50): string {
  const out: string[] = [];
  out.push(`# Caption validation: ${report.dataset}`, '');
  out.push(`${report.items} items, **${report.errors} errors**, ${report.warnings} warnings. ${report.errors > 0 ? 'Errors block training.' : 'Nothing blocks training.'}`, '');
  out.push(`Tokenizer: ${report.tokenizer.reason} (\`${report.tokenizer.id}\`). Token limit ${report.settings.max_tokens}, minimum image side ${report.settings.min_size} px, aspect limit ${report.settings.max_aspect}.`, '');
  if (report.diagnostics.length > 0) {
    out.push('## Problems', '', '| severity | where | rule | problem | fix |', '|---|---|---|---|---|');
    for (const d of groupDiagnostics(report.diagnostics, 'validation.json', MD_ROWS_PER_KIND)) out.push(`| ${d.severity} | ${cell(placeOf(d))} | ${d.code} | ${cell(d.message)} | ${cell(d.hint ?? '')} |`);
    out.push('');
  }
  if (report.trigger) {
    const t = report.trigger;
    const pct = t.of ? Math.round((t.present / t.of) * 100) : 0;
    out.push('## Trigger coverage', '', `\`${t.phrase}\` is in ${t.present} of ${t.of} captions (${pct}%).`, '');
    if (t.missing.length) out.push(`Missing in: ${t.missing.map((m) => `\`${m}\``).join(', ')}`, '');
    if (t.cut.length) out.push(`Cut off (after the token limit) in: ${t.cut.map((m) => `\`${m}\``).join(', ')}`, '');
  }
  out.push('## Caption length (tokens)', '', `max ${report.tokens.max}, mean ${report.tokens.mean}, over the limit: ${report.tokens.over}`, '', '| tokens | captions |', '|---|---|');
  for (const bin of report.tokens.histogram) out.push(`| ${bin.range} | ${bin.count} |`);
  out.push('');
  if (report.tagFrequency) {
    const tags = Object.entries(report.tagFrequency);
    const distinct = report.tagsDistinct ?? tags.length;
    const where = distinct > tags.length ? `the ${tags.length.toLocaleString('en-US')} most frequent in validation.json` : 'all in validation.json';
    out.push('## Tag frequency', '', `${distinct} distinct tags${distinct > tagRows ? ` (top ${tagRows} shown; ${where})` : ''}.`, '', '| tag | count |', '|---|---|');
    for (const [tag, count] of tags.slice(0, tagRows)) out.push(`| ${cell(tag)} | ${count} |`);
    out.push('');
  }
  return printable(out.join('\n'));
}
