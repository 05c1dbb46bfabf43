// report.md: the same content as report.html for reading in a repository or a CI summary; images
// and LoRA files are linked relative to out/.
import type { Json } from '../engine/types.js';
import { printable } from '../text/printable.js';
import { LORA_COLUMNS, loraRow, renderSubtitle, type ReportModel, type ReportRender, type ReportScores } from './model.js';

/** report.md lists this many diagnostics per dataset; validation.md has them all */
const MARKDOWN_MESSAGES = 20;

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function value(v: Json): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function renderMd(render: ReportRender): string[] {
  const lines = [`### Render ${render.name}`, '', renderSubtitle(render), ''];
  if (render.modelNote) lines.push(`${render.model}: ${render.modelNote}`, '');
  if (render.loras.length) {
    lines.push(`| ${LORA_COLUMNS.join(' | ')} |`, `|${LORA_COLUMNS.map(() => '---').join('|')}|`);
    for (const l of render.loras) lines.push(`| ${loraRow(l).map(cell).join(' | ')} |`);
    lines.push('');
  }
  for (const w of render.warnings) lines.push(`> warning: ${w}`, '');
  lines.push(`![A/B grid of ${render.name}](${render.grid.href})`, '');
  lines.push(`| prompt | seed | ${render.columns.map((c) => cell(c.label)).join(' | ')} |`);
  lines.push(`|---|---|${render.columns.map(() => '---').join('|')}|`);
  render.rows.forEach((row, r) => {
    const cells = render.columns.map((_, c) => {
      const found = render.cells.find((x) => x.row === r && x.col === c);
      return found ? `![](${found.image.href})` : '—';
    });
    lines.push(`| ${cell(row.prompt)} | ${row.seed} | ${cells.join(' | ')} |`);
  });
  lines.push('', Object.entries(render.settings).map(([k, v]) => `${k}: ${value(v)}`).join(' · '), '');
  if (render.scores) lines.push(...scoreLines(render.scores));
  return lines;
}

const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;

export function scoreLines(scores: ReportScores): string[] {
  return [
    `CLIP scores (\`${cell(scores.model)}\`):`,
    '',
    '| arm | cells | CLIP-T | CLIP-I |',
    '|---|---:|---:|---:|',
    ...scores.arms.map((a) => `| ${cell(a.arm)} | ${a.cells} | ${a.clipT.toFixed(4)} | ${a.clipI.toFixed(4)} |`),
    '',
    ...scores.effect.map((e) => `LoRA effect, ${cell(e.arm)} vs strength 0: CLIP-T ${signed(e.clipT)}, CLIP-I ${signed(e.clipI)}`),
    '',
  ];
}

export function reportMarkdown(model: ReportModel): string {
  const lines = [`# ${model.title}`, '', `lorafile: \`${model.lorafile}\``, ''];
  if (model.missing.length) lines.push(`**Not built (failed or skipped):** ${model.missing.join(', ')}`, '');
  for (const lora of model.loras) {
    lines.push(`## LoRA ${lora.name}`, '');
    for (const w of lora.warnings ?? []) lines.push(`> warning: ${w}`, '');
    const first = lora.loss[0];
    const last = lora.loss.at(-1);
    if (first && last) lines.push(`Training loss: ${first[1].toFixed(4)} at step ${first[0]} → ${last[1].toFixed(4)} at step ${last[0]} (${lora.loss.length} points)`, '');
    lines.push('Files:', '', ...lora.files.map((f) => `- [${f.name}](${f.href}) (${(f.size / 1024).toFixed(1)} KiB)`), '');
    lines.push('| parameter | value |', '|---|---|', ...Object.entries(lora.params).filter(([, v]) => v !== null).map(([k, v]) => `| ${cell(k)} | ${cell(value(v))} |`), '');
    for (const render of model.renders.filter((r) => r.lora === lora.name)) lines.push(...renderMd(render));
  }
  const orphans = model.renders.filter((r) => !model.loras.some((l) => l.name === r.lora));
  for (const render of orphans) lines.push(...renderMd(render));
  if (model.validations.length) {
    lines.push('## Validation', '');
    for (const v of model.validations) {
      lines.push(`### Dataset ${v.dataset}`, '', `${v.errors} errors, ${v.warnings} warnings${v.href ? ` — [full report](${v.href})` : ''}`, '');
      for (const m of v.messages.slice(0, MARKDOWN_MESSAGES)) lines.push(`- ${m.severity}: ${m.text}`);
      const more = v.errors + v.warnings - Math.min(v.messages.length, MARKDOWN_MESSAGES);
      if (more > 0) lines.push(`- … ${more} more${v.href ? ` in [${v.href.split('/').pop()}](${v.href})` : ''}`);
      if (v.messages.length) lines.push('');
    }
  }
  return `${printable(lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd())}\n`;
}
