// Before a run: every missing input the plan needs, all at once, each on its lorafile line, and
// nothing run. --keep-going builds what does not need them; --dry-run says what would run.
import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { tinyPng } from '../bench/lab-dataset.js';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';

const LORAFILE = `version: 1
models:
  ds8:
    checkpoint: models/DreamShaper8_pruned.safetensors
    tokenizer: tokenizers/clip
datasets:
  good:
    folder: good
    rules: { too_small: off }
  art:
    folder: one-line-arts
loras:
  art_lora:
    model: ds8
    dataset: art
    steps: 100
    publish: ComfyUI/models/loras/art_lora.safetensors
`;

function project(dir: string): void {
  writeFiles(dir, {
    'lorafile.yaml': LORAFILE,
    'models/DreamShaper_8_pruned.safetensors': 'not read before the run',
    'one-line-art/image/0.png': tinyPng(0),
    'one-line-art/text/0.txt': 'one-line-art, a face',
    'good/image/0.png': tinyPng(1),
    'good/text/0.txt': 'a shape',
  });
  const old = new Date('2024-01-01T00:00:00Z');
  for (const f of ['good/image/0.png', 'good/text/0.txt']) utimesSync(join(dir, f), old, old);
}

describe('pre-flight check of a run', () => {
  it('reports every missing input at once, with the closest name in its folder, and runs nothing (exit 2)', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      project(dir);
      const r = await runCli(['run'], { cwd: dir, env: { LORABUILD_PYTHON: join(dir, 'no-python') } });
      expect(r.code).toBe(2);
      const errors = r.stderr.split('\n').filter((l) => /^lorafile\.yaml(:\d+:\d+)?: error:/.test(l));
      expect(errors).toEqual([
        "lorafile.yaml:4:17: error: model 'ds8': checkpoint models/DreamShaper8_pruned.safetensors does not exist (looked at " + join(dir, 'models/DreamShaper8_pruned.safetensors') + ')',
        "lorafile.yaml:5:16: error: model 'ds8': tokenizer tokenizers/clip does not exist",
        "lorafile.yaml:11:13: error: dataset 'art': folder one-line-arts does not exist (looked at " + join(dir, 'one-line-arts') + ')',
        "lorafile.yaml:17:14: error: lora 'art_lora': publish: the folder ComfyUI/models/loras does not exist",
        `lorafile.yaml: error: LORABUILD_PYTHON names ${join(dir, 'no-python')}, which does not exist.`,
      ]);
      expect(r.stderr).toContain("hint: did you mean 'models/DreamShaper_8_pruned.safetensors'? Otherwise fix `checkpoint:`");
      expect(r.stderr).toContain("hint: did you mean 'one-line-art'? Otherwise fix `folder:`");
      expect(r.stderr).toContain('hint: its folder tokenizers does not exist either; fix `tokenizer:`');
      expect(r.stderr).toContain('5 errors\nlorabuild run: nothing was run. Fix the inputs above, or build what does not need them with --keep-going.\n');
      expect(r.stdout).toBe('');
      expect(existsSync(join(dir, 'lorafile.lock'))).toBe(false);
      expect(existsSync(join(dir, 'out'))).toBe(false);
      expect(existsSync(join(dir, 'ComfyUI'))).toBe(false);
    } finally {
      cleanup();
    }
  }, 120_000);

  it('--keep-going builds the stages that need none of them; --dry-run says what would run and why', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      project(dir);
      const env = { LORABUILD_PYTHON: '/usr/bin/python3' };
      const dry = await runCli(['run', '--dry-run'], { cwd: dir, env });
      expect(dry.code).toBe(1);
      expect(dry.stdout.split('\n')).toEqual([
        'would run     fetch:good      never built',
        'would run     prepare:good    after fetch:good (its inputs are known only then)',
        'would run     validate:good   after prepare:good (its inputs are known only then)',
        "cannot run    fetch:art       dataset 'art': folder one-line-arts does not exist (looked at " + join(dir, 'one-line-arts') + ')',
        'skipped       prepare:art     fetch:art failed',
        'skipped       validate:art    fetch:art failed',
        'skipped       train:art_lora  fetch:art failed',
        'skipped       report          fetch:art failed',
        'dry run: 3 would run, 0 would be restored from the cache, 0 fresh, 1 cannot run; nothing was built',
        '',
      ]);
      expect(dry.stderr).toContain('4 errors');
      expect(readdirSync(dir).sort()).toEqual(['cache', 'good', 'lorafile.yaml', 'models', 'one-line-art']);

      const kept = await runCli(['run', '--keep-going', '--json'], { cwd: dir, env });
      expect(kept.code).toBe(1);
      const outcome = (stage: string) => kept.events.find((e) => e.stage === stage && !e.item && !e.progress && e.outcome !== 'started')?.outcome;
      expect([outcome('validate:good'), outcome('fetch:art'), outcome('train:art_lora')]).toEqual(['ran', 'failed', 'skipped']);
      expect((kept.events.find((e) => e.preflight)!.preflight as unknown[]).length).toBe(4);

      const fresh = await runCli(['run', 'good', '--dry-run'], { cwd: dir, env });
      expect(fresh.code).toBe(0);
      expect(fresh.stdout).toBe('fresh         fetch:good\nfresh         prepare:good\nfresh         validate:good\ndry run: 0 would run, 0 would be restored from the cache, 3 fresh; nothing was built\n');
    } finally {
      cleanup();
    }
  }, 120_000);
});
