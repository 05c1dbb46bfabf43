// `lorabuild tokenize` as a real process: published ids, JSON lines from stdin, a lorafile model (the
// builtins read CLIP ids too: the count validation reports is the count tokenize prints), the shipped
// vocabulary, and the errors (a --vocab without files: exit 1; usage: exit 2).
import { CLIP_TOKENIZER_DIR } from './helpers/reference.js';
import { afterAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';

const REF = CLIP_TOKENIZER_DIR;
const tmp = makeTempDir('lorabuild-tokenize-');
afterAll(tmp.cleanup);
const noTokenizerEnv = { LORABUILD_CLIP_TOKENIZER: undefined, HF_HUB_CACHE: `${tmp.dir}/no-hf-cache` };

describe('lorabuild tokenize', () => {
  it('prints the ids and tokens of a text', async () => {
    const r = await runCli(['tokenize', '--vocab', REF, 'a', 'photo', 'of', 'a', 'cat'], { cwd: tmp.dir, env: noTokenizerEnv });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      '"a photo of a cat": 5 tokens (limit 75)\n  ids:    49406 320 1125 539 320 2368 49407\n  tokens: <|startoftext|> a</w> photo</w> of</w> a</w> cat</w> <|endoftext|>\n',
    );
  });

  it('reads texts line by line from stdin and answers JSON lines, naming what is cut off', async () => {
    const long = Array.from({ length: 80 }, (_, i) => `w${i}`).join(' ');
    const r = await runCli(['tokenize', '-', '--json'], { cwd: tmp.dir, env: { ...noTokenizerEnv, LORABUILD_CLIP_TOKENIZER: REF }, stdin: `a cat\n${long}\n` });
    expect(r.code).toBe(0);
    expect(r.events).toHaveLength(2);
    expect(r.events[0]).toMatchObject({ text: 'a cat', count: 2, truncated: false, ids: [49406, 320, 2368, 49407], tokens: ['<|startoftext|>', 'a</w>', 'cat</w>', '<|endoftext|>'], spans: [[0, 0], [0, 1], [2, 5], [5, 5]] });
    expect(r.events[1]).toMatchObject({ text: long, truncated: true, limit: 75 });
    const human = await runCli(['tokenize', '--vocab', REF, long], { cwd: tmp.dir, env: noTokenizerEnv });
    const count = (r.events[1] as { count: number }).count;
    expect(human.stdout).toContain(`${count} tokens (limit 75)`);
    expect(human.stdout).toMatch(/as a training caption, cut off after 75 tokens: "[^"]*w79"/);
    // as a render prompt it is not cut: chunks of 75, split where each fills up (one long segment)
    const chunks = Math.ceil(count / 75);
    expect(chunks).toBeGreaterThan(1);
    expect(human.stdout).toContain(`as a render prompt (weights and chunks as ComfyUI reads them): ${count} tokens in ${chunks} chunks of 75\n    w</w> 0</w> w</w>`);
    expect(human.stdout.trimEnd().split(' | ')).toHaveLength(chunks);
    expect(human.stdout.trimEnd()).toMatch(/w<\/w> 7<\/w> 9<\/w>$/);
    const prompt = (r.events[1] as { prompt: { chunks: { ids: number[]; weights: number[] }[]; count: number } }).prompt;
    expect(prompt.count).toBe(count);
    expect(prompt.chunks.map((c) => c.ids.length)).toEqual(Array(chunks).fill(77));
    expect(prompt.chunks.at(-1)!.ids.filter((id) => id !== 49406 && id !== 49407)).toHaveLength(count - 75 * (chunks - 1));
  });

  it("counts a builtin model's caption as validation does: CLIP tokens, the same with and without --model", async () => {
    const caption = 'lineart, a red circle on a white background, a blue star beside it, thin black strokes, no shading, clean lines, a small house in the corner';
    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 250, g: 250, b: 250 } } }).png().toBuffer();
    writeFiles(tmp.dir, {
      'proj/lorafile.yaml':
        'version: 1\nmodels:\n  tiny: { builtin: tiny }\n  toy: { builtin: toy }\n' +
        'datasets:\n  ds: { folder: ds, rules: { max_tokens: 20, min_size: 64 } }\n' +
        'loras:\n  l: { model: toy, dataset: ds, steps: 10, checkpoint_every: 5, resolution: 64 }\n',
      'proj/ds/image/0.png': png,
      'proj/ds/text/0.txt': caption,
    });
    const run = await runCli(['run', 'ds', '--json'], { cwd: `${tmp.dir}/proj`, env: noTokenizerEnv, timeoutMs: 120_000 });
    const tooLong = run.events.flatMap((e) => (Array.isArray(e.diagnostics) ? (e.diagnostics as { code: string; message: string }[]) : [])).find((d) => d.code === 'too_long');
    const validated = Number(/caption is (\d+) tokens/.exec(tooLong?.message ?? '')?.[1]);
    expect(validated, run.stderr + run.stdout.slice(-2000)).toBeGreaterThan(20);
    const counts: number[] = [];
    for (const args of [['--model', 'toy'], ['--model', 'tiny'], []]) {
      const r = await runCli(['tokenize', ...args, '--json', caption], { cwd: `${tmp.dir}/proj`, env: noTokenizerEnv });
      expect(r.code, r.stderr).toBe(0);
      expect(r.events[0]).toMatchObject({ ids: expect.arrayContaining([49406, 49407]), tokens: expect.arrayContaining(['line', 'art</w>']) });
      counts.push((r.events[0] as { count: number }).count);
    }
    expect(counts).toEqual([validated, validated, validated]);
    expect(validated).toBeLessThan(caption.length / 3); // words, not bytes
    const unknown = await runCli(['tokenize', '--model', 'sd', 'x'], { cwd: `${tmp.dir}/proj`, env: noTokenizerEnv });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("the lorafile has no model 'sd' (models: tiny, toy)");
  });

  it('needs no tokenizer files: the shipped CLIP vocabulary; a --vocab that holds none exits 1, usage errors exit 2', async () => {
    const r = await runCli(['tokenize', 'a photo of a cat'], { cwd: tmp.dir, env: noTokenizerEnv });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ids:    49406 320 1125 539 320 2368 49407');
    const empty = await runCli(['tokenize', '--vocab', tmp.dir, 'a cat'], { cwd: tmp.dir, env: noTokenizerEnv });
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain(`no CLIP tokenizer found for --vocab ${tmp.dir}`);
    expect((await runCli(['tokenize'], { cwd: tmp.dir, env: noTokenizerEnv })).code).toBe(2);
    const both = await runCli(['tokenize', '--vocab', REF, '--model', 'x', 'a'], { cwd: tmp.dir, env: noTokenizerEnv });
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--model and --vocab exclude each other');
  });
});
