// The messages hostile or mistaken input used to get wrong (issue 21 items 5, 14, 15), through the
// CLI: a checkpoint that is a device or a FIFO, publish: at a folder, a user's file where out/
// writes, a lora that is not a mapping, and a dataset with hundreds of one problem (grouped).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';
import { GRADE_ENV, GRADE_FIXTURE, makeSubmission } from './helpers/grade-fixture.js';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-messages-');
});
afterAll(() => tmp?.cleanup());

const fixtureLorafile = () => readFileSync(join(GRADE_FIXTURE, 'lorafile.yaml'), 'utf8');

describe('messages that name the real problem', () => {
  it('a checkpoint that is a device or a FIFO names the model and what the path is (a folder is a diffusers model)', async () => {
    for (const [checkpoint, what] of [
      ['a-fifo', 'a FIFO'],
      ['/dev/zero', 'a device'],
    ] as const) {
      const dir = join(tmp.dir, `checkpoint-${what.replace(' ', '-')}`);
      mkdirSync(dir);
      await makeSubmission(dir);
      execFileSync('mkfifo', [join(dir, 'a-fifo')]);
      writeFileSync(join(dir, 'lorafile.yaml'), fixtureLorafile().replace('    builtin: tiny', `    checkpoint: ${checkpoint}`).replace(/renders:[^]*$/, ''));
      // the pre-flight check says so before anything runs (a FIFO would block, a device never ends)
      const r = await runCli(['run'], { cwd: dir, env: GRADE_ENV, timeoutMs: 300_000 });
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toContain(`lorafile.yaml:6:17: error: model 'tiny': checkpoint ${checkpoint} is ${what}, not a file or a folder`);
      expect(r.stdout + r.stderr).not.toContain('tokenizer');
      expect(r.stdout).not.toContain('ran       fetch');
    }
  }, 600_000);

  it('publish: at a folder says the file is missing from the path; out/ never overwrites a file lorabuild did not write', async () => {
    const dir = join(tmp.dir, 'publish');
    mkdirSync(dir);
    await makeSubmission(dir);
    mkdirSync(join(dir, 'loras'));
    writeFiles(dir, { 'out/report.md': 'my own notes\n' });
    writeFileSync(join(dir, 'lorafile.yaml'), fixtureLorafile().replace('    targets: attention', '    targets: attention\n    publish: loras').replace('steps: 4', 'steps: 2').replace('checkpoint_every: 2', 'checkpoint_every: 1'));
    const r = await runCli(['run', '--keep-going'], { cwd: dir, env: GRADE_ENV, timeoutMs: 300_000 });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toContain("FAILED    train:one_line_art: lora 'one_line_art': publish: loras is a folder; publish: names the file to write");
    expect(r.stderr).toContain('lorafile.yaml:27:14: error: ');
    expect(r.stderr).toContain('hint: write publish: loras/one_line_art.safetensors');
    expect(r.stdout + r.stderr).not.toContain('EISDIR');

    // without publish: training succeeds, and the report stops at the user's out/report.md
    writeFileSync(join(dir, 'lorafile.yaml'), readFileSync(join(dir, 'lorafile.yaml'), 'utf8').replace('    publish: loras\n', ''));
    const again = await runCli(['run'], { cwd: dir, env: GRADE_ENV, timeoutMs: 300_000 });
    expect(again.code, again.stdout + again.stderr).toBe(1);
    expect(again.stdout).toContain('FAILED    report: out/report.md exists and was not written by lorabuild; it was left untouched');
    expect(readFileSync(join(dir, 'out/report.md'), 'utf8')).toBe('my own notes\n');
    expect(existsSync(join(dir, 'out/report.html'))).toBe(false);
  }, 600_000);

  it("a lora that is not a mapping: \"lora 'nothing' must be a mapping of its settings\"", async () => {
    const dir = join(tmp.dir, 'nothing');
    writeFiles(dir, { 'lorafile.yaml': 'version: 1\nloras:\n  nothing:\n' });
    const r = await runCli(['plan'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("lorafile.yaml:3:11: error: lora 'nothing' must be a mapping of its settings (key: value lines), got nothing");
  });

  it('300 captions with one problem: 20 shown and "… and 280 more", all of them in validation.json', async () => {
    const dir = join(tmp.dir, 'many');
    const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#888' } }).png().toBuffer();
    const files: Record<string, string | Buffer> = { 'lorafile.yaml': 'version: 1\ndatasets:\n  ds:\n    folder: ds\n    layout: lab\n    rules: { min_size: 16 }\n' };
    for (let i = 0; i < 300; i++) {
      files[`ds/image/${i}.png`] = png;
      files[`ds/text/${i}.txt`] = '';
    }
    writeFiles(dir, files);
    const r = await runCli(['run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr.match(/error: caption is empty/g)).toHaveLength(20);
    expect(r.stderr).toContain('info: … and 280 more `empty_caption` errors like these (all of them: out/datasets/ds/validation.json)');
    expect(r.stdout).toContain('300 errors in captions');
    const report = JSON.parse(readFileSync(join(dir, 'out/datasets/ds/validation.json'), 'utf8')) as { diagnostics: { code: string }[] };
    expect(report.diagnostics.filter((d) => d.code === 'empty_caption')).toHaveLength(300);
  });
});
