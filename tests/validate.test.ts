// validate:DATASET through the real executor (fetch -> prepare -> validate) on a lab-layout
// fixture folder written in a temp dir, with one item per rule. Asserts the exact diagnostics.
import { CLIP_TOKENIZER_DIR } from './helpers/reference.js';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LorafileSchema, type Config } from '../src/config/schema.js';
import type { Diagnostic } from '../src/config/diagnostic.js';
import { Cas } from '../src/cache/cas.js';
import { execute } from '../src/engine/executor.js';
import { lockPathFor, readLockfile } from '../src/engine/lockfile.js';
import type { Plan, StageEvent, StageKind, StageNode } from '../src/engine/types.js';
import { stage as fetchStage } from '../src/stages/fetch.js';
import { stage as prepareStage } from '../src/stages/prepare.js';
import { stage as validateStage } from '../src/stages/validate.js';
import type { ValidationReport } from '../src/text/validation-report.js';
import { makeTempDir, writeFiles } from './helpers/cli.js';

const REF = CLIP_TOKENIZER_DIR;
const tmp = makeTempDir('lorabuild-validate-');
afterAll(tmp.cleanup);

const png = (w: number, h: number, r = 200) => sharp({ create: { width: w, height: h, channels: 3, background: { r, g: 80, b: 40 } } }).png().toBuffer();
const jpeg = (w: number, h: number) => sharp({ create: { width: w, height: h, channels: 3, background: { r: 10, g: 80, b: 140 } } }).jpeg().toBuffer();

const LONG =
  'one-line-art, a very detailed drawing of an old lighthouse standing on a rocky cliff above a stormy sea with tall waves crashing against the rocks, ' +
  'dark clouds gathering in the sky, seagulls circling around the lamp, a small wooden boat struggling in the water, rain falling, lightning far away, ' +
  'in the style of a minimal continuous single line sketch, drawn with black ink on white paper';
const CUT_AT = LONG.indexOf('on white paper') + 1;

function config(dir: string, dataset: Record<string, unknown>): Config {
  const spec = LorafileSchema.parse({
    version: 1,
    models: { sd: { checkpoint: 'model.safetensors', tokenizer: REF } },
    datasets: { ds: dataset },
    loras: { l: { model: 'sd', dataset: 'ds' } },
  });
  return { ...spec, file: join(dir, 'lorafile.yaml'), root: dir, source: '' };
}

function plan(): Plan {
  const nodes: StageNode[] = [
    { id: 'fetch:ds', kind: 'fetch', target: 'ds', deps: [], resource: 'cpu' },
    { id: 'prepare:ds', kind: 'prepare', target: 'ds', deps: ['fetch:ds'], resource: 'cpu' },
    { id: 'validate:ds', kind: 'validate', target: 'ds', deps: ['prepare:ds'], resource: 'cpu' },
  ];
  return { stages: new Map(nodes.map((n) => [n.id, n])), order: nodes.map((n) => n.id), selected: [] };
}

const registry = async (kind: StageKind) => {
  if (kind === 'fetch') return fetchStage;
  if (kind === 'prepare') return prepareStage;
  if (kind === 'validate') return validateStage;
  throw new Error(`no ${kind} stage in this test`);
};

async function build(dir: string, dataset: Record<string, unknown>) {
  const cfg = config(dir, dataset);
  const events: StageEvent[] = [];
  const result = await execute({ config: cfg, plan: plan(), registry, cacheDir: join(dir, 'cache'), lockFile: lockPathFor(cfg.file), mode: 'run', onEvent: (e) => events.push(e) });
  const cas = new Cas(join(dir, 'cache'));
  const output = (name: string): string => {
    if (result.reports.get('validate:ds')!.outcome === 'failed') return readFileSync(join(dir, 'out', 'datasets', 'ds', name), 'utf8');
    const entry = readLockfile(lockPathFor(cfg.file), join(dir, 'cache')).lock.stages['validate:ds'];
    if (!entry?.outputs[name]) throw new Error(`validate:ds recorded no ${name}`);
    return readFileSync(cas.path(entry.outputs[name].sha256), 'utf8');
  };
  const emitted = events.filter((e) => e.stage === 'validate:ds' && e.diagnostics).flatMap((e) => e.diagnostics as unknown as Diagnostic[]);
  return { report: result.reports.get('validate:ds')!, events, output, emitted };
}

/** [severity code where message] with where = file:line:col (or the item) */
function summary(diagnostics: Diagnostic[]): string[] {
  return diagnostics.map((d) => `${d.severity} ${d.code} ${d.file ?? d.item}${d.line !== undefined ? `:${d.line}` : ''}${d.col !== undefined ? `:${d.col}` : ''}${d.endCol !== undefined ? `-${d.endCol}` : ''} ${d.message}`);
}

describe('validate stage on a lab dataset with one problem per item', () => {
  const dir = join(tmp.dir, 'lab');
  let first: Awaited<ReturnType<typeof build>>;

  beforeAll(async () => {
    const same = await png(600, 600, 10);
    writeFiles(dir, {
      'ds/image/0.png': same,
      'ds/text/0.txt': 'one-line-art, a face, side view\n',
      'ds/image/1.png': await png(600, 600, 20),
      'ds/text/2.txt': 'one-line-art, a cup',
      'ds/image/4.png': await jpeg(600, 600),
      'ds/text/4.txt': 'one-line-art, a hand',
      'ds/image/5.jpg': await jpeg(640, 640),
      'ds/image/5.png': await png(600, 600, 50),
      'ds/text/5.txt': 'one-line-art, a chair',
      'ds/image/6.png': await png(600, 600, 60),
      'ds/text/6.txt': '  \n',
      'ds/image/7.png': await png(600, 600, 70),
      'ds/text/7.txt': Buffer.from('one-line-art, a caf\xe9 table', 'latin1'),
      'ds/image/8.png': await png(600, 600, 80),
      'ds/text/8.txt': '\ufeffone-line-art, a tree  \r\n',
      'ds/image/9.png': await png(600, 600, 90),
      'ds/text/9.txt': LONG,
      'ds/image/10.png': await png(600, 600, 100),
      'ds/text/10.txt': 'a bird on a branch',
      'ds/image/11.png': same,
      'ds/text/11.txt': 'One-Line-Art,  a face,   side view',
      'ds/image/12.png': Buffer.from('this is not a png at all'),
      'ds/text/12.txt': 'one-line-art, a broken file',
      'ds/image/13.png': await png(200, 150, 130),
      'ds/text/13.txt': 'one-line-art, a small picture',
      'ds/image/14.png': await png(1600, 520, 140),
      'ds/text/14.txt': 'one-line-art, a wide panorama',
      'ds/notes.docx': 'stray',
    });
    first = await build(dir, { folder: 'ds', trigger: 'one-line-art' });
  });

  it('stores the bytes of a caption only when its text does not give them back (not UTF-8)', () => {
    const cas = new Cas(join(dir, 'cache'));
    const stored = (rel: string) => cas.has(createHash('sha256').update(readFileSync(join(dir, rel))).digest('hex'));
    expect(stored('ds/text/7.txt')).toBe(true);
    // UTF-8, a BOM and CRLF included: validate checks the text's UTF-8, the very same bytes
    for (const rel of ['ds/text/0.txt', 'ds/text/8.txt', 'ds/text/11.txt']) expect(stored(rel), rel).toBe(false);
  });

  it('fails with the error count, so training is blocked', () => {
    expect(first.report.outcome).toBe('failed');
    expect(first.report.reason).toBe('6 errors in captions');
  });

  it('reports every rule with its exact message and location', () => {
    expect(summary(first.emitted)).toEqual([
      'error missing_caption ds/image/1.png image has no caption',
      'warning extension ds/image/4.png file is named .png but holds a JPEG image',
      'warning numbering ds/image/4.png numbering has a gap: no item 3 (items should be numbered 0..13 without gaps)',
      'error missing_caption ds/image/5.png image has no caption',
      'warning duplicates ds/image/5.png number 5 is used twice in image/: ds/image/5.jpg and ds/image/5.png; only one of them can be item 5',
      'warning duplicate_image ds/image/11.png image is identical to ds/image/0.png',
      'error undecodable ds/image/12.png image does not decode: not a PNG, JPEG, WebP or BMP image (unknown file signature)',
      'warning too_small ds/image/13.png image is 200×150, smaller than 512 px on its shorter side: training upscales it and learns the blur',
      'warning aspect ds/image/14.png image is 1600×520 (aspect 3.08, limit 2.5): the square center crop keeps only 33% of it',
      'warning extension ds/notes.docx file is not part of the dataset: unsupported extension or place, so it is ignored',
      'error missing_image ds/text/2.txt:1 caption has no image',
      'error empty_caption ds/text/6.txt:1:1 caption is only whitespace',
      'error encoding ds/text/7.txt:1:20 caption is not valid UTF-8: byte 0xE9 at byte offset 19 (the file is probably in a legacy encoding such as Windows-1252)',
      'warning whitespace ds/text/8.txt:1:1 caption starts with a byte order mark (BOM)',
      'warning whitespace ds/text/8.txt:1:21-23 trailing whitespace',
      'warning whitespace ds/text/8.txt:1:23-24 caption has Windows line endings (CRLF)',
      `warning too_long ds/text/9.txt:1:${CUT_AT}-${LONG.length + 1} caption is 78 tokens, 3 over the limit of 75; these words are cut off: "on white paper"`,
      'warning trigger_missing ds/text/10.txt:1:1 caption does not contain the trigger "one-line-art"',
      'warning duplicate_caption ds/text/11.txt:1:1 caption is the same as ds/text/0.txt (as CLIP reads it)',
    ]);
    for (const d of first.emitted) {
      expect(d.hint, `${d.code} has a hint`).toMatch(new RegExp(`rules\\.${d.code}: off silences this$`));
    }
    const hints = Object.fromEntries(first.emitted.map((d) => [`${d.code} ${d.file}`, d.hint]));
    expect(hints['missing_caption ds/image/1.png']).toBe('write its caption in ds/text/1.txt, or remove the image; rules.missing_caption: off silences this');
    expect(hints['missing_image ds/text/2.txt']).toBe('add ds/image/2.png (or .jpg/.webp), or delete the caption; rules.missing_image: off silences this');
    expect(hints['extension ds/image/4.png']).toBe('rename it to 4.jpg; rules.extension: off silences this');
  });

  it('writes validation.json (to out/datasets/ds/ even though the stage failed) with trigger coverage, token lengths, tag frequency and the tokenizer used', () => {
    const report = JSON.parse(first.output('validation.json')) as ValidationReport;
    expect(report.errors).toBe(6);
    expect(report.warnings).toBe(13);
    expect(report.diagnostics).toEqual(first.emitted);
    expect(report.tokenizer.reason).toBe("CLIP BPE tokenizer of model 'sd' (lora 'l')");
    expect(report.tokenizer.id).toMatch(/^clip-bpe:/);
    // captions with text: 0 2 4 5 7 8 9 10 11 12 13 14 (6 is empty); 10 lacks the trigger
    expect(report.trigger).toEqual({ phrase: 'one-line-art', present: 11, of: 12, missing: ['ds/text/10.txt'], cut: [] });
    expect(report.tokens.max).toBe(78);
    expect(report.tokens.over).toBe(1);
    expect(report.tokens.histogram.find((b) => b.range === '>75')).toEqual({ range: '>75', count: 1 });
    expect(report.tokens.histogram.reduce((n, b) => n + b.count, 0)).toBe(12);
    expect(report.tagFrequency).not.toBeNull();
    expect(Object.entries(report.tagFrequency!)[0]).toEqual(['one-line-art', 10]);
    expect(report.tagFrequency!['a face']).toBe(2);
    const md = first.output('validation.md');
    expect(md).toContain('# Caption validation: ds');
    expect(md).toContain('15 items, **6 errors**, 13 warnings. Errors block training.');
    expect(md).toContain('| error | ds/text/7.txt:1:20 | encoding | caption is not valid UTF-8');
    expect(md).toContain('`one-line-art` is in 11 of 12 captions (92%).');
    expect(md).toContain('| one-line-art | 10 |');
  });

  it('re-checks only the edited caption on the next run', async () => {
    writeFileSync(join(dir, 'ds/text/10.txt'), 'one-line-art, a bird on a branch');
    const again = await build(dir, { folder: 'ds', trigger: 'one-line-art' });
    const itemEvents = again.events.filter((e) => e.stage === 'validate:ds' && e.item !== undefined);
    expect(itemEvents.filter((e) => e.outcome === 'ran').map((e) => e.item)).toEqual(['10']);
    expect(itemEvents.filter((e) => e.outcome === 'cached')).toHaveLength(14);
    expect(summary(again.emitted).filter((s) => s.includes('trigger_missing'))).toEqual([]);
    expect(again.report.reason).toBe('6 errors in captions');
  });

  it('follows rules: severities, so the same dataset can pass with warnings only', async () => {
    const relaxed = await build(dir, {
      folder: 'ds',
      trigger: 'one-line-art',
      rules: { missing_caption: 'warning', missing_image: 'off', empty_caption: 'warning', encoding: 'warning', undecodable: 'warning', whitespace: 'off', duplicate_image: 'error' },
    });
    expect(relaxed.report.outcome).toBe('failed');
    expect(relaxed.report.reason).toBe('1 error in captions');
    expect(summary(relaxed.emitted.filter((d) => d.severity === 'error'))).toEqual(['error duplicate_image ds/image/11.png image is identical to ds/image/0.png']);
    expect(relaxed.emitted.some((d) => d.code === 'whitespace' || d.code === 'missing_image')).toBe(false);
    const passing = await build(dir, {
      folder: 'ds',
      rules: { missing_caption: 'warning', missing_image: 'warning', empty_caption: 'warning', encoding: 'warning', undecodable: 'warning' },
    });
    expect(passing.report.outcome).toBe('ran');
    expect(passing.emitted.every((d) => d.severity === 'warning')).toBe(true);
  });
});
