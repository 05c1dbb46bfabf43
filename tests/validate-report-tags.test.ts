// validation.json's tags (src/text/validation-report.ts): the REPORT_TAGS most frequent, chosen as an
// object of every tag would list them (array-index-like tags such as '12' first, ascending), so that
// the report stays the same as before it was built without that object.
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../src/datasets/manifest.js';
import type { ItemCheck, ValidationSettings } from '../src/text/check-item.js';
import { buildReport, REPORT_TAGS } from '../src/text/validation-report.js';

function dataset(tagLists: string[][]): { manifest: Manifest; checks: ItemCheck[] } {
  const items = tagLists.map((_, i) => ({ id: String(i), image: null, caption: { sha256: 'b'.repeat(64), text: 't', clean: 't', origin: `data/text/${i}.txt`, line: 1 } }));
  const checks = tagLists.map((tags, i): ItemCheck => ({ diagnostics: [], tokens: 10, trigger: null, captionKey: String(i), tags }));
  return { manifest: { dataset: 'ds', source: 'folder', layout: 'kohya', items, stray: [], skipped: [] } as unknown as Manifest, checks };
}

/** what the report held when it went through an object of every tag */
function reference(tagLists: string[][]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const tags of tagLists) for (const t of tags) counts.set(t, (counts.get(t) ?? 0) + 1);
  const all = Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]));
  return Object.fromEntries(Object.entries(all).slice(0, REPORT_TAGS));
}

describe('validation report tags', () => {
  it('keeps the tags an object of every tag keeps, index-like tags included, past REPORT_TAGS distinct tags', () => {
    const tagLists: string[][] = [];
    // 3,000 distinct tags, a third of them numbers (some past 2^32, some with a leading zero), all seen once or twice
    for (let i = 0; i < 1500; i++) tagLists.push([`word ${i}`, String(i * 7), i % 3 === 0 ? `0${i}` : String(4294967290 + i)]);
    for (let i = 0; i < 300; i++) tagLists.push([`word ${i * 5}`, String(i * 11)]);
    const { manifest, checks } = dataset(tagLists);
    const settings = { rules: { max_tokens: 75, max_aspect: 3 }, trigger: null, minSize: 512, layout: 'kohya' } as unknown as ValidationSettings;
    const report = buildReport(manifest, checks, settings, { id: 't', reason: 'r' });
    expect(report.tagsDistinct).toBe(new Set(tagLists.flat()).size);
    expect(JSON.stringify(report.tagFrequency)).toBe(JSON.stringify(reference(tagLists)));
  });

  it('keeps tags named like object properties (__proto__, constructor) as tags', () => {
    const tagLists = [['__proto__', 'constructor', 'a'], ['__proto__', 'toString', '3'], ['hasOwnProperty', 'a']];
    const { manifest, checks } = dataset(tagLists);
    const settings = { rules: { max_tokens: 75, max_aspect: 3 }, trigger: null, minSize: 512, layout: 'kohya' } as unknown as ValidationSettings;
    const report = buildReport(manifest, checks, settings, { id: 't', reason: 'r' });
    expect(Object.getPrototypeOf(report.tagFrequency)).toBe(Object.prototype);
    expect(JSON.stringify(report.tagFrequency)).toBe(JSON.stringify(reference(tagLists)));
    expect(JSON.stringify(report.tagFrequency)).toBe('{"3":1,"__proto__":2,"a":2,"constructor":1,"toString":1,"hasOwnProperty":1}');
  });
});
