// The CLIP tokenizer against an independent Python reference (tests/fixtures/text/clip_reference.py,
// stdlib only) and against published SD1.x id sequences, plus the behaviour around it: padding,
// truncation, spans into the original text, the ftfy-like fixes, bad files.
import { CLIP_TOKENIZER_DIR } from './helpers/reference.js';
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClipTokenizer } from '../src/text/load.js';
import type { ClipTokenizer } from '../src/text/clip-tokenizer.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const REF = CLIP_TOKENIZER_DIR;
const BPE_GZ = join(REF, 'bpe_simple_vocab_16e6.txt.gz');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Texts for which ftfy is a no-op, so the stdlib reference covers them exactly. */
const CROSS_CHECKED = [
  'a photo of a cat',
  'one-line-art, a face, side view',
  'one-line-art, a woman, holding a cup of coffee, three quarter view',
  'A drawing of a green pokemon with red eyes',
  'Hello, World! How are you?? ... (fine) [ok] {yes} <tag> #1 @user $5 100% a&b',
  "it's don't we're they've I'm you'll he'd CAN'T it'S",
  "rock'n'roll o'clock 'quoted' ''",
  'numbers 0 1 12 123 3.14 1,000,000 2024-01-01 12:30 1e10 x2 v1.5 SD1.5',
  'café naïve résumé Ångström façade Über straße ÉCOLE',
  '日本語のテキスト 中文字幕 한국어 텍스트',
  'pokemon 皮卡丘 pikachu',
  'emoji 🐱🐶 🎨✨ 👩‍🎨 🇯🇵 ❤️',
  '  extra   whitespace\t\tand\nnew\r\nlines  ',
  '&amp; &lt;b&gt; &quot;quoted&quot; &#39;single&#39; &#x263A; &copy; &eacute;t&eacute; &amp;amp; &ampx',
  '<|startoftext|> a cat <|endoftext|> and <|endoftext|>tail',
  'Ⅻ ½ ² ௫ Ⅷ ①',
  'Ελληνικά ΟΔΟΣ ΣΟΦΟΣ Кириллица ПРИВЕТ עברית العربية हिन्दी ไทย',
  '!!!??? --- ___ *** ~~~ ``` ||| \\\\ ///',
  'the quick brown fox jumps over the lazy dog '.repeat(12),
  'supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis',
  'a',
  '',
  '   ',
];

let tokenizer: ClipTokenizer;
let reference: number[][];

beforeAll(async () => {
  tokenizer = await loadClipTokenizer({ kind: 'openai', bpe: BPE_GZ });
  const out = execFileSync(PYTHON, [join(REPO_ROOT, 'tests/fixtures/text/clip_reference.py'), BPE_GZ], {
    input: JSON.stringify(CROSS_CHECKED),
    encoding: 'utf8',
  });
  reference = JSON.parse(out) as number[][];
});

describe('CLIP tokenizer ids', () => {
  it('matches the published SD1.x ids of "a photo of a cat"', () => {
    expect(tokenizer.encodePadded('a photo of a cat').ids.slice(0, 8)).toEqual([49406, 320, 1125, 539, 320, 2368, 49407, 49407]);
    expect([tokenizer.bos, tokenizer.eos, tokenizer.vocabSize, tokenizer.contextLength]).toEqual([49406, 49407, 49408, 77]);
  });

  it.each(CROSS_CHECKED.map((text, index) => [index, JSON.stringify(text).slice(0, 60)]))(
    'agrees with the independent reference on text %i %s',
    (index) => {
      expect(tokenizer.encode(CROSS_CHECKED[index as number]).ids).toEqual(reference[index as number]);
      expect(tokenizer.encodeIds(CROSS_CHECKED[index as number])).toEqual(reference[index as number]);
    },
  );

  it('gives the same ids and identity from vocab.json + merges.txt as from the .gz', async () => {
    const hf = await loadClipTokenizer({ kind: 'hf', vocab: join(REF, 'vocab.json'), merges: join(REF, 'merges.txt') });
    expect(hf.id).toBe(tokenizer.id);
    expect(hf.id).toMatch(/^clip-bpe:[0-9a-f]{64}$/);
    for (const text of CROSS_CHECKED) expect(hf.encode(text).ids).toEqual(tokenizer.encode(text).ids);
  });
});

describe('ftfy-like cleaning', () => {
  const same = (a: string, b: string) => expect(tokenizer.encode(a).ids).toEqual(tokenizer.encode(b).ids);

  it('uncurls quotes, so typographic apostrophes still make contractions', () => {
    same('don\u2019t \u201cquoted\u201d \u2018single\u2019', 'don\'t "quoted" \'single\'');
    expect(tokenizer.encode('don\u2019t').tokens).toEqual(['don</w>', "'t</w>"]);
  });
  it('narrows full-width forms and the ideographic space', () => {
    same('ＡＢＣ１２３！\u3000ｘ', 'abc123! x');
  });
  it('splits ligatures and drops control characters, BOM and terminal escapes', () => {
    same('\ufb01ne \ufb02ower', 'fine flower');
    same('\ufeffa\u0000 b\u0007c \x1b[31mred\x1b[0m', 'a bc red');
  });
  it('reads C1 controls as Windows-1252 and composes to NFC', () => {
    same('\x93quoted\x94 caf\u0065\u0301', '"quoted" caf\u00e9');
    expect(tokenizer.encode('cafe\u0301').ids).not.toEqual(tokenizer.encode('cafe').ids);
    same('\u01c5emal \u0133', 'd\u017eemal ij');
  });
  it('does not unescape HTML in the ftfy pass when the text contains "<", but CLIP still unescapes twice', () => {
    // &amp;amp;amp; needs three passes: only two are left when '<' is present
    expect(tokenizer.encode('< &amp;amp;amp;').tokens).toEqual(['<</w>', '&</w>', 'amp</w>', ';</w>']);
    expect(tokenizer.encode('&amp;amp;amp;').ids).toEqual(tokenizer.encode('&').ids);
  });
});

describe('padding, truncation and spans', () => {
  it('pads with EOS to exactly 77 ids and flags truncation', () => {
    const short = tokenizer.encodePadded('a cat');
    expect(short.ids).toHaveLength(77);
    expect(short.truncated).toBe(false);
    expect(short.ids.slice(0, 4)).toEqual([49406, 320, 2368, 49407]);
    expect(new Set(short.ids.slice(3))).toEqual(new Set([49407]));

    const long = 'cat '.repeat(80);
    const padded = tokenizer.encodePadded(long);
    expect(padded.truncated).toBe(true);
    expect(padded.ids).toHaveLength(77);
    expect(padded.ids[0]).toBe(49406);
    expect(padded.ids.slice(1, 76)).toEqual(new Array(75).fill(2368));
    expect(padded.ids[76]).toBe(49407);
    expect(tokenizer.encodePadded('cat '.repeat(75)).truncated).toBe(false);
  });

  it('maps every token back to its characters in the original text', () => {
    const text = '  Don\u2019t  stop &amp; the Caf\u00e9  \ud83d\udc31x 12';
    const { tokens, spans } = tokenizer.encode(text);
    const pieces = spans.map(([a, b]) => text.slice(a, b));
    expect(tokens.length).toBe(spans.length);
    expect(pieces).toEqual(['Don', '\u2019t', 'stop', '&amp;', 'the', 'Caf\u00e9', '\ud83d\udc31', 'x', '1', '2']);
  });

  it('gives every byte piece of a split character the whole character as its span', () => {
    const text = '語';
    const { ids, spans } = tokenizer.encode(text);
    expect(ids.length).toBeGreaterThan(1);
    for (const span of spans) expect(span).toEqual([0, 1]);
  });
});

describe('bad tokenizer files', () => {
  const tmp = makeTempDir('lorabuild-vocab-');
  afterAll(tmp.cleanup);

  it('names the file and line of a malformed merge', async () => {
    const path = join(tmp.dir, 'bad.txt.gz');
    writeFileSync(path, gzipSync('bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nthis line has three\n'));
    await expect(loadClipTokenizer({ kind: 'openai', bpe: path })).rejects.toThrow(`${path}:3:1: a merge line is two symbols separated by one space, found 'this line has three'`);
  });
  it('rejects a file that is not gzip', async () => {
    const path = join(tmp.dir, 'plain.txt.gz');
    writeFileSync(path, 'not gzip');
    await expect(loadClipTokenizer({ kind: 'openai', bpe: path })).rejects.toThrow(`${path}: not a readable gzip file`);
  });
  it('rejects a vocab.json whose ids are not 0..n-1', async () => {
    const vocab = join(tmp.dir, 'vocab.json');
    const merges = join(tmp.dir, 'merges.txt');
    writeFileSync(vocab, JSON.stringify({ a: 0, b: 7 }));
    writeFileSync(merges, '#version: 0.2\na b\n');
    await expect(loadClipTokenizer({ kind: 'hf', vocab, merges })).rejects.toThrow(`${vocab}: token 'b' has id 7; ids must be integers 0..1`);
  });
  it('rejects merges that do not belong to the vocabulary', async () => {
    const dir = join(tmp.dir, 'mismatch');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    const { loadOpenAiBpe } = await import('../src/text/bpe-vocab.js');
    const good = await loadOpenAiBpe(BPE_GZ);
    const vocab = Object.fromEntries(good.encoder);
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\ni n\nq z\n');
    await expect(loadClipTokenizer({ kind: 'hf', vocab: join(dir, 'vocab.json'), merges: join(dir, 'merges.txt') })).rejects.toThrow(
      `${join(dir, 'merges.txt')}:3:1: the merge 'q z' makes 'qz', which is not in the vocabulary; vocab.json and merges.txt do not belong together`,
    );
  });
});
