import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { lockYaml } from '../src/engine/lock-yaml.js';

const tricky = [
  '', 'plain', 'fetch:ds', 'a: b', 'x #y', '#start', '- dash', 'true', 'No', 'null', '~', '0.0001', '1e-7', '007', '0x1F',
  'with "quotes"', "it's", 'tab\there', 'line\nbreak', 'ünïcödé', '日本語', '🙂', '  lead', 'trail  ', '@at', '`tick', '[x]', '{y}', '*star', '&amp', '!bang', '%pct', '|pipe', '>gt', '?q',
  'datasets/one-line-art/text/0.txt', 'cafe\u0301',
];

describe('lockYaml', () => {
  it('round-trips through the yaml parser for awkward strings, numbers and nesting', () => {
    const value = {
      version: 1,
      stages: Object.fromEntries(
        tricky.map((key, i) => [
          key,
          {
            fingerprint: 'a'.repeat(64),
            params: { lr: 0.0001, tiny: 1e-7, big: 12345678901, neg: -3.5, flag: i % 2 === 0, none: null, text: tricky[(i + 1) % tricky.length], list: [1, 'two', null, { k: tricky[i] }, []], empty: {} },
            files: { [tricky[i]]: 'f'.repeat(64) },
          },
        ]),
      ),
    };
    expect(parse(lockYaml(value))).toEqual(value);
  });

  it('sorts keys at every level and is stable', () => {
    const text = lockYaml({ b: 1, a: { d: 'x', c: 'z', e: 'y' } });
    expect(text).toBe('a:\n  c: z\n  d: x\n  e: "y"\nb: 1\n'); // y is a YAML 1.1 boolean: quoted
    expect(lockYaml({ a: { e: 'y', c: 'z', d: 'x' }, b: 1 })).toBe(text);
  });

  it('refuses numbers YAML cannot hold', () => {
    expect(() => lockYaml({ x: Number.NaN })).toThrow(/cannot hold the number NaN/);
  });
});
