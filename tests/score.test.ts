// score:RENDER end to end on the builtin tiny model with a tiny CLIP-shaped ONNX pair: scores per
// cell and arm, the LoRA effect, and per-image caching (adding a seed embeds only the new cells).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, tempDirs, runCli, writeFiles } from './helpers/cli.js';
import { CLIP_TOKENIZER_DIR as CLIP_TOKENIZER } from './helpers/reference.js';

const temps = tempDirs();
afterAll(temps.cleanup);

let models: string;

beforeAll(() => {
  models = temps.make('lb-score-models-');
  execFileSync('/usr/bin/python3', [join(REPO_ROOT, 'tests/fixtures/onnx/make_models.py'), models]);
});

const lorafile = (seeds: number[]) => `version: 1
models:
  tiny: { builtin: tiny }
datasets:
  shapes:
    folder: data
    rules: { min_size: 32 }
loras:
  shapes_lora: { model: tiny, dataset: shapes, steps: 4, checkpoint_every: 4, resolution: 64, learning_rate: 1.0e-3 }
renders:
  ab:
    lora: shapes_lora
    prompts: ["a red square"]
    seeds: [${seeds.join(', ')}]
    strengths: [0, 1]
    steps: 2
    score: { clip: ${join(models, 'clip')} }
`;

describe('score stage', () => {
  it('scores every cell, averages per arm, reports the LoRA effect, and caches embeddings per image', async () => {
    const dir = temps.make();
    const red = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#d02020' } }).png().toBuffer();
    const blue = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#2020d0' } }).png().toBuffer();
    writeFiles(dir, {
      'lorafile.yaml': lorafile([0]),
      'data/image/0.png': red,
      'data/text/0.txt': 'a red square',
      'data/image/1.png': blue,
      'data/text/1.txt': 'a blue square',
    });
    const env = { LORABUILD_CLIP_TOKENIZER: CLIP_TOKENIZER, LORABUILD_THREADS: '1' };
    const first = await runCli(['run', '--json'], { cwd: dir, env, timeoutMs: 600_000 });
    expect(first.code, first.stderr).toBe(0);
    const scores = JSON.parse(readFileSync(join(dir, 'out/renders/ab/scores/scores.json'), 'utf8'));
    expect(scores.cells).toHaveLength(2);
    expect(scores.arms.map((a: { arm: string; cells: number }) => [a.arm, a.cells])).toEqual([['strength 0 (no LoRA)', 1], ['strength 1', 1]]);
    for (const c of scores.cells) {
      expect(c.clipT).toBeGreaterThanOrEqual(-1);
      expect(c.clipT).toBeLessThanOrEqual(1);
      expect(c.clipI).toBeGreaterThanOrEqual(-1);
      expect(c.clipI).toBeLessThanOrEqual(1);
    }
    const [arm0, arm1] = scores.arms;
    expect(scores.effect).toEqual([{ arm: 'strength 1', clipT: arm1.clipT - arm0.clipT, clipI: arm1.clipI - arm0.clipI }]);
    expect(readFileSync(join(dir, 'out/renders/ab/scores/scores.md'), 'utf8')).toContain('LoRA effect (strength 1 − strength 0)');
    const report = readFileSync(join(dir, 'out/report.md'), 'utf8');
    expect(report).toContain('| strength 1 | 1 |');
    expect(report).toContain('LoRA effect, strength 1 vs strength 0: CLIP-T');
    expect(readFileSync(join(dir, 'out/report.html'), 'utf8')).toContain('<table class="scores">');
    // the scores are grade facts: a rubric can ask for a LoRA effect
    writeFileSync(
      join(dir, 'rubric.yaml'),
      `title: scores\nchecks:\n  - id: scored\n    title: the render is scored\n    points: 1\n    expect: renders.ab.scores.effect.clip_i >= -2\n  - id: strong\n    title: CLIP-I rises by at least 2\n    points: 1\n    expect: renders.ab.scores.effect.clip_i >= 2\n`,
    );
    const graded = await runCli(['grade', '--rubric', 'rubric.yaml', '--json', 'grade.json'], { cwd: dir, env, timeoutMs: 600_000 });
    expect(graded.code, graded.stderr).toBe(1);
    const grade = JSON.parse(readFileSync(join(dir, 'grade.json'), 'utf8'));
    expect(grade.checks.map((c: { id: string; passed: boolean }) => [c.id, c.passed])).toEqual([['scored', true], ['strong', false]]);
    expect(grade.facts.renders.ab.scores.effect.clip_i).toBeCloseTo(arm1.clipI - arm0.clipI, 3);

    const embedded = first.events.filter((e) => e.stage === 'score:ab' && e.outcome === 'ran' && typeof e.item === 'string');
    expect(embedded.map((e) => e.item).filter((i) => String(i).startsWith('clip-image train'))).toHaveLength(2);

    // one more seed: only its two cells are embedded; training images and the prompt come from the cache
    writeFileSync(join(dir, 'lorafile.yaml'), lorafile([0, 1]));
    const second = await runCli(['run', '--json'], { cwd: dir, env, timeoutMs: 600_000 });
    expect(second.code, second.stderr).toBe(0);
    const ran = second.events.filter((e) => e.stage === 'score:ab' && e.outcome === 'ran' && typeof e.item === 'string').map((e) => String(e.item));
    expect(ran.every((i) => i.startsWith('clip-image') && !i.startsWith('clip-image train'))).toBe(true);
    expect(ran).toHaveLength(2);
    expect(JSON.parse(readFileSync(join(dir, 'out/renders/ab/scores/scores.json'), 'utf8')).cells).toHaveLength(4);
  });
});
