// The report writers on a hand-made model: every cell appears, text is escaped, sliders pair each
// cell with its row's without-LoRA cell, the loss curve is drawn, Markdown links the files.
import { describe, expect, it } from 'vitest';
import { reportHtml, escapeHtml } from '../src/report/html.js';
import { reportMarkdown } from '../src/report/markdown.js';
import { lossCurveSvg, smooth } from '../src/report/loss-svg.js';
import type { ReportModel, ReportRender } from '../src/report/model.js';

function image(name: string) {
  return { href: `renders/ab/cells/${name}.png`, dataUri: `data:image/png;base64,${Buffer.from(name).toString('base64')}`, width: 64, height: 64 };
}

function model(): ReportModel {
  const columns = [
    { label: 'strength 0 (no LoRA)', strength: 0, step: null },
    { label: 'strength 1', strength: 1, step: null },
  ];
  const rows = [
    { prompt: 'a <script>alert(1)</script> mouse', seed: 0 },
    { prompt: 'a "quoted" cat & dog', seed: 1 },
  ];
  const render: ReportRender = {
    name: 'ab',
    lora: 'mouse',
    model: 'tiny',
    settings: { sampler: 'euler', steps: 3 },
    columns,
    rows,
    cells: rows.flatMap((_, r) => columns.map((c, col) => ({ row: r, col, strength: c.strength, step: null, parameters: `p${r}c${col}`, image: image(`r${r}c${col}`) }))),
    grid: { ...image('grid'), href: 'renders/ab/grid.png', width: 400, height: 300 },
    warnings: ['prompt 1 is cut: "x"'],
  };
  return {
    title: 'lorabuild report — lorafile.yaml',
    lorafile: 'lorafile.yaml',
    loras: [{ name: 'mouse', params: { rank: 4, learning_rate: 0.0001 }, loss: [[1, 0.5], [2, 0.4], [3, 0.45], [4, 0.3]], files: [{ name: 'mouse.safetensors', href: 'loras/mouse/mouse.safetensors', size: 2048 }], meta: {}, warnings: ['compile: true has no effect: torch 1.13 has no torch.compile'] }],
    renders: [render],
    validations: [{ dataset: 'ds', errors: 1, warnings: 2, messages: [{ severity: 'error', text: 'text/3.txt:1:1: empty caption' }], meta: {}, href: 'datasets/ds/validation.md' }],
    missing: [],
  };
}

describe('reportHtml', () => {
  const html = reportHtml(model());

  it('contains every cell image, the grid and one slider per LoRA cell', () => {
    for (const cell of model().renders[0].cells) expect(html).toContain(cell.image.dataUri!);
    expect(html).toContain(model().renders[0].grid.dataUri!);
    expect(html.match(/type="range"/g)).toHaveLength(2); // 2 rows × 1 non-zero column
    expect(html.match(/class="ab"/g)).toHaveLength(2);
    // the without-LoRA cell is the left (clipped) layer, the LoRA cell the one underneath
    const r0 = model().renders[0].cells;
    expect(html).toContain(`<img src="${r0[1].image.dataUri}"`);
    expect(html).toContain(`<div class="before" style="width:50%"><img src="${r0[0].image.dataUri}"`);
  });

  it('escapes prompts and parameters, and has no external resources', () => {
    expect(html).not.toContain('<script>alert(1)</script>');
    expect(html).toContain('a &lt;script&gt;alert(1)&lt;/script&gt; mouse');
    expect(html).toContain('a &quot;quoted&quot; cat &amp; dog');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(escapeHtml(`<a href='x'>&`)).toBe('&lt;a href=&#39;x&#39;&gt;&amp;');
  });

  it('shows the loss curve, the LoRA link, the validation summary and the warnings', () => {
    expect(html).toContain('<polyline');
    expect(html).toContain('href="loras/mouse/mouse.safetensors"');
    expect(html).toContain('1 errors</span>');
    expect(html).toContain('text/3.txt:1:1: empty caption');
    expect(html).toContain('warning: prompt 1 is cut: &quot;x&quot;');
    expect(html).toContain('<p class="warn">warning: compile: true has no effect: torch 1.13 has no torch.compile</p>');
  });

  it('falls back to side by side when a row has no without-LoRA cell', () => {
    const m = model();
    m.renders[0].columns = m.renders[0].columns.map((c) => ({ ...c, strength: c.strength + 0.5 }));
    const out = reportHtml(m);
    expect(out).not.toContain('type="range"');
    expect(out.match(/class="side"/g)).toHaveLength(2);
  });
});

describe('reportMarkdown', () => {
  it('tabulates the grid with linked cells and lists files and validation', () => {
    const md = reportMarkdown(model());
    expect(md).toContain('| prompt | seed | strength 0 (no LoRA) | strength 1 |');
    expect(md).toContain('| a "quoted" cat & dog | 1 | ![](renders/ab/cells/r1c0.png) | ![](renders/ab/cells/r1c1.png) |');
    expect(md).toContain('![A/B grid of ab](renders/ab/grid.png)');
    expect(md).toContain('- [mouse.safetensors](loras/mouse/mouse.safetensors) (2.0 KiB)');
    expect(md).toContain('Training loss: 0.5000 at step 1 → 0.3000 at step 4 (4 points)');
    expect(md).toContain('1 errors, 2 warnings — [full report](datasets/ds/validation.md)');
    expect(md).toContain('> warning: compile: true has no effect: torch 1.13 has no torch.compile');
    expect(md).not.toMatch(/\n{3,}/);
  });
});

describe('lossCurveSvg', () => {
  it('maps the first step to the left edge, the last to the right, the highest loss to the top', () => {
    const svg = lossCurveSvg([[0, 1], [50, 0.5], [100, 0]], 200, 100);
    const raw = /points="([^"]+)"/.exec(svg)![1].split(' ').map((p) => p.split(',').map(Number));
    expect(raw).toHaveLength(3);
    expect(raw[0][0]).toBeLessThan(raw[2][0]);
    expect(raw[0][1]).toBeLessThan(raw[2][1]); // loss 1 above loss 0 (SVG y grows downwards)
    expect(raw[0][1]).toBe(12);
  });

  it('says so when there is no loss, and ignores non-finite points', () => {
    expect(lossCurveSvg([])).toContain('no loss recorded');
    expect(lossCurveSvg([[1, Number.NaN]])).toContain('no loss recorded');
  });

  it('smooths with a centered window and keeps the length', () => {
    const values = Array.from({ length: 80 }, (_, i) => (i % 2 ? 1 : 0));
    const s = smooth(values);
    expect(s).toHaveLength(80);
    expect(Math.max(...s.slice(5, 75)) - Math.min(...s.slice(5, 75))).toBeLessThan(0.25);
  });
});
