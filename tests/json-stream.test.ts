import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeJsonStreamed } from '../src/text/json-stream.js';

const dir = mkdtempSync(join(tmpdir(), 'lorabuild-json-stream-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function written(value: unknown): string {
  const file = join(dir, 'out.json');
  writeJsonStreamed(file, value);
  return readFileSync(file, 'utf8');
}

describe('writeJsonStreamed', () => {
  it('writes the bytes JSON.stringify(value, null, 2) writes, for every shape a report holds', () => {
    const values: unknown[] = [
      {},
      [],
      null,
      'text with "quotes", \u0001 and \u2028',
      42.5,
      { a: [], b: {}, c: [1, [2, [3, { d: 'e' }]]], skipped: undefined, f: () => 1, n: null },
      [undefined, () => 1, { x: undefined }, [[]], true],
      { date: new Date(0), nested: { deeper: { deepest: [1, 2, { k: 'v' }] } } },
      { diagnostics: Array.from({ length: 5000 }, (_, i) => ({ severity: i % 3 ? 'error' : 'warning', code: `c${i % 7}`, item: `image/${i}.png`, message: `caption ${i} is empty`, hint: i % 2 ? undefined : 'write one' })) },
    ];
    for (const value of values) expect(written(value)).toBe(`${JSON.stringify(value, null, 2)}\n`);
  });

  it('writes a report larger than its 1 MiB flush size whole', () => {
    const report = { items: 30000, diagnostics: Array.from({ length: 30000 }, (_, i) => ({ code: 'empty-caption', item: `text/${i}.txt`, message: 'the caption is empty'.repeat(2) })) };
    const text = written(report);
    expect(text.length).toBeGreaterThan(2 * 1024 * 1024);
    expect(JSON.parse(text)).toEqual(report);
    expect(text).toBe(`${JSON.stringify(report, null, 2)}\n`);
  });
});
