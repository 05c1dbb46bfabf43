// `lorabuild run --json` end to end with renders on `builtin: tiny`: per-cell caching (adding a seed
// renders only the new cells; re-training re-renders only the cells that use the LoRA; the
// strength-0 arm is shared even between render targets), the grid, cells.json, PNG parameters,
// a prompt over 75 tokens rendered in two chunks, prompt weights, ComfyUI sampler/scheduler names
// (and an old name's note), img2img, a render skipped because its LoRA could not train, and the
// HTML report opened in headless Chromium.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { makeTempDir, runCli, writeFiles, type CliResult } from './helpers/cli.js';
import { writeRingShapes } from './helpers/shapes.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
// 86 CLIP tokens: the 22 of the description and 53 'and' fit in 75, seven 'and' and the last four words are cut
const LONG_PROMPT = `lineart, a circle drawn with one single continuous line of black ink on white paper, thin and elegant, ${'and '.repeat(60)}keep cut words here`;

function lorafile(opts: { seeds: number[]; lr: string; badCaption?: boolean }): string {
  return `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora:
    model: tiny
    dataset: shapes
    rank: 2
    learning_rate: ${opts.lr}
    steps: 4
    checkpoint_every: 2
    resolution: 64
renders:
  ab:
    lora: shapes_lora
    prompts: ["lineart, a circle", "${LONG_PROMPT}"]
    seeds: [${opts.seeds.join(', ')}]
    strengths: [0, 1]
    steps: 3
  progress:
    lora: shapes_lora
    prompts: ["lineart, a circle"]
    seeds: [0]
    strengths: [0, 1]
    checkpoints: [2, 4]
    columns: checkpoint
    steps: 3
`;
}

async function makeProject(dir: string, captions: string[]): Promise<void> {
  await writeRingShapes(dir, captions);
}

const run = (cwd: string): Promise<CliResult> => runCli(['run', '--json'], { cwd, env: ENV, timeoutMs: 300_000 });

/** item label -> outcome, for one stage */
function itemOutcomes(result: CliResult, stage: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of result.events) {
    // cell labels start with the prompt number ('p1 seed 0 · strength 1'); other items (the model) are not cells
    if (e.stage === stage && typeof e.item === 'string' && /^p\d+ /.test(e.item) && typeof e.outcome === 'string') out[e.item] = e.outcome;
  }
  return out;
}

const stageOutcome = (result: CliResult, stage: string) =>
  result.events.find((e) => e.stage === stage && typeof e.outcome === 'string' && e.outcome !== 'started' && e.item === undefined);

/** The tEXt chunks of a PNG file, read directly from its chunks. */
function pngText(file: string): Record<string, string> {
  const data = readFileSync(file);
  expect(data.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
  const out: Record<string, string> = {};
  for (let pos = 8; pos + 8 <= data.length; ) {
    const length = data.readUInt32BE(pos);
    const type = data.toString('latin1', pos + 4, pos + 8);
    if (type === 'tEXt') {
      const body = data.subarray(pos + 8, pos + 8 + length);
      const nul = body.indexOf(0);
      out[body.toString('latin1', 0, nul)] = body.toString('latin1', nul + 1);
    }
    pos += 12 + length;
  }
  return out;
}

interface CellsJson {
  columns: { label: string; strength: number; step: number | null }[];
  rows: { prompt: string; seed: number }[];
  cells: { row: number; col: number; file: string; sha256: string; strength: number; parameters: string }[];
  grid: { file: string; width: number; height: number };
}

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-render-');
});
afterAll(() => tmp.cleanup());

describe('lorabuild run: renders on builtin tiny', () => {
  const project = () => join(tmp.dir, 'p');
  const out = (...parts: string[]) => join(project(), 'out', ...parts);
  const cells = (render: string) => JSON.parse(readFileSync(out('renders', render, 'cells.json'), 'utf8')) as CellsJson;

  it('renders every cell once, shares the strength-0 arm and writes grid, cells.json and PNG parameters', async () => {
    writeFiles(project(), { 'lorafile.yaml': lorafile({ seeds: [0], lr: '1.0e-2' }) });
    await makeProject(project(), ['lineart, a circle', 'lineart, a ring', 'lineart, a loop']);
    const first = await run(project());
    expect(first.stderr).not.toMatch(/internal error/);
    expect(first.code, first.stderr.slice(-2000)).toBe(0);

    const abItems = itemOutcomes(first, 'render:ab');
    const progressItems = itemOutcomes(first, 'render:progress');
    expect(abItems).toMatchObject({ 'p2 seed 0 · strength 0 (no LoRA)': 'ran', 'p2 seed 0 · strength 1': 'ran' });
    expect(progressItems).toMatchObject({ 'p1 seed 0 · step 2 · strength 1': 'ran' });
    // Cells that decide the same pixels are one cell, whichever render asks: the without arm, and the
    // final step (4) at strength 1 of `progress` is the final LoRA at strength 1 of `ab`.
    // Whichever render came second reused them.
    expect([abItems['p1 seed 0 · strength 0 (no LoRA)'], progressItems['p1 seed 0 · strength 0 (no LoRA)']].sort()).toEqual(['cached', 'ran']);
    expect([abItems['p1 seed 0 · strength 1'], progressItems['p1 seed 0 · step 4 · strength 1']].sort()).toEqual(['cached', 'ran']);
    expect(Object.keys(abItems)).toHaveLength(4);
    expect(Object.keys(progressItems)).toHaveLength(3);

    const ab = cells('ab');
    expect(ab.columns.map((c) => c.label)).toEqual(['strength 0 (no LoRA)', 'strength 1']);
    // CLIP tokens (every model tokenizes with CLIP BPE): the long prompt's 86 tokens are two chunks of 75, as ComfyUI encodes it
    expect(ab.rows).toEqual([
      { prompt: 'lineart, a circle', prompt_index: 1, seed: 0, tokens: 5, chunks: 1 },
      { prompt: LONG_PROMPT, prompt_index: 2, seed: 0, tokens: 86, chunks: 2 },
    ]);
    expect(ab.cells).toHaveLength(4);
    for (const cell of ab.cells) {
      const file = out('renders', 'ab', cell.file);
      const meta = await sharp(file).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', 64, 64]);
      const text = pngText(file);
      expect(text.parameters).toBe(cell.parameters);
      expect(text.parameters).toMatch(/\nSteps: 3, Sampler: euler, Scheduler: normal, CFG scale: 7.5, Seed: 0, Size: 64x64, Model hash: [0-9a-f]{10}, Model: tiny/);
      if (cell.strength === 0) expect(text.parameters).not.toMatch(/Lora hashes|<lora:/);
      else expect(text.parameters).toMatch(/<lora:shapes_lora:1>\nNegative prompt: \n.*Lora hashes: "shapes_lora: [0-9a-f]{12}"/);
    }
    // the LoRA changes the picture; the without arm of both renders is the same file
    expect(ab.cells[0].sha256).not.toBe(ab.cells[1].sha256);
    const progress = cells('progress');
    expect(progress.columns.map((c) => c.label)).toEqual(['strength 0 (no LoRA)', 'step 2 · strength 1', 'step 4 · strength 1']);
    expect(progress.cells[0].sha256).toBe(ab.cells[0].sha256);
    expect(progress.cells[1].sha256).not.toBe(progress.cells[2].sha256);
    expect(progress.cells[2].sha256).toBe(ab.cells[1].sha256);

    // grid: 2 rows × 2 columns of 128 px cells (64 px upscaled) below the headers, right of the labels
    const grid = await sharp(out('renders', 'ab', 'grid.png')).metadata();
    expect([grid.width, grid.height]).toEqual([ab.grid.width, ab.grid.height]);
    expect(grid.width!).toBeGreaterThan(2 * 128 + 100);
    expect(grid.height!).toBeGreaterThan(2 * 128);
    const progressGrid = await sharp(out('renders', 'progress', 'grid.png')).metadata();
    expect(progressGrid.width! - grid.width!).toBe(128 + 2); // one more column of 128 px and a 2 px gap

    // a prompt over 75 tokens is not cut any more: no warning
    expect(first.events.filter((e) => e.stage === 'render:ab' && Array.isArray(e.diagnostics))).toEqual([]);
  });

  it('adding a seed renders only the new cells', async () => {
    writeFiles(project(), { 'lorafile.yaml': lorafile({ seeds: [0, 1], lr: '1.0e-2' }) });
    const second = await run(project());
    expect(second.code, second.stderr.slice(-2000)).toBe(0);
    expect(stageOutcome(second, 'train:shapes_lora')?.outcome).toBe('fresh');
    const items = itemOutcomes(second, 'render:ab');
    const ran = Object.keys(items).filter((k) => items[k] === 'ran').sort();
    const cached = Object.keys(items).filter((k) => items[k] === 'cached').sort();
    expect(ran).toEqual(['p1 seed 1 · strength 0 (no LoRA)', 'p1 seed 1 · strength 1', 'p2 seed 1 · strength 0 (no LoRA)', 'p2 seed 1 · strength 1']);
    expect(cached).toEqual(['p1 seed 0 · strength 0 (no LoRA)', 'p1 seed 0 · strength 1', 'p2 seed 0 · strength 0 (no LoRA)', 'p2 seed 0 · strength 1']);
    expect(stageOutcome(second, 'render:progress')?.outcome).toBe('fresh');
    expect(cells('ab').cells).toHaveLength(8);
  });

  it('re-training the LoRA re-renders only the cells that use it', async () => {
    const before = cells('ab');
    writeFiles(project(), { 'lorafile.yaml': lorafile({ seeds: [0, 1], lr: '2.0e-2' }) });
    const third = await run(project());
    expect(third.code, third.stderr.slice(-2000)).toBe(0);
    expect(stageOutcome(third, 'train:shapes_lora')?.outcome).toBe('ran');
    const items = itemOutcomes(third, 'render:ab');
    for (const [label, outcome] of Object.entries(items)) expect([label, outcome]).toEqual([label, label.includes('strength 0') ? 'cached' : 'ran']);
    expect(Object.keys(items)).toHaveLength(8);
    const after = cells('ab');
    for (const [i, cell] of after.cells.entries()) {
      if (cell.strength === 0) expect(cell.sha256).toBe(before.cells[i].sha256);
      else expect(cell.sha256).not.toBe(before.cells[i].sha256);
    }
  });

  it('writes a report with every cell that opens in headless Chromium', async () => {
    const html = readFileSync(out('report.html'), 'utf8');
    const md = readFileSync(out('report.md'), 'utf8');
    for (const render of ['ab', 'progress']) {
      const data = cells(render);
      for (const cell of data.cells) {
        const base64 = readFileSync(out('renders', render, cell.file)).toString('base64');
        expect(html.includes(`data:image/png;base64,${base64}`), `${render}/${cell.file} inlined`).toBe(true);
        expect(md).toContain(`renders/${render}/${cell.file}`);
      }
      const grid = readFileSync(out('renders', render, 'grid.png')).toString('base64');
      expect(html.includes(`data:image/png;base64,${grid}`), `${render}/grid.png inlined`).toBe(true);
    }
    const has = (text: string) => html.includes(text);
    expect(has('<svg'), 'loss curve').toBe(true);
    expect(has('type="range"'), 'before/after sliders').toBe(true);
    expect(/0 errors<\/span>, <span class="">0 warnings/.test(html), 'validation summary').toBe(true);
    // every link resolves from out/
    for (const [, href] of html.matchAll(/href="([^"#]+)"/g)) expect(existsSync(resolve(out(), href)), href).toBe(true);
    expect(has('href="loras/shapes_lora/shapes_lora.safetensors"'), 'LoRA link').toBe(true);

    const shot = join(tmp.dir, 'report.png');
    const chromium = spawnSync(
      '/usr/bin/chromium',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        `--user-data-dir=${join(tmp.dir, 'chromium')}`,
        '--enable-logging=stderr',
        '--window-size=1000,1400',
        `--screenshot=${shot}`,
        `file://${out('report.html')}`,
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    expect(chromium.status, chromium.stderr).toBe(0);
    // page errors (script errors, blocked resources) are logged as CONSOLE lines
    expect(chromium.stderr).not.toMatch(/CONSOLE.*(Uncaught|Error|Failed)/);
    const meta = await sharp(shot).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 1000, 1400]);
    // a real rendering: not a blank page
    const stats = await sharp(shot).stats();
    expect(stats.channels[0].stdev).toBeGreaterThan(10);
    expect(dirname(shot)).toBe(tmp.dir);
  });
});

describe('lorabuild run: a render whose LoRA cannot train', () => {
  it('is skipped, naming the failed stage', async () => {
    const dir = join(tmp.dir, 'bad');
    writeFiles(dir, { 'lorafile.yaml': lorafile({ seeds: [0], lr: '1.0e-2' }) });
    await makeProject(dir, ['lineart, a circle', '   ', 'lineart, a loop']);
    const result = await run(dir);
    expect(result.code, result.stderr.slice(-2000)).toBe(1);
    expect(stageOutcome(result, 'validate:shapes')?.outcome).toBe('failed');
    const render = stageOutcome(result, 'render:ab');
    expect(render?.outcome).toBe('skipped');
    expect(String(render?.reason)).toMatch(/validate:shapes|train:shapes_lora/);
    expect(existsSync(join(dir, 'out', 'renders', 'ab', 'grid.png'))).toBe(false);
  });
});

describe('lorabuild run: ComfyUI sampling settings and prompt weights', () => {
  const lorafileWith = (renders: string) => `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora: { model: tiny, dataset: shapes, rank: 2, learning_rate: 1.0e-2, steps: 2, checkpoint_every: 2, resolution: 64 }
renders:
${renders}`;
  const weights = `  weights:
    lora: shapes_lora
    prompts: ["(lineart:1.0), a circle", "lineart, a circle", "(lineart:1.5), a circle"]
    seeds: [3]
    strengths: [0]
    sampler: euler_a
    scheduler: karras
    steps: 3
`;
  const img2img = `  img2img:
    lora: shapes_lora
    prompts: ["lineart, a circle"]
    seeds: [3]
    strengths: [0, 1]
    sampler: dpmpp_2m
    scheduler: karras
    steps: 4
    denoise: 0.5
    init_image: init.png
`;
  const initImage = (cx: number) =>
    sharp(Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="${cx}" cy="32" r="12" fill="black"/></svg>`)).png().toBuffer();

  it('weights prompts, notes an old sampler name, and re-noises an init image', async () => {
    const dir = join(tmp.dir, 'sampling');
    writeFiles(dir, { 'lorafile.yaml': lorafileWith(weights + img2img) });
    await makeProject(dir, ['lineart, a circle', 'lineart, a ring']);
    writeFiles(dir, { 'init.png': await initImage(20) });
    const result = await run(dir);
    expect(result.code, result.stderr.slice(-2000)).toBe(0);
    const read = (render: string) => JSON.parse(readFileSync(join(dir, 'out', 'renders', render, 'cells.json'), 'utf8'));

    const w = read('weights');
    expect([w.sampler, w.scheduler, w.denoise]).toEqual(['euler_ancestral', 'karras', 1]);
    // (lineart:1.0) is lineart: the same pixels, byte for byte (the PNGs differ only in the prompt
    // text they carry); weight 1.5 changes the picture
    const raw = (k: number) => sharp(join(dir, 'out', 'renders', 'weights', w.cells[k].file)).raw().toBuffer();
    expect((await raw(0)).equals(await raw(1))).toBe(true);
    expect((await raw(2)).equals(await raw(1))).toBe(false);
    expect(pngText(join(dir, 'out', 'renders', 'weights', w.cells[0].file)).parameters).toMatch(/^\(lineart:1\.0\), a circle\n/);
    expect(w.cells[0].parameters).toMatch(/Sampler: euler_ancestral, Scheduler: karras, /);
    // the old name is accepted with a note naming the new one, at its line
    const note = result.events
      .filter((e) => e.stage === 'render:weights' && Array.isArray(e.diagnostics))
      .flatMap((e) => e.diagnostics as { severity: string; code: string; message: string; line?: number }[])
      .find((d) => d.code === 'sampler-name');
    expect(note).toMatchObject({ severity: "info", line: 14 });
    expect(note!.message).toContain("sampler 'euler_a' is the old name of sampler: euler_ancestral");

    const i = read('img2img');
    expect([i.sampler, i.scheduler, i.denoise, i.init_image]).toEqual(['dpmpp_2m', 'karras', 0.5, 'init.png']);
    expect(i.cells[0].parameters).toMatch(/Sampler: dpmpp_2m, Scheduler: karras, CFG scale: 7.5, Seed: 3, Size: 64x64, Denoising strength: 0.5, /);
    // (the random tiny VAE does not reproduce an image, so that the init latent is what a cell starts
    // from is checked in the worker's tests, in latent space)
    // denoise is part of each cell's key
    writeFiles(dir, { 'lorafile.yaml': lorafileWith(weights + img2img.replace('denoise: 0.5', 'denoise: 1')) });
    const full = await run(dir);
    expect(full.code, full.stderr.slice(-2000)).toBe(0);
    const fullCells = read('img2img');
    expect(fullCells.cells[0].sha256).not.toBe(i.cells[0].sha256);
    expect(stageOutcome(full, 'render:weights')?.outcome).toBe('fresh');
    // and so is the init image's content
    writeFiles(dir, { 'init.png': await initImage(44) });
    const moved = await run(dir);
    expect(moved.code, moved.stderr.slice(-2000)).toBe(0);
    expect(Object.values(itemOutcomes(moved, 'render:img2img'))).toEqual(['ran', 'ran']);
    expect(read('img2img').cells[0].sha256).not.toBe(fullCells.cells[0].sha256);

    // a missing init image is found before anything runs, at its lorafile line, with the closest name
    writeFiles(dir, { 'lorafile.yaml': lorafileWith(img2img.replace('init.png', 'inti.png')) });
    const missing = await run(dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/lorafile\.yaml:18:\d+: error: render 'img2img': init_image inti\.png does not exist/);
    expect(missing.stderr).toContain("did you mean 'init.png'?");
  });

  it('refuses an old name that contradicts the scheduler, and a weight that is not finite', async () => {
    const dir = join(tmp.dir, 'sampling-bad');
    writeFiles(dir, {
      'lorafile.yaml': lorafileWith(`  bad:
    lora: shapes_lora
    prompts: ["a (cat:inf)"]
    sampler: dpmpp_2m_karras
    scheduler: normal
`),
    });
    const result = await runCli(['plan'], { cwd: dir, env: ENV });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/lorafile\.yaml:11:\d+: error: the weight of "cat" is Infinity, not a finite number/);
    expect(result.stderr).toMatch(/lorafile\.yaml:13:\d+: error: sampler .dpmpp_2m_karras' is the old name of sampler dpmpp_2m with scheduler karras, but scheduler is 'normal'/);
  });
});

describe('lorabuild run: an unknown sampler', () => {
  it('is a lorafile diagnostic naming the line and the samplers there are', async () => {
    const dir = join(tmp.dir, 'sampler');
    writeFiles(dir, { 'lorafile.yaml': lorafile({ seeds: [0], lr: '1.0e-2' }).replace('    columns: checkpoint\n', '    columns: checkpoint\n    sampler: plms\n') });
    const result = await run(dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/lorafile\.yaml:29:\d+/);
    expect(result.stderr).toMatch(/plms/);
    expect(result.stderr).toMatch(/euler/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });
});
