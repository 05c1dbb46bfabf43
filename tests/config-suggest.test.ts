import { describe, expect, it } from 'vitest';
import { didYouMean, editDistance } from '../src/config/suggest.js';

describe('editDistance', () => {
  it('counts insertions, deletions, substitutions and adjacent swaps as one edit each', () => {
    expect(editDistance('learning_rte', 'learning_rate')).toBe(1);
    expect(editDistance('pokemom', 'pokemon')).toBe(1);
    expect(editDistance('rnak', 'rank')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
  });
});

describe('didYouMean', () => {
  const keys = ['model', 'dataset', 'rank', 'learning_rate', 'checkpoint_every', 'steps'];

  it('finds the closest candidate for a typo', () => {
    expect(didYouMean('learning_rte', keys)).toBe('learning_rate');
    expect(didYouMean('checkpoint_evry', keys)).toBe('checkpoint_every');
    expect(didYouMean('rnak', keys)).toBe('rank');
    expect(didYouMean('pokemom', new Set(['one-line-art', 'pokemon']))).toBe('pokemon');
  });

  it('ignores case', () => {
    expect(didYouMean('Pokemon', ['pokemon'])).toBe('pokemon');
    expect(didYouMean('EN_TEXT', ['image', 'en_text', 'zh_text'])).toBe('en_text');
  });

  it('returns undefined when nothing is plausibly meant', () => {
    expect(didYouMean('zzz', keys)).toBeUndefined();
    expect(didYouMean('m', ['l'])).toBeUndefined();
    expect(didYouMean('anything', [])).toBeUndefined();
  });

  it('prefers the nearer candidate, then the earlier one', () => {
    expect(didYouMean('step', ['steps', 'seed'])).toBe('steps');
    expect(didYouMean('ab', ['abc', 'abd'])).toBe('abc');
  });
});
