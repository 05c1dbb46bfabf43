import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { wd14Pixels, clipPixels, CLIP_MEAN, CLIP_STD } from '../src/onnx/preprocess.js';
import { Tagger, draftCaption, tagText } from '../src/onnx/tagger.js';
import { ClipScorer, dot } from '../src/onnx/clip.js';
import { scoreCells } from '../src/onnx/score.js';
import { OnnxModelError } from '../src/onnx/signature.js';
import { tempDirs } from './helpers/cli.js';

const temps = tempDirs();
afterAll(temps.cleanup);

const repo = resolve(import.meta.dirname, '..');
let models: string;
let weights: { clip_dim: number; vision_w: number[][] };

async function solid(width: number, height: number, rgb: [number, number, number]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
}

beforeAll(() => {
  models = temps.make('lb-onnx-');
  execFileSync('/usr/bin/python3', [join(repo, 'tests/fixtures/onnx/make_models.py'), models]);
  weights = JSON.parse(readFileSync(join(models, 'weights.json'), 'utf8'));
});

describe('preprocessing', () => {
  it('WD14: BGR order, 0..255, NHWC, white padding to a centred square', async () => {
    // 448 wide, 224 high: left half (10,20,30), right half (200,100,50); padded with 112 white rows top and bottom
    const left = await sharp({ create: { width: 224, height: 224, channels: 3, background: { r: 10, g: 20, b: 30 } } }).png().toBuffer();
    const img = await sharp({ create: { width: 448, height: 224, channels: 3, background: { r: 200, g: 100, b: 50 } } })
      .composite([{ input: left, left: 0, top: 0 }])
      .png()
      .toBuffer();
    const px = await wd14Pixels(img);
    expect(px.length).toBe(448 * 448 * 3);
    const at = (y: number, x: number) => Array.from(px.slice((y * 448 + x) * 3, (y * 448 + x) * 3 + 3));
    expect(at(0, 0)).toEqual([255, 255, 255]); // padding
    expect(at(447, 447)).toEqual([255, 255, 255]);
    expect(at(200, 10)).toEqual([30, 20, 10]); // B, G, R
    expect(at(300, 400)).toEqual([50, 100, 200]);
  });

  it('CLIP: shorter side to 224, centre crop, CLIP mean/std, NCHW', async () => {
    const img = await solid(600, 300, [255, 0, 128]);
    const px = await clipPixels(img);
    expect(px.length).toBe(3 * 224 * 224);
    const plane = 224 * 224;
    const expected = [255, 0, 128].map((v, c) => (v / 255 - CLIP_MEAN[c]) / CLIP_STD[c]);
    for (const i of [0, 1000, plane - 1]) {
      for (let c = 0; c < 3; c++) expect(px[c * plane + i]).toBeCloseTo(expected[c], 5);
    }
  });
});

describe('WD14 tagger', () => {
  it('scores tags, applies per-category thresholds, sorts by confidence, prepends the trigger', async () => {
    const tagger = await Tagger.load(join(models, 'tagger'));
    const [scores] = await tagger.score([await solid(448, 448, [255, 0, 0])]);
    // model: sigmoid((B,G,R)/255 @ W + b) with (B,G,R) = (0,0,1): logits = W[R] + b
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    // (ReduceMean over 200k float32 values is only accurate to ~1e-3)
    expect(scores[3]).toBeCloseTo(sig(4 - 1), 2); // red_theme
    expect(scores[2]).toBeCloseTo(sig(1 - 0.5), 2); // 1girl
    const tags = tagger.select(scores);
    expect(tags.map((t) => t.name)).toEqual(['red_theme', '1girl']); // pikachu sig(1)=0.73 < 0.85; ratings never
    expect(draftCaption(tags, 'pokemon')).toBe('pokemon, red theme, 1girl');
    const loose = tagger.select(scores, { general: 0.35, character: 0.7 });
    expect(loose.map((t) => t.name)).toEqual(['red_theme', 'pikachu', '1girl']);
    expect(tagText('^_^')).toBe('^_^');
  });

  it('rejects a model whose inputs do not match, naming what it has', async () => {
    await expect(Tagger.load(join(models, 'bad'))).rejects.toThrow(OnnxModelError);
    await expect(Tagger.load(join(models, 'bad'))).rejects.toThrow(/expected input input_1: float32\[N, 448, 448, 3\], but the model has inputs images: float32\[\?, 3, 224, 224\]/);
    await expect(Tagger.load(join(models, 'nowhere'))).rejects.toThrow(/missing model.onnx/);
  });
});

describe('CLIP scoring', () => {
  it('embeds texts and images with unit length, and scores arms against the strength-0 arm', async () => {
    const clip = await ClipScorer.load(join(models, 'clip'));
    const row = (ids: number[]) => [49406, ...ids, ...Array(76 - ids.length).fill(49407)];
    const [t1, t2] = await clip.embedTexts([row([320, 1125]), row([2368])]);
    expect(t1.length).toBe(weights.clip_dim);
    expect(dot(t1, t1)).toBeCloseTo(1, 5);
    // text model: mean of the 77 token embeddings (token_embedding.npy: float32 [49408, dim] after a 128-byte header)
    const npy = readFileSync(join(models, 'clip', 'token_embedding.npy'));
    const table = new Float32Array(npy.buffer.slice(npy.byteOffset + 128, npy.byteOffset + npy.length));
    const ids = row([320, 1125]);
    const meanVec = Array.from({ length: weights.clip_dim }, (_, j) => ids.reduce((s, id) => s + table[id * weights.clip_dim + j], 0) / 77);
    const len = Math.hypot(...meanVec);
    meanVec.forEach((v, j) => expect(t1[j]).toBeCloseTo(v / len, 4));
    expect(Array.from(t2)).not.toEqual(Array.from(t1));
    const [red, blue] = await clip.embedImages([await solid(300, 300, [255, 0, 0]), await solid(224, 224, [0, 0, 255])]);
    // vision model: channel means @ W; check red against the formula
    const m = [0, 1, 2].map((c) => ((c === 0 ? 1 : 0) - CLIP_MEAN[c]) / CLIP_STD[c]);
    const raw = weights.vision_w[0].map((_, j) => m.reduce((s, mc, c) => s + mc * weights.vision_w[c][j], 0));
    const norm = Math.hypot(...raw);
    raw.forEach((v, j) => expect(red[j]).toBeCloseTo(v / norm, 4));

    const summary = scoreCells(
      [
        { cell: 'p0 s0 0', arm: 'strength 0', strength: 0, image: blue, prompt: t1 },
        { cell: 'p0 s0 1', arm: 'strength 1', strength: 1, image: red, prompt: t1 },
      ],
      [red],
    );
    expect(summary.cells[1].clipI).toBeCloseTo(1, 5); // identical to the training image
    expect(summary.cells[0].clipI).toBeCloseTo(dot(blue, red), 5);
    expect(summary.effect).toEqual([{ arm: 'strength 1', clipT: summary.arms[1].clipT - summary.arms[0].clipT, clipI: summary.arms[1].clipI - summary.arms[0].clipI }]);
    expect(summary.effect[0].clipI).toBeGreaterThan(0);
  });
});
