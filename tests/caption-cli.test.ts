import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, tempDirs, runCli, writeFiles } from './helpers/cli.js';

const temps = tempDirs();
afterAll(temps.cleanup);

let models: string;

const png = (r: number, g: number, b: number) => sharp({ create: { width: 64, height: 64, channels: 3, background: { r, g, b } } }).png().toBuffer();

beforeAll(() => {
  models = temps.make('lb-caption-models-');
  execFileSync('/usr/bin/python3', [join(REPO_ROOT, 'tests/fixtures/onnx/make_models.py'), models]);
});

const lorafile = (folder: string) => `version: 1\ndatasets:\n  poke:\n    folder: ${folder}\n    trigger: poke\n`;

describe('lorabuild caption', () => {
  it('fills missing captions, keeps existing ones, writes drafts beside them on request, overwrites only when asked', async () => {
    const dir = temps.make();
    writeFiles(dir, {
      'lorafile.yaml': lorafile('data'),
      'data/image/0.png': await png(255, 0, 0),
      'data/image/1.png': await png(0, 0, 255),
      'data/text/1.txt': 'poke, my own caption\n',
    });
    const tagger = join(models, 'tagger');
    const first = await runCli(['caption', 'poke', '--model', tagger], { cwd: dir });
    expect(first.code).toBe(0);
    expect(readFileSync(join(dir, 'data/text/0.txt'), 'utf8')).toBe('poke, red theme, 1girl\n');
    expect(readFileSync(join(dir, 'data/text/1.txt'), 'utf8')).toBe('poke, my own caption\n');
    expect(first.stdout).toContain('data/image/1.png: kept the existing caption');
    expect(first.stdout).toContain('1 captions written, 0 overwritten, 0 drafts beside existing captions, 1 kept');

    const drafts = await runCli(['caption', 'poke', '--model', tagger, '--drafts', '--json'], { cwd: dir });
    expect(drafts.code).toBe(0);
    expect(readFileSync(join(dir, 'data/text/1.txt'), 'utf8')).toBe('poke, my own caption\n');
    // blue: (B,G,R)=(1,0,0) -> blue_theme sig(4-1)=0.95, 1girl sig(-0.5)=0.38 >= 0.35, monochrome sig(-2)=0.12 below
    expect(readFileSync(join(dir, 'data/text/1.txt.draft'), 'utf8')).toBe('poke, blue theme, 1girl\n');
    const events = drafts.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.find((e) => e.item === '1')).toMatchObject({ action: 'draft', path: 'data/text/1.txt.draft', caption: 'poke, blue theme, 1girl' });

    const over = await runCli(['caption', 'poke', '--model', tagger, '--overwrite', '--character', '0.5'], { cwd: dir });
    expect(over.code).toBe(0);
    expect(readFileSync(join(dir, 'data/text/1.txt'), 'utf8')).toBe('poke, blue theme, 1girl\n');
    expect(readFileSync(join(dir, 'data/text/0.txt'), 'utf8')).toBe('poke, red theme, pikachu, 1girl\n');
  });

  it('writes kohya sidecar captions next to the image', async () => {
    const dir = temps.make();
    writeFiles(dir, { 'lorafile.yaml': lorafile('k'), 'k/10_poke/a.png': await png(255, 0, 0) });
    const r = await runCli(['caption', 'poke', '--model', join(models, 'tagger')], { cwd: dir });
    expect(r.code).toBe(0);
    expect(readFileSync(join(dir, 'k/10_poke/a.txt'), 'utf8')).toBe('poke, red theme, 1girl\n');
  });

  it('says where it looked for a missing model and rejects a wrong one; writes nothing', async () => {
    const dir = temps.make();
    writeFiles(dir, { 'lorafile.yaml': lorafile('data'), 'data/image/0.png': await png(255, 0, 0) });
    const missing = await runCli(['caption', 'poke', '--model', 'nobody/no-such-tagger'], { cwd: dir, env: { HF_HUB_OFFLINE: '1', HF_HOME: join(dir, 'hf') } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('model nobody/no-such-tagger is not in the Hugging Face cache and HF_HUB_OFFLINE=1; looked in:');
    expect(missing.stderr).toContain(join(dir, 'hf', 'hub', 'models--nobody--no-such-tagger'));
    const wrong = await runCli(['caption', 'poke', '--model', join(models, 'bad')], { cwd: dir });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('is not a WD14 tagger: expected input input_1');
    expect(existsSync(join(dir, 'data/text/0.txt'))).toBe(false);
    const typo = await runCli(['caption', 'pokee', '--model', join(models, 'tagger')], { cwd: dir });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("no dataset 'pokee'");
    expect(typo.stderr).toContain("did you mean 'poke'?");
  });
});
