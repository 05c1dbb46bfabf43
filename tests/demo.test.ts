// The README's first command on a fresh machine: the repository's top-level lorafile.yaml (the
// pretrained builtin toy model) and datasets/demo-lineart, copied to a temp folder, built end to end
// by `lorabuild run`: a LoRA, the A/B grid and out/report.html; the second run executes nothing; and
// the result passes `lorabuild check`. It trains for real, so it is one of the slowest suites.
// The LoRA must show: measured with simple pixel counts (tests/helpers/pixels.ts), the cells with
// the LoRA have shares of near-white background and of dark stroke pixels closer to those of the
// line-art dataset than the strength-0 cells of the same prompts and seeds, by a stated margin.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { makeTempDir, REPO_ROOT, runCli } from './helpers/cli.js';
import { inspectSafetensors } from '../src/safetensors/inspect.js';
import { pictureStats, readRgb, type PictureStats } from './helpers/pixels.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '2', MKL_NUM_THREADS: '2' };
const TIMEOUT = 30 * 60_000;
// how much closer (in share of all pixels) to the line-art dataset the LoRA arm must be than strength 0
const NEAR_WHITE_MARGIN = 0.15;
const DARK_MARGIN = 0.008;

interface Demo {
  loras: Record<string, { steps: number; rank: number; resolution: number }>;
  renders: Record<string, { prompts: string[]; seeds: number[]; strengths: number[] }>;
}

let tmp: { dir: string; cleanup: () => void };
let demo: Demo;
beforeAll(() => {
  tmp = makeTempDir('lorabuild-demo-');
  cpSync(join(REPO_ROOT, 'lorafile.yaml'), join(tmp.dir, 'lorafile.yaml'));
  cpSync(join(REPO_ROOT, 'datasets', 'demo-lineart'), join(tmp.dir, 'datasets', 'demo-lineart'), { recursive: true });
  demo = parseYaml(readFileSync(join(tmp.dir, 'lorafile.yaml'), 'utf8')) as Demo;
});
afterAll(() => tmp?.cleanup());

describe('the demo lorafile end to end', () => {
  it(
    'builds the LoRA, the A/B grid and the report; a second run executes nothing; check passes',
    async () => {
      const first = await runCli(['run', '--json'], { cwd: tmp.dir, env: ENV, timeoutMs: TIMEOUT });
      expect(first.code, first.stderr + first.stdout.slice(-3000)).toBe(0);
      const ran = first.events.filter((e) => e.item === undefined && e.outcome === 'ran').map((e) => String(e.stage).split(':')[0]);
      expect(new Set(ran)).toEqual(new Set(['fetch', 'prepare', 'validate', 'train', 'render', 'report']));

      const [loraName, lora] = Object.entries(demo.loras)[0];
      const loraFile = join(tmp.dir, 'out', 'loras', loraName, `${loraName}.safetensors`);
      expect(existsSync(loraFile)).toBe(true);
      const info = await inspectSafetensors(loraFile);
      expect(info.kind).toBe('lora');
      expect(info.lora?.ranks).toEqual([lora.rank]);
      expect(info.metadata.ss_steps).toBe(String(lora.steps));
      expect(info.lora?.fit.fits).toBe(true);

      const [renderName, render] = Object.entries(demo.renders)[0];
      const grid = join(tmp.dir, 'out', 'renders', renderName, 'grid.png');
      expect(readFileSync(grid).subarray(1, 4).toString('latin1')).toBe('PNG');
      const cells = JSON.parse(readFileSync(join(tmp.dir, 'out', 'renders', renderName, 'cells.json'), 'utf8')) as { cells: { strength: number; file: string }[] };
      expect(cells.cells).toHaveLength(render.prompts.length * render.seeds.length * render.strengths.length);
      expect(new Set(cells.cells.map((c) => c.strength))).toEqual(new Set(render.strengths));
      const html = readFileSync(join(tmp.dir, 'out', 'report.html'), 'utf8');
      expect(html).toContain(loraName);
      expect(html).toContain('data:image/png;base64,');
      expect(html).toContain('lorabuild&#39;s builtin toy model: a small SD1-architecture model pretrained');

      // the LoRA effect, measured: shares of near-white and dark pixels move toward the dataset's
      const mean = (stats: PictureStats[], key: 'nearWhite' | 'dark') => stats.reduce((s, x) => s + x[key], 0) / stats.length;
      const datasetImages = readdirSync(join(tmp.dir, 'datasets', 'demo-lineart', 'image'));
      const dataset = await Promise.all(datasetImages.map(async (f) => pictureStats(await readRgb(join(tmp.dir, 'datasets', 'demo-lineart', 'image', f), lora.resolution))));
      const arm = async (strength: number) =>
        Promise.all(cells.cells.filter((c) => c.strength === strength).map(async (c) => pictureStats(await readRgb(join(tmp.dir, 'out', 'renders', renderName, c.file)))));
      const [without, withLora] = [await arm(0), await arm(Math.max(...render.strengths))];
      const effect = Object.fromEntries(
        (['nearWhite', 'dark'] as const).map((key) => {
          const target = mean(dataset, key);
          return [key, { dataset: target, without: mean(without, key), with: mean(withLora, key), closer: Math.abs(mean(without, key) - target) - Math.abs(mean(withLora, key) - target) }];
        }),
      );
      const shown = JSON.stringify(effect, null, 1);
      console.log(`demo LoRA effect: ${shown}`);
      expect(effect.nearWhite.closer, shown).toBeGreaterThanOrEqual(NEAR_WHITE_MARGIN);
      expect(effect.dark.closer, shown).toBeGreaterThanOrEqual(DARK_MARGIN);

      const second = await runCli(['run', '--json'], { cwd: tmp.dir, env: ENV, timeoutMs: 120_000 });
      expect(second.code, second.stderr).toBe(0);
      const outcomes = second.events.filter((e) => e.item === undefined && typeof e.outcome === 'string' && e.outcome !== 'started');
      expect(outcomes.length).toBe(6);
      expect(outcomes.every((e) => e.outcome === 'fresh'), JSON.stringify(outcomes)).toBe(true);
      expect(second.events.at(-1)).toMatchObject({ summary: { ran: 0, cached: 0, failed: 0 } });

      const check = await runCli(['check'], { cwd: tmp.dir, env: ENV, timeoutMs: 300_000 });
      expect(check.code, check.stdout + check.stderr).toBe(0);
    },
    TIMEOUT,
  );
});
