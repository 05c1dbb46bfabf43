// The pretrained `builtin: toy` model that ships in assets/toy: its weights match the sha256 recorded
// next to scripts/pretrain_toy.py and in its card, it loads as an SD1 model of the toy architecture,
// and it draws what its pretraining captions say. 20 prompts of the pretraining set x 2 seeds go
// through the real worker's `sample` op; each picture is measured with simple code that knows nothing
// of the model (tests/helpers/pixels.ts): the dominant hue of the pixels that differ from the
// background must be nearest to the prompted color's hue (of the six hue-distinct colors) in at
// least 80 % of the pictures, and the shape must cover roughly the area that shape had in the
// pretraining set in at least 80 % of them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkerClient } from '../src/worker/client.js';
import { inspectSafetensors } from '../src/safetensors/inspect.js';
import { readToyCard, TOY_CARD_FILE, TOY_MODEL_FILE, ToyCardError, toyModelProblem } from '../src/stages/toy-model.js';
import { resolveClipTokenizer } from '../src/text/resolve.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';
import { hsv, hueDistance, pictureStats, readRgb } from './helpers/pixels.js';

const PYTHON = '/usr/bin/python3';
const ENV = { OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
// pink and brown share their hues with red and orange, so the hue test leaves them out
const HUE_COLORS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple'];
const SHAPES = ['circle', 'square', 'triangle', 'star', 'heart', 'house', 'diamond', 'cross'];
const BACKGROUNDS = ['white', 'black', 'gray'];
const PROMPTS = Array.from({ length: 20 }, (_, i) => {
  const color = HUE_COLORS[i % HUE_COLORS.length];
  const shape = SHAPES[(i + Math.floor(i / HUE_COLORS.length)) % SHAPES.length];
  return { color, shape, text: `a ${color} ${shape} on a ${BACKGROUNDS[i % BACKGROUNDS.length]} background`.replace(/^a orange/, 'an orange') };
});
const SEEDS = [0, 1];

const tmp = makeTempDir('lorabuild-toy-');
afterAll(() => tmp.cleanup());

describe('the shipped toy model', () => {
  it('matches the sha256 recorded next to the pretraining script and in its card', () => {
    const digest = createHash('sha256').update(readFileSync(TOY_MODEL_FILE)).digest('hex');
    const recorded = readFileSync(join(REPO_ROOT, 'scripts', 'pretrain_toy.sha256'), 'utf8');
    expect(recorded).toBe(`${digest}  assets/toy/toy.safetensors\n`);
    expect(readToyCard().sha256).toBe(digest);
  });

  it('is an fp16 SD1 checkpoint of the toy architecture with its pretraining record', async () => {
    const info = await inspectSafetensors(TOY_MODEL_FILE);
    expect(info.kind).toBe('checkpoint');
    expect(info.checkpoint).toMatchObject({ layout: 'ldm', family: 'sd1', arch: 'toy' });
    expect(Object.keys(info.dtypes)).toEqual(['F16']);
    expect(info.bytes).toBeLessThan(12e6);
    const record = JSON.parse(info.metadata['lorabuild.pretraining']) as { torch: string; seed: number };
    expect(record.torch).toMatch(/^\d+\.\d+/);
    expect(typeof record.seed).toBe('number');
  });

  it('refuses a card without a well-formed sha256, naming the file', () => {
    const bad = join(tmp.dir, 'toy.json');
    const card = JSON.parse(readFileSync(TOY_CARD_FILE, 'utf8')) as Record<string, unknown>;
    writeFileSync(bad, JSON.stringify({ ...card, sha256: 'abc' }));
    expect(() => readToyCard(bad)).toThrow(ToyCardError);
    expect(() => readToyCard(bad)).toThrow(`${bad}: "sha256" must be 64 hex digits`);
    expect(() => readToyCard(join(tmp.dir, 'missing.json'))).toThrow(/missing\.json: ENOENT/);
  });

  it('names a missing weights file or an unreadable card before anything loads (pre-flight and the model stage)', () => {
    expect(toyModelProblem()).toBeNull();
    expect(toyModelProblem(join(tmp.dir, 'gone.safetensors'))).toBe(`the shipped toy model ${join(tmp.dir, 'gone.safetensors')} is missing`);
    expect(toyModelProblem(TOY_MODEL_FILE, join(tmp.dir, 'missing.json'))).toMatch(/^the card of the shipped toy model is unreadable: .*missing\.json: ENOENT/);
  });
});

describe('the toy model draws its pretraining captions', () => {
  let worker: WorkerClient;
  beforeAll(async () => {
    worker = await WorkerClient.start({ python: PYTHON, env: ENV });
  }, 120_000);
  afterAll(async () => worker?.close());

  it('gives the prompted color as the dominant hue in >= 80 % of 40 pictures, and about the pretraining area', async () => {
    const card = readToyCard();
    const tokenizer = await resolveClipTokenizer(undefined);
    const uncond = tokenizer.encodePadded('').ids;
    const cells = PROMPTS.flatMap((p, i) =>
      SEEDS.map((seed) => ({
        cond_ids: tokenizer.encodePadded(p.text).ids,
        uncond_ids: uncond,
        seed,
        width: 64,
        height: 64,
        sampler: 'euler',
        steps: 20,
        cfg: 5,
        lora: null,
        out: join(tmp.dir, `p${i}-s${seed}.png`),
        parameters: p.text,
      })),
    );
    await worker.request('sample', { model: TOY_MODEL_FILE, arch: 'toy', clip_skip: 1, cells });

    const refHue = Object.fromEntries(HUE_COLORS.map((c) => [c, hsv(...card.palette[c]).h]));
    const results = [];
    for (const [i, cell] of cells.entries()) {
      const prompt = PROMPTS[Math.floor(i / SEEDS.length)];
      const stats = pictureStats(await readRgb(cell.out));
      const nearest = stats.dominantHue === null ? null : HUE_COLORS.reduce((a, b) => (hueDistance(stats.dominantHue!, refHue[a]) <= hueDistance(stats.dominantHue!, refHue[b]) ? a : b));
      const area = card.filled_area[prompt.shape];
      results.push({ prompt: prompt.text, seed: cell.seed, hue: stats.dominantHue, nearest, hueOk: nearest === prompt.color, area: +stats.shapeFraction.toFixed(3), areaOk: stats.shapeFraction >= area.min * 0.5 && stats.shapeFraction <= area.max * 1.5 });
    }
    const table = JSON.stringify(results, null, 1);
    console.log(`toy model: hue right in ${results.filter((r) => r.hueOk).length}/${results.length}, area right in ${results.filter((r) => r.areaOk).length}/${results.length}`);
    expect(results.filter((r) => r.hueOk).length, table).toBeGreaterThanOrEqual(0.8 * results.length);
    expect(results.filter((r) => r.areaOk).length, table).toBeGreaterThanOrEqual(0.8 * results.length);
  }, 120_000);
});
