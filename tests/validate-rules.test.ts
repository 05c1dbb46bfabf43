// Caption rules on manifests built in the test: parquet rows and metadata lines as locations,
// words split at the token limit, a trigger past the limit, line-ending and blank-line cases,
// UTF-8 validation. The lab-folder pipeline is in validate.test.ts.
import { CLIP_TOKENIZER_DIR } from './helpers/reference.js';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RulesSchema } from '../src/config/schema.js';
import type { Manifest, ManifestItem } from '../src/datasets/manifest.js';
import { cleanCaption } from '../src/stages/prepare.js';
import { checkItem, type ValidationSettings } from '../src/text/check-item.js';
import { loadClipTokenizer } from '../src/text/load.js';
import { renderMarkdown } from '../src/text/validation-markdown.js';
import { firstInvalidUtf8 } from '../src/text/rules/caption-bytes.js';
import type { Tokenizer } from '../src/text/tokenizer.js';
import { buildReport } from '../src/text/validation-report.js';

const REF = CLIP_TOKENIZER_DIR;
let clip: Tokenizer;
beforeAll(async () => {
  clip = await loadClipTokenizer({ kind: 'openai', bpe: join(REF, 'bpe_simple_vocab_16e6.txt.gz') });
});

const settings = (over: Partial<ValidationSettings> = {}, rules: Record<string, unknown> = {}): ValidationSettings => ({
  rules: RulesSchema.parse(rules),
  trigger: null,
  minSize: 512,
  layout: 'lab',
  ...over,
});

function item(id: string, text: string | null, extra: Partial<ManifestItem> = {}, origin = `ds/text/${id}.txt`, line = 1): ManifestItem {
  return {
    id,
    image: { sha256: `${id.padStart(2, '0')}`.repeat(32), width: 512, height: 512, format: 'png', origin: `ds/image/${id}.png` },
    caption: text === null ? null : { text, clean: cleanCaption(text), sha256: 'c'.repeat(64), origin, line },
    ...extra,
  };
}

const brief = (diagnostics: { severity: string; code: string; message: string; file?: string; line?: number; col?: number; endCol?: number; item?: string }[]) =>
  diagnostics.map((d) => ({ code: d.code, message: d.message, where: [d.file, d.line, d.col, d.endCol, d.item].filter((x) => x !== undefined).join(' ') }));

describe('token limit', () => {
  it('names a word that the limit splits and what is cut off', () => {
    const text = `${'cat '.repeat(74)}supercalifragilisticexpialidocious dog`;
    const check = checkItem(item('3', text), null, clip, settings());
    const cutAt = clip.encode(text).spans[75][0];
    expect(brief(check.diagnostics)).toEqual([
      {
        code: 'too_long',
        message: `caption is ${clip.encode(text).ids.length} tokens, ${clip.encode(text).ids.length - 75} over the limit of 75; the word "supercalifragilisticexpialidocious" is split and this is cut off: "${text.slice(cutAt)}"`,
        where: `ds/text/3.txt 1 ${cutAt + 1} ${text.length + 1}`,
      },
    ]);
    expect(check.tokens).toBe(clip.encode(text).ids.length);
  });

  it('honours rules.max_tokens and counts exactly at the limit as fine', () => {
    expect(checkItem(item('1', 'cat '.repeat(75).trim()), null, clip, settings()).diagnostics).toEqual([]);
    const d = checkItem(item('1', 'cat '.repeat(11).trim()), null, clip, settings({}, { max_tokens: 10 })).diagnostics;
    expect(d.map((x) => x.message)).toEqual(['caption is 11 tokens, 1 over the limit of 10; these words are cut off: "cat"']);
  });
});

describe('trigger', () => {
  it('matches whole tokens case-insensitively and reports a trigger that is cut off', () => {
    const s = settings({ trigger: 'sks dog' });
    expect(checkItem(item('1', 'a photo of SKS  Dog on grass'), null, clip, s).trigger).toBe('present');
    const missing = checkItem(item('2', 'a photo of sks dogs'), null, clip, s);
    expect(missing.trigger).toBe('missing');
    expect(brief(missing.diagnostics)).toEqual([{ code: 'trigger_missing', message: 'caption does not contain the trigger "sks dog"', where: 'ds/text/2.txt 1 1' }]);
    const late = `${'cat '.repeat(80)}sks dog`;
    const cut = checkItem(item('3', late), null, clip, s, );
    expect(cut.trigger).toBe('cut');
    expect(cut.diagnostics.map((d) => d.message)).toContain('the trigger "sks dog" comes after token 75 and is cut off, so training never sees it');
  });

  it('matches a trigger written in another case (CLIP lower-cases; builtin models use it too)', () => {
    const s = settings({ trigger: 'One-Line-Art' });
    expect(checkItem(item('1', 'one-line-art, a face'), null, clip, s).trigger).toBe('present');
    expect(checkItem(item('2', 'a face'), null, clip, s).trigger).toBe('missing');
  });
});

describe('caption bytes', () => {
  it('finds the first invalid UTF-8 byte: overlong, surrogate, truncated, stray continuation', () => {
    expect(firstInvalidUtf8(Buffer.from('héllo ✓ 🐱', 'utf8'))).toBe(-1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0xaf]))).toBe(1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0x62, 0xed, 0xa0, 0x80]))).toBe(2);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xe2, 0x9c]))).toBe(1);
    expect(firstInvalidUtf8(Buffer.from([0x80]))).toBe(0);
    expect(firstInvalidUtf8(Buffer.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0);
  });

  it('locates bad bytes, CR-only line ends, leading whitespace and trailing blank lines', () => {
    const bytes = Buffer.concat([Buffer.from('first line\nsecond '), Buffer.from([0xff]), Buffer.from(' end')]);
    const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
    const bad = checkItem(item('1', text), bytes, clip, settings());
    expect(brief(bad.diagnostics.filter((d) => d.code === 'encoding'))).toEqual([
      { code: 'encoding', message: 'caption is not valid UTF-8: byte 0xFF at byte offset 18 (the file is probably in a legacy encoding such as Windows-1252)', where: 'ds/text/1.txt 2 8' },
    ]);
    const messy = checkItem(item('2', '\t a cat\rsitting\n\n\n'), null, clip, settings());
    expect(brief(messy.diagnostics)).toEqual([
      { code: 'whitespace', message: 'caption has a carriage return (CR) line ending', where: 'ds/text/2.txt 1 8 9' },
      { code: 'whitespace', message: 'caption starts with whitespace', where: 'ds/text/2.txt 1 1 3' },
      { code: 'whitespace', message: 'caption ends with blank lines', where: 'ds/text/2.txt 1 16' },
    ]);
  });
});

describe('locations outside caption files', () => {
  it('names the parquet row as the item', () => {
    const row: ManifestItem = {
      id: 'row 17',
      row: 17,
      image: { sha256: 'a'.repeat(64), width: 431, height: 431, format: 'png', origin: 'data/train-00000-of-00001.parquet row 17' },
      caption: { text: '', clean: '', sha256: 'b'.repeat(64), origin: 'data/train-00000-of-00001.parquet row 17', line: 1 },
    };
    const check = checkItem(row, null, clip, settings({ layout: 'parquet' }));
    expect(brief(check.diagnostics)).toEqual([
      { code: 'too_small', message: 'image is 431×431, smaller than 512 px on its shorter side: training upscales it and learns the blur', where: 'data/train-00000-of-00001.parquet row 17' },
      { code: 'empty_caption', message: 'caption is empty', where: 'data/train-00000-of-00001.parquet row 17' },
    ]);
    const noCaption = checkItem({ ...row, caption: null }, null, clip, settings({ layout: 'parquet' }, { too_small: 'off' }));
    expect(noCaption.diagnostics.map((d) => [d.code, d.hint])).toEqual([
      ['missing_caption', 'fill the caption column for this row, or choose another caption_column; rules.missing_caption: off silences this'],
    ]);
  });

  it('points at the metadata.jsonl line of an imagefolder caption', () => {
    const entry = item('cat.png', 'dog '.repeat(76).trim(), {}, 'ds/metadata.jsonl', 4);
    const check = checkItem(entry, null, clip, settings({ layout: 'imagefolder' }));
    expect(brief(check.diagnostics)).toEqual([
      { code: 'too_long', message: 'caption is 76 tokens, 1 over the limit of 75; these words are cut off: "dog"', where: 'ds/metadata.jsonl 4 cat.png' },
    ]);
  });
});

describe('dataset-wide report', () => {
  it('reports duplicate captions as CLIP reads them, gaps as ranges, and kohya-style tag counts', () => {
    const items = [item('0', 'a, b, c'), item('1', 'A,  b, c'), item('4', 'b, d'), item('x', 'b')];
    const manifest: Manifest = { dataset: 'ds', source: 'folder', layout: 'lab', items, stray: [], skipped: [{ origin: 'ds/image/9.png', reason: 'truncated file' }] };
    const s = settings();
    const report = buildReport(manifest, items.map((i) => checkItem(i, null, clip, s)), s, { id: clip.id, reason: 'test' });
    expect(brief(report.diagnostics)).toEqual([
      { code: 'numbering', message: 'numbering has a gap: no items 2..3 (items should be numbered 0..2 without gaps)', where: 'ds/image/4.png' },
      { code: 'undecodable', message: 'skipped: truncated file', where: 'ds/image/9.png' },
      { code: 'numbering', message: "'x' is not a number: the lab layout names files image/0.png, image/1.png ... with captions text/0.txt, text/1.txt ...", where: 'ds/image/x.png' },
      { code: 'duplicate_caption', message: 'caption is the same as ds/text/0.txt (as CLIP reads it)', where: 'ds/text/1.txt 1 1' },
      { code: 'numbering', message: "'x' is not a number: the lab layout names files image/0.png, image/1.png ... with captions text/0.txt, text/1.txt ...", where: 'ds/text/x.txt' },
    ]);
    expect(report.tagFrequency).toEqual({ b: 3, c: 2, a: 1, A: 1, d: 1 });
    expect(report.tagsDistinct).toBe(5);
    expect(report.diagnostics.every((d) => d.severity === 'warning')).toBe(true);
  });

  it('keeps the 1,000 most frequent tags in the report and counts them all (unique captions stay O(1) per edit)', () => {
    const items = Array.from({ length: 1500 }, (_, i) => item(String(i), `lineart, pose ${i}`));
    const manifest: Manifest = { dataset: 'ds', source: 'folder', layout: 'lab', items, stray: [], skipped: [] };
    const s = settings();
    const report = buildReport(manifest, items.map((i) => checkItem(i, null, clip, s)), s, { id: clip.id, reason: 'test' });
    expect(report.tagsDistinct).toBe(1501);
    expect(Object.keys(report.tagFrequency!)).toHaveLength(1000);
    expect(Object.entries(report.tagFrequency!)[0]).toEqual(['lineart', 1500]);
    expect(renderMarkdown(report)).toContain('1501 distinct tags (top 50 shown; the 1,000 most frequent in validation.json)');
  });
});
