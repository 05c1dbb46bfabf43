// report.html: one self-contained page (inline CSS, a few lines of inline script for the
// before/after sliders, images inlined as data: URIs or linked relative to out/).
import type { Json } from '../engine/types.js';
import { lossCurveSvg } from './loss-svg.js';
import { printable } from '../text/printable.js';
import { LORA_COLUMNS, loraRow, renderSubtitle, type ReportCell, type ReportImage, type ReportLora, type ReportModel, type ReportRender, type ReportScores, type ReportValidation } from './model.js';

export function escapeHtml(text: string): string {
  return printable(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const CSS = `
body{font-family:system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;color:#222;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}h3{margin-top:1.5em}
table.kv{border-collapse:collapse;font-size:.9em}table.kv td,table.kv th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
.muted{color:#666}.warn{color:#9a6700}.err{color:#b42318}
.grid img{max-width:100%;height:auto;border:1px solid #ddd}
.pairs{display:flex;flex-wrap:wrap;gap:16px}.pair{font-size:.85em}
.ab{position:relative;display:inline-block;line-height:0;border:1px solid #ccc}
.ab img{display:block;max-width:none}.ab .before{position:absolute;top:0;left:0;overflow:hidden;height:100%;border-right:2px solid #fff}
img.px{image-rendering:pixelated}.ab{max-width:100%;overflow:hidden}
.ab input{position:absolute;left:0;bottom:4px;width:100%;margin:0}
.side{display:flex;gap:4px}.side figure{margin:0;text-align:center}
nav a{margin-right:12px}pre{white-space:pre-wrap;font-size:.8em;background:#f6f8fa;padding:6px}
`;

function src(image: ReportImage): string {
  return escapeHtml(image.dataUri ?? image.href);
}

/** A value for people: text as is, lists joined, objects as "key value · key value", never raw JSON. */
export function humanValue(v: Json): string {
  if (v === null) return '—';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.map(humanValue).join(', ');
  return Object.entries(v)
    .map(([k, x]) => `${k} ${humanValue(x)}`)
    .join(' · ');
}

function kvTable(values: Record<string, Json>): string {
  const rows = Object.entries(values)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(humanValue(v))}</td></tr>`);
  return `<table class="kv">${rows.join('')}</table>`;
}

/** The smallest side a cell is shown at: small renders (64 px) are scaled up, pixel for pixel. */
const MIN_CELL = 256;

/** Cells are shown at their own size, at least MIN_CELL px wide (the page's width caps it). */
function displaySize(image: ReportImage): { w: number; h: number; pixelated: boolean } {
  const scale = Math.max(1, MIN_CELL / image.width);
  return { w: Math.round(image.width * scale), h: Math.round(image.height * scale), pixelated: scale >= 2 };
}

/** A before/after slider: `before` on the left (an overlay whose width the range input sets), `after` on the right. */
function slider(before: ReportCell, after: ReportCell, caption: string): string {
  const { w, h, pixelated } = displaySize(after.image);
  const img = (cell: ReportCell) =>
    `<img src="${src(cell.image)}" width="${w}" height="${h}"${pixelated ? ' class="px"' : ''} alt="${escapeHtml(cell.parameters.split('\n')[0])}" title="${escapeHtml(cell.parameters)}">`;
  return (
    `<figure class="pair"><div class="ab" style="width:${w}px;height:${h}px">${img(after)}` +
    `<div class="before" style="width:50%">${img(before)}</div>` +
    `<input type="range" min="0" max="100" value="50" aria-label="${escapeHtml(caption)}" oninput="this.previousElementSibling.style.width=this.value+'%'">` +
    `</div><figcaption>${escapeHtml(caption)}</figcaption></figure>`
  );
}

function sideBySide(cells: ReportCell[], labels: string[]): string {
  const figures = cells.map((cell, i) => {
    const { w, h, pixelated } = displaySize(cell.image);
    return `<figure><img src="${src(cell.image)}" width="${w}" height="${h}"${pixelated ? ' class="px"' : ''} title="${escapeHtml(cell.parameters)}" alt="${escapeHtml(labels[i])}"><figcaption>${escapeHtml(labels[i])}</figcaption></figure>`;
  });
  return `<div class="side">${figures.join('')}</div>`;
}

function scoresTable(scores: ReportScores): string {
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(4)}`;
  const rows = scores.arms.map((a) => `<tr><td>${escapeHtml(a.arm)}</td><td>${a.cells}</td><td>${a.clipT.toFixed(4)}</td><td>${a.clipI.toFixed(4)}</td></tr>`);
  const effect = scores.effect.map((e) => `<li>${escapeHtml(e.arm)} vs strength 0: CLIP-T ${signed(e.clipT)}, CLIP-I ${signed(e.clipI)}</li>`);
  return `<h4>CLIP scores <span class="muted">(${escapeHtml(scores.model)})</span></h4><table class="scores"><tr><th>arm</th><th>cells</th><th>CLIP-T</th><th>CLIP-I</th></tr>${rows.join('')}</table><ul>${effect.join('')}</ul>`;
}

function renderSection(render: ReportRender): string {
  const parts: string[] = [`<h3 id="render-${escapeHtml(render.name)}">Render ${escapeHtml(render.name)}</h3>`];
  parts.push(`<p class="muted">${escapeHtml(renderSubtitle(render))}</p>`);
  if (render.modelNote) parts.push(`<p>${escapeHtml(render.model)}: ${escapeHtml(render.modelNote)}</p>`);
  if (render.loras.length) {
    const head = LORA_COLUMNS.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
    const rows = render.loras.map((l) => `<tr>${loraRow(l).map((v) => `<td>${escapeHtml(v)}</td>`).join('')}</tr>`);
    parts.push(`<table class="kv loras"><tr>${head}</tr>${rows.join('')}</table>`);
  }
  for (const w of render.warnings) parts.push(`<p class="warn">warning: ${escapeHtml(w)}</p>`);
  parts.push(`<div class="grid"><img src="${src(render.grid)}" width="${render.grid.width}" height="${render.grid.height}" alt="A/B grid of ${escapeHtml(render.name)}"></div>`);
  parts.push(`<details open><summary>settings</summary>${kvTable(render.settings)}</details>`);
  if (render.scores) parts.push(scoresTable(render.scores));
  const without = render.columns.findIndex((c) => c.strength === 0);
  render.rows.forEach((row, r) => {
    const rowCells = render.cells.filter((c) => c.row === r).sort((a, b) => a.col - b.col);
    parts.push(`<h4>${escapeHtml(row.prompt)} <span class="muted">· seed ${row.seed}</span></h4>`);
    if (without >= 0 && rowCells.length > 1) {
      const base = rowCells.find((c) => c.col === without)!;
      const pairs = rowCells.filter((c) => c.col !== without).map((c) => slider(base, c, `without ← → ${render.columns[c.col].label}`));
      parts.push(`<div class="pairs">${pairs.join('')}</div>`);
    } else {
      parts.push(sideBySide(rowCells, rowCells.map((c) => render.columns[c.col].label)));
    }
  });
  return parts.join('\n');
}

function loraSection(lora: ReportLora, renders: ReportRender[]): string {
  const files = lora.files.map((f) => `<li><a href="${escapeHtml(f.href)}">${escapeHtml(f.name)}</a> <span class="muted">(${(f.size / 1024).toFixed(1)} KiB)</span></li>`);
  const last = lora.loss.at(-1);
  return [
    `<h2 id="lora-${escapeHtml(lora.name)}">LoRA ${escapeHtml(lora.name)}</h2>`,
    ...(lora.warnings ?? []).map((w) => `<p class="warn">warning: ${escapeHtml(w)}</p>`),
    `<h3>Training loss</h3>`,
    `<figure class="loss">${lossCurveSvg(lora.loss)}<figcaption class="muted">${lora.loss.length} points${last ? `; last loss ${last[1].toFixed(4)} at step ${last[0]}` : ''}</figcaption></figure>`,
    `<h3>Files</h3><ul>${files.join('')}</ul>`,
    `<details><summary>parameters</summary>${kvTable(lora.params)}</details>`,
    ...renders.map(renderSection),
  ].join('\n');
}

/** The first messages open, the rest (up to the report's limit) folded. */
const OPEN_MESSAGES = 20;

/** The validate stage's summary in words: "8 of 8 captions (100%)", the most frequent tags. */
function validationFacts(meta: Record<string, Json>): Record<string, Json> {
  const facts: Record<string, Json> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key === 'errors' || key === 'warnings' || value === null) continue;
    const v = value as Record<string, Json>;
    if (key === 'trigger_coverage' && typeof v.present === 'number' && typeof v.of === 'number') {
      facts['trigger in captions'] = `${v.present} of ${v.of}${v.of ? ` (${Math.round((100 * v.present) / v.of)}%)` : ''}`;
    } else if (key === 'tag_frequency' && typeof value === 'object' && !Array.isArray(value)) {
      const tags = Object.entries(value).filter((e): e is [string, number] => typeof e[1] === 'number').sort((a, b) => b[1] - a[1]);
      const distinct = typeof meta.tags === 'number' ? meta.tags : tags.length;
      facts['most frequent tags'] = tags.slice(0, 12).map(([tag, n]) => `${tag} (${n})`).join(', ') + (distinct > 12 ? `, … ${distinct - 12} more` : '');
    } else if (key === 'tags') {
      continue;
    } else if (key === 'max_tokens') facts['longest caption'] = `${String(value)} tokens`;
    else facts[key.replace(/_/g, ' ')] = value;
  }
  return facts;
}

function validationSection(v: ReportValidation): string {
  const item = (m: ReportValidation['messages'][number]) => `<li class="${m.severity === 'error' ? 'err' : m.severity === 'warning' ? 'warn' : ''}">${escapeHtml(m.text)}</li>`;
  const open = v.messages.slice(0, OPEN_MESSAGES).map(item);
  const folded = v.messages.slice(OPEN_MESSAGES).map(item);
  const total = v.errors + v.warnings;
  const unlisted = total - v.messages.length;
  const link = v.href ? `<a href="${escapeHtml(v.href)}">${escapeHtml(v.href.split('/').pop()!)}</a> (plain text)` : '';
  return [
    `<h3 id="dataset-${escapeHtml(v.dataset)}">Dataset ${escapeHtml(v.dataset)}</h3>`,
    `<p><span class="${v.errors ? 'err' : ''}">${v.errors} errors</span>, <span class="${v.warnings ? 'warn' : ''}">${v.warnings} warnings</span></p>`,
    open.length ? `<ul>${open.join('')}</ul>` : '',
    folded.length ? `<details><summary>${folded.length} more</summary><ul>${folded.join('')}</ul></details>` : '',
    unlisted > 0 ? `<p class="muted">… ${unlisted} more${link ? ` in ${link}` : ''}</p>` : link && total > 0 ? `<p class="muted">the same as ${link}</p>` : '',
    Object.keys(v.meta).length ? `<details open><summary>summary</summary>${kvTable(validationFacts(v.meta))}</details>` : '',
  ].join('\n');
}

export function reportHtml(model: ReportModel): string {
  const rendersOf = (lora: string) => model.renders.filter((r) => r.lora === lora);
  const orphanRenders = model.renders.filter((r) => !model.loras.some((l) => l.name === r.lora));
  const nav = [
    ...model.loras.map((l) => `<a href="#lora-${escapeHtml(l.name)}">LoRA ${escapeHtml(l.name)}</a>`),
    ...model.renders.map((r) => `<a href="#render-${escapeHtml(r.name)}">render ${escapeHtml(r.name)}</a>`),
    ...model.validations.map((v) => `<a href="#dataset-${escapeHtml(v.dataset)}">dataset ${escapeHtml(v.dataset)}</a>`),
  ];
  const body = [
    `<h1>${escapeHtml(model.title)}</h1>`,
    `<p class="muted">${escapeHtml(model.lorafile)}</p>`,
    nav.length ? `<nav>${nav.join('')}</nav>` : '',
    model.missing.length ? `<p class="err">not built (failed or skipped): ${model.missing.map(escapeHtml).join(', ')}</p>` : '',
    ...model.loras.map((l) => loraSection(l, rendersOf(l.name))),
    ...(orphanRenders.length ? ['<h2>Renders</h2>', ...orphanRenders.map(renderSection)] : []),
    ...(model.validations.length ? ['<h2 id="validation">Validation</h2>', ...model.validations.map(validationSection)] : []),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(model.title)}</title>
<style>${CSS}</style>
</head>
<body>
${body.filter(Boolean).join('\n')}
</body>
</html>
`;
}
