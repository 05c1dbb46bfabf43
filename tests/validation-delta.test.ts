// The watch's kept validation report (src/text/validation-delta.ts) is updated from the items that
// changed; it must be byte for byte the report buildReport makes from every item. Random datasets
// and random series of edits (captions, duplicates coming and going, numbering gaps opening and
// closing, tags crossing each other's counts, renamed files, items removed and added back) compare
// the two after every edit, and the kept state must have been updated, not rebuilt.
import { describe, expect, it } from 'vitest';
import type { Diagnostic } from '../src/config/diagnostic.js';
import { RulesSchema, type RulesSpec } from '../src/config/schema.js';
import type { Manifest, ManifestItem } from '../src/datasets/manifest.js';
import type { ItemCheck, ValidationSettings } from '../src/text/check-item.js';
import type { TriggerState } from '../src/text/rules/caption-tokens.js';
import { KeptReport } from '../src/text/validation-delta.js';
import { buildReport } from '../src/text/validation-report.js';
import { renderMarkdown } from '../src/text/validation-markdown.js';
import { writeJsonStreamed } from '../src/text/json-stream.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rng as random } from './helpers/lora-fixtures.js';


const TAGS = ['one-line-art', '__proto__', 'side view', 'front view', 'a face', '0', '7', '12', '01', '4294967295', 'hat', 'hat', 'red', 'blue'];
const TRIGGERS: (TriggerState | null)[] = ['present', 'present', 'present', 'missing', 'cut', null];

interface World {
  rnd: () => number;
  pick: <T>(list: readonly T[]) => T;
  /** how many distinct image hashes and caption keys: few, so duplicates come and go */
  pool: number;
}

function world(seed: number, pool: number): World {
  const rnd = random(seed);
  return { rnd, pick: (list) => list[Math.floor(rnd() * list.length)], pool };
}

/** a lab-layout file name: mostly its number, sometimes a leading zero, a gap or no number */
function nameOf(w: World, n: number): string {
  const r = w.rnd();
  return r < 0.04 ? `0${n}` : r < 0.06 ? `x${n}` : r < 0.1 ? String(n + 3) : String(n);
}

function makeItem(w: World, n: number, name = nameOf(w, n)): ManifestItem {
  const hasImage = w.rnd() > 0.05;
  const hasCaption = w.rnd() > 0.05;
  return {
    id: String(n),
    image: hasImage ? { sha256: `img${Math.floor(w.rnd() * w.pool)}`, width: 64, height: 64, format: 'png', origin: `data/image/${name}.png` } : null,
    caption: hasCaption ? { text: 't', clean: 't', sha256: `cap${n}`, origin: `data/text/${name}.txt`, line: 1 } : null,
    ...(!hasImage && w.rnd() < 0.5 ? { error: { code: 'undecodable' as const, message: 'bad', origin: `data/image/${name}.png` } } : {}),
  };
}

function makeCheck(w: World, item: ManifestItem): ItemCheck {
  const diagnostics: Diagnostic[] = [];
  const count = w.rnd() < 0.7 ? 0 : Math.floor(w.rnd() * 4);
  for (let k = 0; k < count; k++) {
    const file = w.rnd() < 0.5 ? item.caption?.origin : item.image?.origin;
    diagnostics.push({
      severity: w.pick(['error', 'warning'] as const),
      code: w.pick(['whitespace', 'too_long', 'empty_caption']),
      message: `problem ${k}`,
      ...(file ? { file, line: 1 + Math.floor(w.rnd() * 2), col: 1 + Math.floor(w.rnd() * 3) } : { item: item.id }),
    });
  }
  if (!item.caption) return { diagnostics, tokens: null, trigger: null, captionKey: null, tags: [] };
  const empty = w.rnd() < 0.05;
  const tags = empty ? [] : Array.from({ length: Math.floor(w.rnd() * 5) }, () => w.pick(TAGS));
  return {
    diagnostics,
    tokens: empty ? null : Math.floor(w.rnd() * 100),
    trigger: empty ? null : w.pick(TRIGGERS),
    captionKey: empty ? null : `key${Math.floor(w.rnd() * w.pool)}`,
    tags,
  };
}

function settingsOf(layout: string, trigger: string | null, rules: Partial<RulesSpec> = {}): ValidationSettings {
  return { rules: { ...RulesSchema.parse({}), ...rules }, trigger, minSize: 512, layout };
}

const TOKENIZER = { id: 'clip', reason: 'SD 1.5' };

function manifestOf(items: ManifestItem[], layout: 'lab' | 'kohya', stray: string[] = [], skipped: Manifest['skipped'] = []): Manifest {
  return { dataset: 'ds', source: 'folder', layout, items, stray, skipped };
}

/** kept and fresh, as the files validate writes */
function expectSame(kept: KeptReport, manifest: Manifest, checks: ItemCheck[], settings: ValidationSettings, step: string): void {
  const fresh = buildReport(manifest, checks, settings, TOKENIZER);
  const got = kept.report(manifest, checks, settings, JSON.stringify(settings), TOKENIZER);
  expect(JSON.stringify(got, null, 2), step).toBe(JSON.stringify(fresh, null, 2));
  expect(renderMarkdown(got), step).toBe(renderMarkdown(fresh));
}

/** one random edit of items/checks in place; returns its name and, for two-build edits, the build between */
function edit(w: World, items: ManifestItem[], checks: ItemCheck[]): string | [string, ManifestItem[], ItemCheck[]] {
  const i = Math.floor(w.rnd() * items.length);
  const r = w.rnd();
  if (r < 0.35) {
    // a caption saved: same files, new check
    const item = { ...items[i], ...(items[i].caption ? { caption: { ...items[i].caption!, sha256: `cap${w.rnd()}` } } : {}) };
    items[i] = item;
    checks[i] = makeCheck(w, item);
    return `caption ${i}`;
  }
  if (r < 0.5) {
    // the caption now reads as another item's (a duplicate appears), or as no other
    const j = Math.floor(w.rnd() * items.length);
    const c = checks[i];
    checks[i] = { ...c, captionKey: items[i].caption && c.tokens !== null ? (w.rnd() < 0.5 ? checks[j].captionKey : `own${w.rnd()}`) : c.captionKey };
    items[i] = { ...items[i] };
    return `caption key ${i} like ${j}`;
  }
  if (r < 0.6) {
    // the image replaced by a copy of another's, or a new one
    const j = Math.floor(w.rnd() * items.length);
    const image = items[i].image;
    items[i] = { ...items[i], image: image ? { ...image, sha256: w.rnd() < 0.5 && items[j].image ? items[j].image!.sha256 : `new${w.rnd()}` } : null };
    checks[i] = { ...checks[i] };
    return `image ${i} like ${j}`;
  }
  if (r < 0.7) {
    // a tag's count goes up past others': the same tag added to several captions
    const tag = w.pick(TAGS);
    const at: number[] = [];
    for (let k = 0; k < 3; k++) {
      const j = Math.floor(w.rnd() * items.length);
      if (checks[j].tokens === null) continue;
      checks[j] = { ...checks[j], tags: [...checks[j].tags, tag] };
      at.push(j);
    }
    return `tag ${tag} at ${at.join(' ')}`;
  }
  if (r < 0.8) {
    // a file renamed: a numbering gap opens or closes
    items[i] = makeItem(w, i, w.rnd() < 0.5 ? String(i) : String(i + items.length));
    checks[i] = makeCheck(w, items[i]);
    return `renamed ${i}`;
  }
  if (r < 0.84) {
    // an item removed, and in the next build back as it was
    const without = items.filter((_, k) => k !== i);
    return [`removed and re-added ${i}`, without, checks.filter((_, k) => k !== i)];
  }
  if (r < 0.87 && items.length > 8) {
    // one to three items removed for good (at the start, the end or between)
    const at = w.pick([0, i, items.length - 3]);
    const n = 1 + Math.floor(w.rnd() * 3);
    items.splice(at, n);
    checks.splice(at, n);
    return `removed ${n} at ${at}`;
  }
  if (r < 0.9) {
    // a new item (or two) put in, anywhere
    const at = w.pick([0, i, items.length]);
    const fresh = Array.from({ length: 1 + Math.floor(w.rnd() * 2) }, () => makeItem(w, 1000 + Math.floor(w.rnd() * 1000)));
    items.splice(at, 0, ...fresh);
    checks.splice(at, 0, ...fresh.map((item) => makeCheck(w, item)));
    return `${fresh.length} added at ${at}`;
  }
  if (r < 0.93) {
    // prepare made the item again (an equal new object), the check is the same object
    items[i] = structuredClone(items[i]);
    return `item remade ${i}`;
  }
  if (r < 0.96 && items[i].caption) {
    // an item with the same check whose caption moved: still a change for the report
    items[i] = { ...items[i], caption: { ...items[i].caption!, origin: `data/text/moved${i}.txt` } };
    return `caption moved ${i}`;
  }
  if (r < 0.98 && checks[i].diagnostics.length > 0) {
    // all the same but where the first diagnostic points
    const [d, ...rest] = checks[i].diagnostics;
    checks[i] = { ...checks[i], diagnostics: [{ ...d, col: (d.col ?? 0) + 2 }, ...rest] };
    return `diagnostic moved ${i}`;
  }
  // a check made again: equal, but not the same object
  checks[i] = structuredClone(checks[i]);
  return `check remade ${i}`;
}

describe('kept validation report', () => {
  for (const [seed, size, pool, layout] of [
    [1, 40, 6, 'lab'],
    [2, 200, 40, 'lab'],
    [3, 120, 200, 'kohya'],
    [4, 30, 3, 'kohya'],
    [5, 400, 50, 'lab'],
  ] as const) {
    it(`equals buildReport after every edit (seed ${seed}, ${size} items, ${layout})`, () => {
      const w = world(seed, pool);
      const items = Array.from({ length: size }, (_, n) => makeItem(w, n));
      const checks = items.map((item) => makeCheck(w, item));
      const settings = settingsOf(layout, seed % 2 ? 'one-line-art' : null, seed === 4 ? { duplicate_caption: 'off', numbering: 'error' } : {});
      const stray = layout === 'lab' ? ['data/image/7.jpg', 'data/notes.md'] : ['data/a.gif'];
      const skipped = seed === 2 ? [{ origin: 'data/image/9.png', reason: 'not an image' }] : [];
      const kept = new KeptReport();
      expectSame(kept, manifestOf([...items], layout, stray, skipped), [...checks], settings, 'first');
      for (let step = 0; step < 150; step++) {
        let what = edit(w, items, checks);
        if (Array.isArray(what)) {
          expectSame(kept, manifestOf(what[1], layout, stray, skipped), what[2], settings, `step ${step}: ${what[0]}, between`);
          what = what[0];
        }
        // every build has a new manifest and checks array, with the unchanged objects in it
        expectSame(kept, manifestOf([...items], layout, stray, skipped), [...checks], settings, `step ${step}: ${what}`);
      }
      expect(kept.counts.failed).toBe(0);
      expect(kept.counts.updated).toBeGreaterThan(100);
    });
  }

  it('starts over on other settings, stray files or many changes, updates across a different item count, and agrees each time', () => {
    const w = world(9, 10);
    const items = Array.from({ length: 60 }, (_, n) => makeItem(w, n));
    const checks = items.map((item) => makeCheck(w, item));
    const kept = new KeptReport();
    const a = settingsOf('lab', 'one-line-art');
    const b = settingsOf('lab', null, { whitespace: 'off' });
    expectSame(kept, manifestOf([...items], 'lab'), [...checks], a, 'first');
    expectSame(kept, manifestOf([...items], 'lab'), [...checks], a, 'nothing changed');
    expect(kept.counts).toEqual({ plain: 1, made: 1, updated: 0, failed: 0 });
    expectSame(kept, manifestOf([...items], 'lab'), [...checks], b, 'other settings');
    expectSame(kept, manifestOf([...items], 'lab', ['data/x.txt']), [...checks], b, 'a stray file');
    expect(kept.counts).toEqual({ plain: 3, made: 1, updated: 0, failed: 0 });
    expectSame(kept, manifestOf(items.slice(1), 'lab', ['data/x.txt']), checks.slice(1), b, 'an item fewer');
    expectSame(kept, manifestOf(items.slice(1, 50), 'lab', ['data/x.txt']), checks.slice(1, 50), b, 'ten fewer at the end');
    expectSame(kept, manifestOf(items.slice(1), 'lab', ['data/x.txt']), checks.slice(1), b, 'the ten back');
    expectSame(kept, manifestOf([...items], 'lab', ['data/x.txt']), [...checks], b, 'the first back');
    expect(kept.counts).toEqual({ plain: 3, made: 2, updated: 3, failed: 0 });
    // changes at both ends are not one run of positions
    expectSame(kept, manifestOf(items.slice(1, 59), 'lab', ['data/x.txt']), checks.slice(1, 59), b, 'one fewer at each end');
    expectSame(kept, manifestOf([...items], 'lab', ['data/x.txt']), [...checks], b, 'all back');
    expectSame(kept, manifestOf([...items], 'lab', ['data/x.txt']), [...checks], b, 'made again');
    expect(kept.counts).toEqual({ plain: 5, made: 3, updated: 3, failed: 0 });
    // checks read again from the memo: equal new objects are no change
    const remade = checks.map((c) => structuredClone(c));
    expectSame(kept, manifestOf(items.map((item) => structuredClone(item)), 'lab', ['data/x.txt']), remade, b, 'every check and item an equal new object');
    expect(kept.counts).toEqual({ plain: 5, made: 3, updated: 4, failed: 0 });
    const other = remade.map((c) => ({ ...c, tokens: c.tokens === null ? null : c.tokens + 1 }));
    expectSame(kept, manifestOf([...items], 'lab', ['data/x.txt']), other, b, 'every check other');
    expect(kept.counts).toEqual({ plain: 6, made: 3, updated: 4, failed: 0 });
  });

  it('makes its state on the first report when another build follows (a watch), so the first change is an update', () => {
    const w = world(5, 10);
    const items = Array.from({ length: 40 }, (_, n) => makeItem(w, n));
    const checks = items.map((item) => makeCheck(w, item));
    const settings = settingsOf('lab', 'one-line-art');
    const kept = new KeptReport();
    const same = (manifest: Manifest, c: ItemCheck[], step: string) => {
      const got = kept.report(manifest, c, settings, JSON.stringify(settings), TOKENIZER, true);
      expect(JSON.stringify(got, null, 2), step).toBe(JSON.stringify(buildReport(manifest, c, settings, TOKENIZER), null, 2));
    };
    same(manifestOf([...items], 'lab'), [...checks], 'first');
    expect(kept.counts).toEqual({ plain: 0, made: 1, updated: 0, failed: 0 });
    for (let step = 0; step < 20; step++) {
      const what = edit(w, items, checks);
      if (Array.isArray(what)) same(manifestOf(what[1], 'lab'), what[2], `step ${step}: ${what[0]}, between`);
      same(manifestOf([...items], 'lab'), [...checks], `step ${step}`);
    }
    expect(kept.counts.plain).toBe(0);
    expect(kept.counts.failed).toBe(0);
    expect(kept.counts.updated).toBeGreaterThan(10);
  });

  it('keeps diagnostics at one place in item order when items are added and removed', () => {
    // every item's finding points at the same place: only the item order tells them apart
    const itemOf = (n: number) => ({ id: `r${n}`, image: null, caption: { text: 't', clean: 't', sha256: `c${n}`, origin: 'data/meta.csv', line: 1 } }) as ManifestItem;
    const checkOf = (n: number): ItemCheck => ({ diagnostics: [{ severity: 'warning', code: 'whitespace', message: `row ${n}`, file: 'data/meta.csv', line: 1, col: 1 }], tokens: 2, trigger: null, captionKey: `k${n}`, tags: [] });
    const numbers = Array.from({ length: 40 }, (_, n) => n);
    const settings = settingsOf('kohya', null);
    const kept = new KeptReport();
    const build = (what: string) => expectSame(kept, manifestOf(numbers.map(itemOfKept), 'kohya'), numbers.map(checkOfKept), settings, what);
    const items = new Map<number, ManifestItem>();
    const checks = new Map<number, ItemCheck>();
    const itemOfKept = (n: number) => items.get(n) ?? items.set(n, itemOf(n)).get(n)!;
    const checkOfKept = (n: number) => checks.get(n) ?? checks.set(n, checkOf(n)).get(n)!;
    build('first');
    build('made');
    numbers.splice(3, 0, 100, 101);
    build('two added at 3');
    numbers.splice(1, 1);
    build('one removed at 1');
    numbers.splice(30, 0, 102);
    build('one added at 30');
    expect(kept.counts).toEqual({ plain: 1, made: 1, updated: 3, failed: 0 });
  });

  it('a tag first used by an edited caption is then first used by the next caption that has it', () => {
    // tags of one count are in the order of their first use
    const items = Array.from({ length: 5 }, (_, n) => ({ id: String(n), image: null, caption: { text: 't', clean: 't', sha256: `c${n}`, origin: `t/${n}.txt`, line: 1 } }) as ManifestItem);
    const tagsOf = [['hat', 'red'], ['blue', 'red'], ['red', 'blue'], ['hat', 'x'], ['blue', 'x']];
    const checks = tagsOf.map((tags, n): ItemCheck => ({ diagnostics: [], tokens: 3, trigger: null, captionKey: `k${n}`, tags }));
    const settings = settingsOf('kohya', null);
    const kept = new KeptReport();
    expectSame(kept, manifestOf([...items], 'kohya'), [...checks], settings, 'first');
    expectSame(kept, manifestOf([...items], 'kohya'), [...checks], settings, 'made');
    checks[0] = { ...checks[0], tags: ['red', 'y'] };
    expectSame(kept, manifestOf([...items], 'kohya'), [...checks], settings, 'hat gone from item 0');
    checks[2] = { ...checks[2], tags: ['x', 'hat', 'blue'] };
    expectSame(kept, manifestOf([...items], 'kohya'), [...checks], settings, 'hat and x at item 2');
    expect(Object.keys(kept.report(manifestOf([...items], 'kohya'), [...checks], settings, JSON.stringify(settings), TOKENIZER).tagFrequency!)).toEqual(['blue', 'x', 'red', 'hat', 'y']);
    expect(kept.counts.failed).toBe(0);
  });

  // validate stores a small report as JSON.stringify's text and streams a large one: the same bytes
  it('a report as JSON.stringify writes it is the streamed file, byte for byte', () => {
    const w = world(11, 8);
    const items = Array.from({ length: 300 }, (_, n) => makeItem(w, n));
    const checks = items.map((item) => makeCheck(w, item));
    const report = buildReport(manifestOf(items, 'lab', ['data/x.txt']), checks, settingsOf('lab', 'one-line-art'), TOKENIZER);
    expect(report.diagnostics.length).toBeGreaterThan(50);
    const dir = mkdtempSync(join(tmpdir(), 'lorabuild-report-json-'));
    try {
      writeJsonStreamed(join(dir, 'validation.json'), report);
      expect(readFileSync(join(dir, 'validation.json'), 'utf8')).toBe(`${JSON.stringify(report, null, 2)}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
