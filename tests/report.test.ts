// The report writers on a hand-made model: every cell appears, text is escaped, sliders pair each
// cell with its row's without-LoRA cell, the loss curve is drawn, Markdown links the files.
import { describe, expect, it } from 'vitest';
import { reportHtml, escapeHtml } from '../src/report/html.js';
import { reportMarkdown } from '../src/report/markdown.js';
import { lossCurveSvg, niceTicks, smooth } from '../src/report/loss-svg.js';
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
    loras: [
      { label: 'mouse', lora: 'mouse', sha256: 'a'.repeat(64), family: 'SD1.x', kinds: ['LoRA'], ranks: [4], alphas: [4], strength_model: 1, strength_clip: 1, triggers: [] },
      { label: '80s_offset', file: 'loras/80s_offset.safetensors', sha256: 'b'.repeat(64), family: 'SD1.x', kinds: ['LoCon'], ranks: [32], alphas: [], strength_model: 0.8, strength_clip: 0.5, triggers: ['80s'] },
    ],
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

  it('sliders are as wide as the cells and at least 256 px (small cells scaled up pixel for pixel)', () => {
    expect(html.match(/<div class="ab" style="width:(\d+)px;height:(\d+)px">/)!.slice(1)).toEqual(['256', '256']);
    expect(html).toContain('width="256" height="256" class="px"');
    const big = model();
    big.renders[0].cells = big.renders[0].cells.map((c) => ({ ...c, image: { ...c.image, width: 512, height: 768 } }));
    const out = reportHtml(big);
    expect(out).toContain('<div class="ab" style="width:512px;height:768px">');
    expect(out).not.toContain('class="px"');
  });

  it('the navigation links every LoRA, render and dataset', () => {
    const nav = /<nav>(.*?)<\/nav>/.exec(html)![1];
    expect([...nav.matchAll(/href="#([^"]+)"/g)].map((m) => m[1])).toEqual(['lora-mouse', 'render-ab', 'dataset-ds']);
    for (const id of ['lora-mouse', 'render-ab', 'dataset-ds']) expect(html).toContain(`id="${id}"`);
  });

  it('says the validation summary in words (no raw JSON), folds long lists, and names validation.md as plain text', () => {
    const m = model();
    m.validations[0] = {
      ...m.validations[0],
      errors: 0,
      warnings: 30,
      messages: Array.from({ length: 25 }, (_, i) => ({ severity: 'warning', text: `text/${i}.txt:1:5: trailing whitespace` })),
      meta: { items: 30, errors: 0, warnings: 30, tokenizer: 'clip-bpe', max_tokens: 17, trigger_coverage: { present: 24, of: 30 }, tag_frequency: { lineart: 30, circle: 2, house: 5 } },
    };
    const out = reportHtml(m);
    expect(out).not.toMatch(/\{&quot;|\{"/);
    expect(out).toContain('<th>trigger in captions</th><td>24 of 30 (80%)</td>');
    expect(out).toContain('<th>most frequent tags</th><td>lineart (30), house (5), circle (2)</td>');
    expect(out).toContain('<th>longest caption</th><td>17 tokens</td>');
    expect(out.match(/trailing whitespace<\/li>/g)).toHaveLength(25);
    expect(out).toContain('<details><summary>5 more</summary>');
    expect(out).toContain('… 5 more in <a href="datasets/ds/validation.md">validation.md</a> (plain text)');
    expect(out).not.toContain('full report');
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

  it("lists each LoRA of a render: file, family, rank, alpha, strengths, trigger words", () => {
    const md = reportMarkdown(model());
    expect(md).toContain('LoRAs mouse + 80s_offset on tiny; 2 rows × 2 columns');
    expect(md).toContain('| LoRA | family | rank | alpha | strength_model | strength_clip | trigger words |');
    expect(md).toContain('| mouse (trained here) | SD1.x LoRA | 4 | 4 | 1 | 1 | — |');
    expect(md).toContain('| loras/80s_offset.safetensors | SD1.x LoCon | 32 | none (scale 1) | 0.8 | 0.5 | 80s |');
    const html = reportHtml(model());
    expect(html).toContain('<td>loras/80s_offset.safetensors</td><td>SD1.x LoCon</td><td>32</td><td>none (scale 1)</td><td>0.8</td><td>0.5</td><td>80s</td>');
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

  it('labels steps with whole round numbers and losses with round values; the last label is not cut off', () => {
    const svg = lossCurveSvg(Array.from({ length: 200 }, (_, i) => [i + 1, 1.3 - i * 0.003] as [number, number]), 640, 240);
    const labels = [...svg.matchAll(/<text x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)">([^<]+)<\/text>/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), anchor: m[3], text: m[4] }));
    const steps = labels.filter((l) => l.y > 200 && l.text !== 'step');
    expect(steps.map((l) => l.text)).toEqual(['50', '100', '150', '200']);
    expect(steps.at(-1)!.anchor).toBe('end');
    expect(labels.filter((l) => l.y <= 200).map((l) => l.text)).toEqual(['0.8', '1.0', '1.2']);
    expect(svg).not.toContain('>1.00<');
    expect(niceTicks(1, 7, 5, true).values).toEqual([2, 4, 6]);
    expect(niceTicks(1, 3, 5, true).values).toEqual([1, 2, 3]); // never a fractional step
    expect(niceTicks(0.0312, 0.0377, 4)).toEqual({ values: [0.032, 0.034, 0.036], decimals: 3 });
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
