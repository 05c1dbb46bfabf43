// `lorabuild run` on a project whose captions have errors: validation stops the build before
// training (exit 1) and prints the diagnostics compiler style; fixing the captions lets it pass.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const tmp = makeTempDir('lorabuild-validate-cli-');
afterAll(tmp.cleanup);

const LORAFILE = `version: 1
models:
  tiny: { builtin: tiny, seed: 0 }
datasets:
  sketches: { folder: sketches, trigger: one-line-art, rules: { min_size: 64 } }
loras:
  sketch_lora: { model: tiny, dataset: sketches, steps: 20, checkpoint_every: 10, resolution: 64 }
`;

beforeAll(async () => {
  const files: Record<string, string | Buffer> = { 'lorafile.yaml': LORAFILE };
  for (let i = 0; i < 3; i++) {
    files[`sketches/image/${i}.png`] = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 40 * i, g: 90, b: 200 } } }).png().toBuffer();
  }
  files['sketches/text/0.txt'] = 'one-line-art, a face, side view';
  files['sketches/text/2.txt'] = '   \n';
  files['sketches/text/3.txt'] = 'one-line-art, a cup of coffee on a table';
  writeFiles(tmp.dir, files);
});

describe('lorabuild run with caption errors', () => {
  it('stops before training with exit code 1 and prints the diagnostics', async () => {
    const r = await runCli(['run'], { cwd: tmp.dir, env: ENV, timeoutMs: 300_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sketches/image/1.png: error: image has no caption\n  hint: write its caption in sketches/text/1.txt, or remove the image; rules.missing_caption: off silences this');
    expect(r.stderr).toContain('sketches/text/2.txt:1:1: error: caption is only whitespace\n  1 |    \n    | ^\n');
    expect(r.stderr).toContain('sketches/text/3.txt:1: error: caption has no image');
    expect(r.stdout + r.stderr).toMatch(/FAILED\s+validate:sketches .*: 3 errors in captions/);
    expect(r.stdout + r.stderr).toMatch(/skipped\s+train:sketch_lora: validate:sketches failed/);
    expect(existsSync(join(tmp.dir, 'out', 'loras'))).toBe(false);
    const report = readFileSync(join(tmp.dir, 'out', 'datasets', 'sketches', 'validation.md'), 'utf8');
    expect(report).toContain('4 items, **3 errors**, 0 warnings. Errors block training.');
  });

  it('reports the stages and diagnostics as JSON lines with --json', async () => {
    const r = await runCli(['run', '--json'], { cwd: tmp.dir, env: ENV, timeoutMs: 300_000 });
    expect(r.code).toBe(1);
    const validate = r.events.find((e) => e.stage === 'validate:sketches' && e.item === undefined && e.outcome === 'failed');
    expect(validate).toMatchObject({ reason: '3 errors in captions' });
    const diagnostics = r.events.filter((e) => e.stage === 'validate:sketches' && Array.isArray(e.diagnostics)).flatMap((e) => e.diagnostics as Record<string, unknown>[]);
    expect(diagnostics.map((d) => [d.severity, d.code, d.file, d.line ?? null])).toEqual([
      ['error', 'missing_caption', 'sketches/image/1.png', null],
      ['error', 'empty_caption', 'sketches/text/2.txt', 1],
      ['error', 'missing_image', 'sketches/text/3.txt', 1],
    ]);
    const train = r.events.find((e) => e.stage === 'train:sketch_lora' && e.item === undefined && e.outcome !== 'started');
    expect(train?.outcome).toBe('skipped');
  });

  it('passes validation once the captions are fixed (warnings do not block)', async () => {
    writeFileSync(join(tmp.dir, 'sketches/text/1.txt'), 'a cup of coffee on a table');
    writeFileSync(join(tmp.dir, 'sketches/text/2.txt'), 'one-line-art, a hand');
    const { rmSync } = await import('node:fs');
    rmSync(join(tmp.dir, 'sketches/text/3.txt'));
    const r = await runCli(['run', 'sketches', '--json'], { cwd: tmp.dir, env: ENV, timeoutMs: 300_000 });
    expect(r.stderr).not.toContain('error:');
    expect(r.code).toBe(0);
    const validate = r.events.find((e) => e.stage === 'validate:sketches' && e.item === undefined && e.outcome === 'ran');
    expect(validate).toBeDefined();
    const warnings = r.events.filter((e) => e.stage === 'validate:sketches' && Array.isArray(e.diagnostics)).flatMap((e) => e.diagnostics as Record<string, unknown>[]);
    expect(warnings.map((d) => [d.severity, d.code, d.file, d.message])).toEqual([['warning', 'trigger_missing', 'sketches/text/1.txt', 'caption does not contain the trigger "one-line-art"']]);
    expect(readFileSync(join(tmp.dir, 'out', 'datasets', 'sketches', 'validation.md'), 'utf8')).toContain('`one-line-art` is in 2 of 3 captions (67%).');
  });
});
