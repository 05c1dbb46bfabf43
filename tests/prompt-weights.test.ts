// Prompt weighting and chunking as ComfyUI's CLIPTextEncode reads a prompt: the parsed segments and
// weights of tricky prompts (expected values worked out by hand from ComfyUI's rules: (x) = x 1.1 per
// level, (x:w) sets w, the last colon counts, \( \) are literal, a lone parenthesis is text), the
// weight of every token of multi-token words, and the packing into chunks of 75 tokens.
import { beforeAll, describe, expect, it } from 'vitest';
import { parsePromptWeights, parsePythonFloat } from '../src/text/prompt-weights.js';
import { encodePrompt } from '../src/text/prompt.js';
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
    const x = clip.encode('x').ids[0];
    const p = encodePrompt(clip, 'x '.repeat(150).trim());
    expect(p.chunks).toHaveLength(2);
    for (const chunk of p.chunks) {
      expect(chunk.ids).toEqual([clip.bos, ...Array(75).fill(x), clip.eos]);
      expect(chunk.weights).toEqual(Array(77).fill(1));
    }
    expect(encodePrompt(clip, 'x '.repeat(151).trim()).chunks).toHaveLength(3);
  });

  it('moves a short word that does not fit to the next chunk whole, and splits a word of 8 tokens or more', () => {
    // CLIP gives every digit a token of its own: a word of n ones is n tokens
    const a = clip.encode('a').ids[0];
    const seven = clip.encode('1111111').ids;
    const eight = clip.encode('11111111').ids;
    expect([seven.length, eight.length]).toEqual([7, 8]);
    // 70 tokens, then a 7-token weighted word: 70 + 7 > 75, so the word starts chunk 2
    const short = encodePrompt(clip, `${'a '.repeat(70)}(1111111:1.2)`);
    expect(short.chunks).toHaveLength(2);
    expect(short.chunks[0].ids.slice(0, 72)).toEqual([clip.bos, ...Array(70).fill(a), clip.eos]);
    expect(short.chunks[0].ids.slice(72)).toEqual(Array(5).fill(clip.eos)); // EOS padding
    expect(short.chunks[1].ids.slice(0, 9)).toEqual([clip.bos, ...seven, clip.eos]);
    expect(short.chunks[1].weights.slice(0, 9)).toEqual([1, ...Array(7).fill(1.2), 1]);
    // an 8-token word is split at the chunk boundary
    const long = encodePrompt(clip, `${'a '.repeat(70)}(11111111:1.2)`);
    expect(long.chunks[0].ids.slice(70, 77)).toEqual([a, ...eight.slice(0, 5), clip.eos]);
    expect(long.chunks[1].ids.slice(0, 5)).toEqual([clip.bos, ...eight.slice(5), clip.eos]);
  });

  it('the empty prompt is BOS, EOS and padding', () => {
    const p = encodePrompt(clip, '');
    expect(p.chunks).toEqual([{ ids: clip.encodePadded('').ids, weights: Array(77).fill(1) }]);
  });
});
