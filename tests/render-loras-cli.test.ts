// `lorabuild run` with LoRA files on `builtin: tiny` (lab part 1: apply a LoRA nobody in the class
// trained): every format changes the picture and the without arm is one shared cell; strength 0 on
// the UNet or the text encoder leaves that part as the base has it, byte for byte; stacks apply in
// order; a LoRA trained by lorabuild and used as a file renders the bytes of `lora: NAME`; LoRAs of
// another family, unknown keys and missing files stop the run with exit 2 before anything runs;
// trigger words warn; the report lists each LoRA.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeTempDir, runCli, writeFiles, type CliResult } from './helpers/cli.js';
import { fixtures, TINY, writeFixture, zeros } from './helpers/lora-fixtures.js';
import { writeRingShapes } from './helpers/shapes.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const run = (cwd: string, args: string[] = []): Promise<CliResult> => runCli(['run', '--json', ...args], { cwd, env: ENV, timeoutMs: 400_000 });

interface CellsJson {
  loras: { label: string; file?: string; family: string; kinds: string[]; ranks: number[]; triggers: string[] }[];
  cells: { file: string; sha256: string; strength: number; parameters: string; loras: { label: string; strength_model: number; strength_clip: number }[] }[];
}

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-render-loras-');
});
afterAll(() => tmp.cleanup());

const FORMATS = fixtures().map((f) => f.name);
const render = (name: string, loras: string, extra = '') => `  ${name}:
    model: tiny
    loras:
${loras}
    prompts: ["a red circle"]
    seeds: [0]
    steps: 3
${extra}`;
const entry = (file: string, more = '') => `      - { file: loras/${file}.safetensors${more} }\n`;

describe('lorabuild run: LoRA files on builtin tiny', () => {
  const p = () => join(tmp.dir, 'formats');
  const cells = (r: string) => JSON.parse(readFileSync(join(p(), 'out', 'renders', r, 'cells.json'), 'utf8')) as CellsJson;
  const lorafile = () =>
    [
      'version: 1',
      'models:',
      '  tiny: { builtin: tiny, seed: 0 }',
      'renders:',
      ...FORMATS.map((f) => render(f.replace(/-/g, '_'), entry(f))),
      render('clip_off', entry('text-encoder', ', strength_model: 1, strength_clip: 0'), '    strengths: [1]\n'),
      render('unet_off', entry('kohya-alpha', ', strength_model: 0, strength_clip: 1'), '    strengths: [1]\n'),
      render('stack_ab', entry('kohya-alpha') + entry('dora'), '    strengths: [0, 0.5, 1]\n'),
      render('stack_ba', entry('dora') + entry('kohya-alpha'), '    strengths: [1]\n'),
    ].join('\n');
  let first: CliResult;

  beforeAll(async () => {
    for (const f of fixtures()) await writeFixture(join(p(), 'loras', `${f.name}.safetensors`), f);
    writeFiles(p(), { 'lorafile.yaml': lorafile() });
    first = await run(p());
  }, 400_000);

  it('every format changes the picture; the without arm is rendered once for all renders', () => {
    expect(first.code, first.stderr.slice(-3000)).toBe(0);
    const baseLabel = 'p1 seed 0 · strength 0 (no LoRA)';
    const baseRuns = first.events.filter((e) => e.item === baseLabel);
    expect(baseRuns.map((e) => e.outcome).sort()).toEqual([...Array(baseRuns.length - 1).fill('cached'), 'ran']);
    expect(baseRuns.length).toBe(FORMATS.length + 1); // every format's render and stack_ab
    const base = cells('kohya_alpha').cells.find((c) => c.strength === 0)!.sha256;
    for (const f of FORMATS) {
      const data = cells(f.replace(/-/g, '_'));
      const [without, withLora] = [data.cells.find((c) => c.strength === 0)!, data.cells.find((c) => c.strength === 1)!];
      expect(without.sha256, f).toBe(base);
      expect(withLora.sha256, `${f} changes the picture`).not.toBe(base);
      expect(withLora.loras).toEqual([{ label: f, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), strength_model: 1, strength_clip: 1 }]);
      expect(withLora.parameters).toContain(`<lora:${f}:1>`);
      expect(data.loras[0]).toMatchObject({ label: f, file: `loras/${f}.safetensors`, family: 'SD1.x' });
    }
    expect(cells('locon').loras[0].kinds).toEqual(['LoCon']);
    expect(cells('loha').loras[0].kinds).toEqual(['LoHa']);
    expect(cells('lokr').loras[0].kinds).toEqual(['LoKr']);
    expect(cells('dora').loras[0].kinds).toEqual(['LoRA', 'DoRA']);
  });

  it('strength 0 on one part leaves it as the base has it: the text context, and the UNet', async () => {
    // pixels, not file bytes: the PNG's parameters text names the LoRA
    const pixels = (r: string, c: CellsJson['cells'][number]) => sharp(join(p(), 'out', 'renders', r, c.file)).raw().toBuffer();
    const base = await pixels('kohya_alpha', cells('kohya_alpha').cells.find((c) => c.strength === 0)!);
    // a text-encoder-only LoRA at strength_clip 0 (strength_model 1) renders the base picture; at 1 it does not
    const clipOff = cells('clip_off').cells;
    expect(clipOff).toHaveLength(1);
    expect(clipOff[0].loras).toEqual([{ label: 'text-encoder', sha256: expect.any(String), strength_model: 1, strength_clip: 0 }]);
    expect((await pixels('clip_off', clipOff[0])).equals(base)).toBe(true);
    expect((await pixels('text_encoder', cells('text_encoder').cells.find((c) => c.strength === 1)!)).equals(base)).toBe(false);
    // a UNet-only LoRA at strength_model 0 likewise
    expect((await pixels('unet_off', cells('unet_off').cells[0])).equals(base)).toBe(true);
    expect((await pixels('kohya_alpha', cells('kohya_alpha').cells.find((c) => c.strength === 1)!)).equals(base)).toBe(false);
    // both were really rendered, not taken from the without arm's cell
    for (const r of ['clip_off', 'unet_off']) expect(first.events.filter((e) => e.stage === `render:${r}` && typeof e.item === 'string' && e.item.startsWith('p1')).map((e) => e.outcome)).toEqual(['ran']);
  });

  it('stacks apply in order and strengths multiply every entry', () => {
    const ab = cells('stack_ab').cells;
    expect(ab.map((c) => c.loras.map((l) => `${l.label}@${l.strength_model}`))).toEqual([[], ['kohya-alpha@0.5', 'dora@0.5'], ['kohya-alpha@1', 'dora@1']]);
    expect(ab[2].parameters.split('\n')[0]).toBe('a red circle <lora:kohya-alpha:1> <lora:dora:1>');
    const ba = cells('stack_ba').cells[0];
    expect(ba.loras.map((l) => l.label)).toEqual(['dora', 'kohya-alpha']);
    expect(new Set([ab[1].sha256, ab[2].sha256, ba.sha256, ab[0].sha256]).size).toBe(4);
  });

  it('warns when no prompt has a trigger word, and the report lists each LoRA', () => {
    const warnings = first.events.filter((e) => Array.isArray(e.diagnostics)).flatMap((e) => e.diagnostics as { code: string; message: string; line?: number; col?: number }[]);
    const trigger = warnings.filter((d) => d.code === 'lora-trigger-missing');
    expect(trigger).toHaveLength(1);
    expect(trigger[0].message).toBe(`render 'kohya_no_alpha': no prompt contains a trigger word of kohya-no-alpha.safetensors ("retro80")`);
    const line = lorafile().split('\n').findIndex((l) => l.includes('loras/kohya-no-alpha.safetensors')) + 1;
    expect([trigger[0].line, trigger[0].col]).toEqual([line, lorafile().split('\n')[line - 1].indexOf('loras/') + 1]);
    const md = readFileSync(join(p(), 'out', 'report.md'), 'utf8');
    expect(md).toContain('### Render stack_ab');
    expect(md).toContain('LoRAs kohya-alpha + dora on tiny; 1 rows × 3 columns');
    expect(md).toMatch(/\| loras\/kohya-no-alpha\.safetensors \| SD1\.x LoRA \| 4 \| none \(scale 1\) \| 1 \| 1 \| retro80 \|/);
  });

  it('a second run renders nothing; editing a LoRA file re-renders only the cells that use it', async () => {
    const again = await run(p());
    expect(again.code).toBe(0);
    expect(again.events.filter((e) => e.outcome === 'ran')).toEqual([]);
    const f = fixtures().find((x) => x.name === 'lokr')!;
    f.tensors[`${TINY.linear.kohya}.alpha`] = { shape: [], v: Float32Array.of(3) };
    await writeFixture(join(p(), 'loras', 'lokr.safetensors'), f);
    const third = await run(p());
    expect(third.code, third.stderr.slice(-2000)).toBe(0);
    const ran = third.events.filter((e) => e.outcome === 'ran' && typeof e.item === 'string').map((e) => `${e.stage} ${e.item}`);
    expect(ran).toEqual(['render:lokr p1 seed 0 · strength 1']);
    const stale = third.events.find((e) => e.stage === 'render:lokr' && e.outcome === 'started');
    expect(String(stale?.reason)).toContain('loras/lokr.safetensors changed');
    // a strength edit is named by the entry it is on
    writeFiles(p(), { 'lorafile.yaml': lorafile().replace('loras/kohya-alpha.safetensors }', 'loras/kohya-alpha.safetensors, strength_model: 0.5 }') });
    const status = await runCli(['status'], { cwd: p(), env: ENV });
    expect(status.stdout).toMatch(/render:kohya_alpha +stale +loras\[0\]\.strength_model 1 -> 0\.5/);
    writeFiles(p(), { 'lorafile.yaml': lorafile() });
  }, 400_000);
});

describe('lorabuild check without the downloaded LoRA files (CI)', () => {
  it('takes their hashes from the lock and says so', async () => {
    const dir = join(tmp.dir, 'formats');
    const moved = join(tmp.dir, 'moved-dora.safetensors');
    copyFileSync(join(dir, 'loras', 'dora.safetensors'), moved);
    rmSync(join(dir, 'loras', 'dora.safetensors'));
    try {
      const check = await runCli(['check'], { cwd: dir, env: ENV, timeoutMs: 120_000 });
      expect(check.code, check.stdout + check.stderr).toBe(0);
      expect(check.stdout).toContain('loras/dora.safetensors is not on this machine: its hash is taken from lorafile.lock');
    } finally {
      copyFileSync(moved, join(dir, 'loras', 'dora.safetensors'));
    }
  }, 120_000);
});

describe('lorabuild run: LoRAs that do not fit stop before any compute', () => {
  const lorafile = (file: string, more = '') => `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes }
loras:
  shapes_lora: { model: tiny, dataset: shapes, rank: 2, steps: 2, checkpoint_every: 2, resolution: 64 }
renders:
  eighties:
    model: tiny
    loras:
      - { file: ${file}, strength_model: 0.8, strength_clip: 0.8${more} }
    prompts: ["80s, a man in a suit, film still"]
    seeds: [0, 1]
`;
  const k = (name: string, down: number[], up: number[]) => ({ [`${name}.lora_down.weight`]: zeros(down), [`${name}.lora_up.weight`]: zeros(up) });

  async function refused(dir: string, file: string, tensors: Record<string, ReturnType<typeof zeros>>, more = ''): Promise<CliResult> {
    if (Object.keys(tensors).length) await writeFixture(join(dir, file), { tensors });
    writeFiles(dir, { 'lorafile.yaml': lorafile(file, more), 'shapes/image/0.png': readFileSync(join(import.meta.dirname, '..', 'datasets', 'demo-lineart', 'image', '0.png')), 'shapes/text/0.txt': 'a line' });
    const result = await run(dir);
    expect(result.code, result.stderr).toBe(2);
    // nothing started: no stage events at all, no out/ folder
    expect(result.events.filter((e) => typeof e.stage === 'string')).toEqual([]);
    expect(existsSync(join(dir, 'out'))).toBe(false);
    return result;
  }

  it('an SDXL LoRA (SDXL keys and shapes, zero values) on an SD1 model: exit 2 naming both families at the entry', async () => {
    const dir = join(tmp.dir, 'sdxl');
    const result = await refused(dir, '80s_offset.safetensors', {
      ...k('lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k', [4, 2048], [640, 4]),
      ...k('lora_unet_input_blocks_4_1_transformer_blocks_1_attn1_to_q', [4, 640], [640, 4]),
      ...k('lora_te1_text_model_encoder_layers_0_self_attn_q_proj', [4, 768], [768, 4]),
      ...k('lora_te2_text_model_encoder_layers_0_self_attn_q_proj', [4, 1280], [1280, 4]),
    });
    const col = lorafile('80s_offset.safetensors').split('\n')[11].indexOf('80s_offset') + 1;
    expect(result.stderr).toContain(`lorafile.yaml:12:${col}: error: render 'eighties': 80s_offset.safetensors is an SDXL LoRA (cross-attention context 2048, a 1280-wide text encoder (OpenCLIP-G), SDXL-only module lora_te2_text_model_encoder_layers_0_self_attn_q_proj); tiny is lorabuild's tiny SD1 builtin`);
    expect(result.stderr).toContain('hint: an SDXL LoRA does not go on an SD1.x model');
  }, 60_000);

  it('an SD2 LoRA likewise', async () => {
    const result = await refused(join(tmp.dir, 'sd2'), 'sd2_style.safetensors', {
      ...k('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k', [4, 1024], [640, 4]),
      ...k('lora_te_text_model_encoder_layers_0_self_attn_q_proj', [4, 1024], [1024, 4]),
    });
    expect(result.stderr).toMatch(/error: render 'eighties': sd2_style\.safetensors is an SD2\.x LoRA \(cross-attention context 1024 \(OpenCLIP-H\)\); tiny is lorabuild's tiny SD1 builtin/);
  }, 60_000);

  it('an SD1.5 LoRA on the tiny builtin, and a missing file', async () => {
    const r = await refused(join(tmp.dir, 'sd15'), 'sd15.safetensors', k('lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k', [4, 768], [640, 4]));
    expect(r.stderr).toContain("sd15.safetensors is a LoRA for SD1.5 (cross-attention context 768); tiny is lorabuild's tiny SD1 builtin");
    const missing = await refused(join(tmp.dir, 'missing'), 'nowhere/80s.safetensors', {});
    expect(missing.stderr).toMatch(/error: render 'eighties': LoRA file nowhere\/80s\.safetensors does not exist \(looked at .*nowhere\/80s\.safetensors\)/);
  }, 60_000);

  it('unknown keys: exit 2 naming the first ones; ignore_unknown_keys: true renders with a warning', async () => {
    const dir = join(tmp.dir, 'unknown');
    const extra = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`lora_unet_mystery_${i}.lora_down.weight`, zeros([2, 8])]));
    const tensors = { ...fixtures().find((f) => f.name === 'kohya-alpha')!.tensors, ...extra };
    const result = await refused(dir, 'partial.safetensors', tensors);
    expect(result.stderr).toContain(
      "error: render 'eighties': partial.safetensors: 7 keys match no module of tiny (lorabuild's tiny SD1 builtin): lora_unet_mystery_0.lora_down.weight, lora_unet_mystery_1.lora_down.weight, lora_unet_mystery_2.lora_down.weight, lora_unet_mystery_3.lora_down.weight, lora_unet_mystery_4.lora_down.weight, … (2 more)",
    );
    expect(result.stderr).toContain("set 'ignore_unknown_keys: true' on this entry to apply the 2 modules that fit");
    writeFiles(dir, { 'lorafile.yaml': lorafile('partial.safetensors', ', ignore_unknown_keys: true') });
    const ok = await run(dir, ['eighties']);
    expect(ok.code, ok.stderr.slice(-2000)).toBe(0);
    const warning = ok.events.flatMap((e) => (Array.isArray(e.diagnostics) ? (e.diagnostics as { code: string; severity: string; message: string }[]) : [])).find((d) => d.code === 'lora-unknown-keys');
    expect(warning).toMatchObject({ severity: 'warning', message: expect.stringContaining('7 keys match no module of tiny and are ignored (ignore_unknown_keys: true)') });
    const data = JSON.parse(readFileSync(join(dir, 'out', 'renders', 'eighties', 'cells.json'), 'utf8')) as CellsJson;
    expect(new Set(data.cells.map((c) => c.sha256)).size).toBe(4); // 2 seeds x (without, with)
  }, 400_000);
});

describe('a LoRA trained by lorabuild, used as a file', () => {
  it('renders the same bytes as lora: NAME at strength 1', async () => {
    const trained = join(tmp.dir, 'trained');
    const captions = ['lineart, a circle', 'lineart, a ring', 'lineart, a loop'];
    await writeRingShapes(trained, captions);
    const common = `    prompts: ["lineart, a circle"]\n    seeds: [3]\n    strengths: [1]\n    steps: 3\n`;
    writeFiles(trained, {
      'lorafile.yaml': `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  shapes: { folder: shapes, trigger: lineart, rules: { min_size: 64 } }
loras:
  shapes_lora: { model: tiny, dataset: shapes, rank: 2, learning_rate: 1.0e-2, steps: 4, checkpoint_every: 2, resolution: 64 }
renders:
  ab:
    lora: shapes_lora
${common}`,
    });
    const a = await run(trained);
    expect(a.code, a.stderr.slice(-2000)).toBe(0);
    const viaName = JSON.parse(readFileSync(join(trained, 'out', 'renders', 'ab', 'cells.json'), 'utf8')) as CellsJson;

    // another project, its own cache: nothing is shared, the file is rendered from scratch
    const other = join(tmp.dir, 'as-file');
    writeFiles(other, { 'lorafile.yaml': `version: 1\nmodels:\n  tiny: { builtin: tiny, seed: 0 }\nrenders:\n  ab:\n    model: tiny\n    loras:\n      - { file: shapes_lora.safetensors, strength_model: 1 }\n${common}` });
    copyFileSync(join(trained, 'out', 'loras', 'shapes_lora', 'shapes_lora.safetensors'), join(other, 'shapes_lora.safetensors'));
    const b = await run(other);
    expect(b.code, b.stderr.slice(-2000)).toBe(0);
    expect(b.events.filter((e) => e.stage === 'render:ab' && e.item === 'p1 seed 3 · strength 1').map((e) => e.outcome)).toEqual(['ran']);
    const viaFile = JSON.parse(readFileSync(join(other, 'out', 'renders', 'ab', 'cells.json'), 'utf8')) as CellsJson;
    expect(viaFile.cells[0].sha256).toBe(viaName.cells[0].sha256);
    expect(readFileSync(join(other, 'out', 'renders', 'ab', viaFile.cells[0].file))).toEqual(readFileSync(join(trained, 'out', 'renders', 'ab', viaName.cells[0].file)));
  }, 400_000);
});
