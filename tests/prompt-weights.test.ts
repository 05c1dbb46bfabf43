// Prompt weighting and chunking as ComfyUI's CLIPTextEncode reads a prompt: the parsed segments and
// weights of tricky prompts (expected values worked out by hand from ComfyUI's rules: (x) = x 1.1 per
// level, (x:w) sets w, the last colon counts, \( \) are literal, a lone parenthesis is text), the
// weight of every token of multi-token words, and the packing into chunks of 75 tokens.
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePromptWeights, parsePythonFloat } from '../src/text/prompt-weights.js';
import { encodePrompt } from '../src/text/prompt.js';
import { byteTokenizer } from '../src/text/byte-tokenizer.js';
import { resolveClipTokenizer } from '../src/text/resolve.js';
import type { Tokenizer } from '../src/text/tokenizer.js';

const seg = (prompt: string) => parsePromptWeights(prompt).map((s) => [s.text, s.weight]);

describe('parsePromptWeights', () => {
  const cases: [string, [string, number][]][] = [
    ['a cat', [['a cat', 1]]],
    ['a (red) cat', [['a ', 1], ['red', 1.1], [' cat', 1]]],
    ['((red))', [['red', 1.1 * 1.1]]],
    ['(((red)))', [['red', 1.1 * 1.1 * 1.1]]],
    ['(red:1.3) cat', [['red', 1.3], [' cat', 1]]],
    ['((red:1.5) fox)', [['red', 1.5], [' fox', 1.1]]], // an explicit weight replaces the nesting
    ['(red:0.5:1.2)', [['red:0.5', 1.2]]], // the last colon holds the weight
    ['(time: 12:00)', [['time: 12', 0]]], // " 12:00" is no number, "00" is: weight 0
    ['(red:x)', [['red:x', 1.1]]], // not a number: the colon stays, the 1.1 applies
    ['(:1.3)', [[':1.3', 1.1]]], // a colon first is text
    ['\\(literal\\) (x)', [['(literal) ', 1], ['x', 1.1]]],
    ['a (cat', [['a ', 1], ['(cat', 1]]], // unbalanced: the parenthesis is text
    ['a) cat', [['a) cat', 1]]],
    ['(a (b:1.4) c)', [['a ', 1.1], ['b', 1.4], [' c', 1.1]]],
    ['(red:-1) (blue:1_0) (green: +.5e1 )', [['red', -1], [' ', 1], ['blue', 10], [' ', 1], ['green', 5]]],
    ['()', []],
  ];
  for (const [prompt, want] of cases) {
    it(JSON.stringify(prompt), () => expect(seg(prompt)).toEqual(want));
  }

  it("reads numbers as Python's float() does", () => {
    expect(parsePythonFloat(' 1.5 ')).toBe(1.5);
    expect(parsePythonFloat('1.')).toBe(1);
    expect(parsePythonFloat('.5')).toBe(0.5);
    expect(parsePythonFloat('1e-1')).toBe(0.1);
    expect(parsePythonFloat('1_000.5')).toBe(1000.5);
    expect(parsePythonFloat('-Infinity')).toBe(-Infinity);
    expect(parsePythonFloat('nan')).toBeNaN();
    for (const bad of ['', '1__0', '_1', '1_', '1.5.', 'e5', '0x10', '1,5', 'one']) expect(parsePythonFloat(bad), bad).toBeNull();
  });

  it('keeps segment offsets into the prompt', () => {
    expect(parsePromptWeights('ab (cd:2) ef').map((s) => s.start)).toEqual([0, 4, 9]);
  });
});

describe('encodePrompt', () => {
  let clip: Tokenizer;
  beforeAll(async () => {
    clip = await resolveClipTokenizer(undefined);
  });

  it('gives every token of a multi-token word its weight', () => {
    const p = encodePrompt(clip, 'a (photorealistic:1.4) cat');
    expect(p.tokens.map((t) => [t.token, t.weight])).toEqual([
      ['a</w>', 1],
      ['photo', 1.4],
      ['realistic</w>', 1.4],
      ['cat</w>', 1],
    ]);
    expect(p.weighted).toBe(true);
    expect(p.chunks).toHaveLength(1);
    expect(p.chunks[0].ids.slice(0, 6)).toEqual([49406, 320, 1153, 16157, 2368, 49407]);
    expect(p.chunks[0].weights.slice(0, 6)).toEqual([1, 1, 1.4, 1.4, 1, 1]);
    expect(p.chunks[0].weights.slice(6).every((w) => w === 1)).toBe(true);
  });

  it('(word:1.0) is the same prompt as word: same ids, no weights', () => {
    const a = encodePrompt(clip, 'a (cat:1.0) on a chair');
    const b = encodePrompt(clip, 'a cat on a chair');
    expect(a.chunks).toEqual(b.chunks);
    expect(a.weighted).toBe(false);
    expect(b.chunks[0].ids).toEqual(clip.encodePadded('a cat on a chair').ids);
  });

  it('a 150-token prompt becomes two chunks of 75 instead of being cut', () => {
    const bytes = byteTokenizer();
    const prompt = 'x'.repeat(150);
    const p = encodePrompt(bytes, prompt);
    expect(p.chunks).toHaveLength(2);
    for (const chunk of p.chunks) {
      expect(chunk.ids).toEqual([256, ...Array(75).fill(120), 257]);
      expect(chunk.weights).toEqual(Array(77).fill(1));
    }
    expect(encodePrompt(bytes, 'x'.repeat(151)).chunks).toHaveLength(3);
  });

  it('moves a short segment that does not fit to the next chunk whole, and splits a long one', () => {
    const bytes = byteTokenizer();
    // 70 tokens, then a 7-token weighted segment: 70 + 7 > 75, so the segment starts chunk 2
    const short = encodePrompt(bytes, `${'a'.repeat(70)}(bbbbbbb:1.2)`);
    expect(short.chunks).toHaveLength(2);
    expect(short.chunks[0].ids.slice(0, 72)).toEqual([256, ...Array(70).fill(97), 257]);
    expect(short.chunks[0].ids.slice(72)).toEqual(Array(5).fill(257)); // EOS padding
    expect(short.chunks[1].ids.slice(0, 9)).toEqual([256, ...Array(7).fill(98), 257]);
    expect(short.chunks[1].weights.slice(0, 9)).toEqual([1, ...Array(7).fill(1.2), 1]);
    // an 8-token segment is split at the chunk boundary
    const long = encodePrompt(bytes, `${'a'.repeat(70)}(bbbbbbbb:1.2)`);
    expect(long.chunks[0].ids.slice(70, 77)).toEqual([97, 98, 98, 98, 98, 98, 257]);
    expect(long.chunks[1].ids.slice(0, 5)).toEqual([256, 98, 98, 98, 257]);
  });

  it('the empty prompt is BOS, EOS and padding', () => {
    const p = encodePrompt(clip, '');
    expect(p.chunks).toEqual([{ ids: clip.encodePadded('').ids, weights: Array(77).fill(1) }]);
  });
});
