// `lorabuild watch` rebuilds the validation report after every save, and a save changes one item
// or a few. KeptReport keeps what the dataset-wide part of the last report was made of (the
// diagnostics in place order, duplicate groups, trigger lists, token statistics, tag counts and
// ranks) and updates it from the items that changed, instead of going over every item again.
// Items added or removed are one run of positions between the items kept at the start and at the
// end; the kept items' positions move. The report is the one buildReport gives for the same
// input, byte for byte; whatever this does not update (other settings, stray or skipped files,
// many changed items, changes in more than one run when the number of items changes) goes
// through buildReport, and the kept state starts over.
import type { Diagnostic } from '../config/diagnostic.js';
import type { Manifest, ManifestItem } from '../datasets/manifest.js';
import type { ItemCheck, ValidationSettings } from './check-item.js';
import { checkNumbering, checkStray, duplicateCaption, duplicateImage } from './rules/dataset.js';
import { Findings } from './rules/findings.js';
import { checkSkipped, assembleReport, buildReport, histogramBin, histogramRanges, isIndexKey, naturalOrder, REPORT_TAGS, type ValidationReport } from './validation-report.js';

/** a tag's first use as one number: item position * POS + place in the item's tags */
const POS = 65536;
/** the order of dataset-wide findings after every item's, as buildReport concatenates them */
const DATASET = Number.MAX_SAFE_INTEGER;
const SECTION = 2 ** 40;
const NUMBERING = 0;
const STRAY = 1 * SECTION;
const DUPLICATES = 2 * SECTION;
const SKIPPED = 3 * SECTION;

/** more changed items than this share of the dataset: buildReport goes over everything anyway */
const DELTA_SHARE = 8;

interface Placed {
  d: Diagnostic;
  key: string;
  line: number;
  col: number;
  /** the concatenation order buildReport sorts stably: item position (or DATASET), then place in its list */
  major: number;
  minor: number;
}

function comparePlaced(a: Placed, b: Placed): number {
  return (a.key === b.key ? 0 : naturalOrder(a.key, b.key)) || a.line - b.line || a.col - b.col || a.major - b.major || a.minor - b.minor;
}

/** first index in sorted `list` whose element is not before `probe` */
function lowerBound<T>(list: readonly T[], probe: T, compare: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(list[mid], probe) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insertSorted(list: number[], n: number): void {
  list.splice(lowerBound(list, n, (a, b) => a - b), 0, n);
}

function removeSorted(list: number[], n: number): void {
  const at = lowerBound(list, n, (a, b) => a - b);
  if (list[at] !== n) throw new Error(`kept report: ${n} is not in its list`);
  list.splice(at, 1);
}

/** The report's diagnostics in the order sortByPlace gives them: kept sorted, changed one by one. */
class PlaceOrder {
  private readonly placed: Placed[] = [];
  private readonly byDiagnostic = new Map<Diagnostic, Placed>();
  private sorting = true;

  add(d: Diagnostic, major: number, minor: number): void {
    if (this.byDiagnostic.has(d)) throw new Error('kept report: one diagnostic object in two places');
    const p: Placed = { d, key: d.file ?? d.item ?? '', line: d.line ?? 0, col: d.col ?? 0, major, minor };
    this.byDiagnostic.set(d, p);
    if (this.sorting) this.placed.push(p);
    else this.placed.splice(lowerBound(this.placed, p, comparePlaced), 0, p);
  }

  /** after the first fill: one sort, then every change goes to its place */
  sorted(): void {
    this.placed.sort(comparePlaced);
    this.sorting = false;
  }

  remove(d: Diagnostic): void {
    const p = this.byDiagnostic.get(d);
    if (!p) throw new Error('kept report: a diagnostic it does not hold');
    const at = lowerBound(this.placed, p, comparePlaced);
    if (this.placed[at] !== p) throw new Error('kept report: diagnostics out of order');
    this.placed.splice(at, 1);
    this.byDiagnostic.delete(d);
  }

  list(): Diagnostic[] {
    return this.placed.map((p) => p.d);
  }

  /** an equal diagnostic object in the place of one it holds */
  replace(was: Diagnostic, now: Diagnostic): void {
    const p = this.byDiagnostic.get(was);
    if (!p || this.byDiagnostic.has(now)) throw new Error('kept report: a diagnostic it does not hold, or holds twice');
    this.byDiagnostic.delete(was);
    p.d = now;
    this.byDiagnostic.set(now, p);
  }

  /** the kept items' diagnostics (and duplicate findings) to their positions in this build: the order stays */
  shift(delta: Delta): void {
    if (delta.by === 0) return;
    for (const p of this.placed) {
      if (p.major !== DATASET) p.major = moved(delta, p.major);
      else if (p.minor >= DUPLICATES && p.minor < SKIPPED) {
        const at = p.minor - DUPLICATES;
        const i = Math.floor(at / 2);
        p.minor = DUPLICATES + moved(delta, i) * 2 + (at % 2);
      }
    }
  }
}

/**
 * Items grouped by an image hash or caption key: every item after the first of its group gets a
 * duplicate finding that names the first (checkDuplicates).
 */
class DuplicateGroups {
  /** key -> positions, ascending (a lone position as a number: most groups have one item) */
  private readonly groups = new Map<string, number | number[]>();
  private readonly findings = new Map<number, Diagnostic>();

  constructor(
    private readonly kind: 0 | 1,
    private readonly keyOf: (item: ManifestItem, check: ItemCheck) => string | null,
    private readonly report: (findings: Findings, item: ManifestItem, first: ManifestItem) => void,
  ) {}

  fill(items: readonly ManifestItem[], checks: readonly ItemCheck[]): void {
    for (let i = 0; i < items.length; i++) {
      const key = this.keyOf(items[i], checks[i]);
      if (key !== null) this.join(key, i);
    }
  }

  private members(key: string): readonly number[] {
    const g = this.groups.get(key);
    return g === undefined ? [] : typeof g === 'number' ? [g] : g;
  }

  private join(key: string, i: number): void {
    const g = this.groups.get(key);
    if (g === undefined) this.groups.set(key, i);
    else if (typeof g === 'number') this.groups.set(key, g < i ? [g, i] : [i, g]);
    else insertSorted(g, i);
  }

  private drop(key: string, i: number): void {
    const g = this.groups.get(key);
    if (g === i) this.groups.delete(key);
    else if (typeof g === 'object') {
      removeSorted(g, i);
      if (g.length === 1) this.groups.set(key, g[0]);
    } else throw new Error('kept report: an item missing from its duplicate group');
  }

  private place(order: PlaceOrder, rules: ValidationSettings['rules'], items: readonly ManifestItem[], key: string): void {
    const members = this.members(key);
    for (let m = 1; m < members.length; m++) {
      const findings = new Findings(rules);
      this.report(findings, items[members[m]], items[members[0]]);
      const d = findings.diagnostics[0];
      if (!d) continue;
      this.findings.set(members[m], d);
      order.add(d, DATASET, DUPLICATES + members[m] * 2 + this.kind);
    }
  }

  /** every group's findings, after fill */
  placeAll(order: PlaceOrder, rules: ValidationSettings['rules'], items: readonly ManifestItem[]): void {
    for (const [key, g] of this.groups) if (typeof g === 'object') this.place(order, rules, items, key);
  }

  /**
   * Before the positions move (PlaceOrder.shift): the removed items leave their groups, and the
   * findings of every group an item leaves or joins go. Returns what `rejoin` needs.
   */
  leave(order: PlaceOrder, delta: Delta, was: Snapshot, now: Snapshot): { touched: Set<string>; joined: [string, number][] } {
    const touched = new Set<string>();
    const left: [string, number][] = [];
    const joined: [string, number][] = [];
    for (const i of delta.removed) {
      const key = this.keyOf(was.items[i], was.checks[i]);
      if (key === null) continue;
      touched.add(key);
      left.push([key, i]);
    }
    for (const i of delta.added) {
      const key = this.keyOf(now.items[i], now.checks[i]);
      if (key === null) continue;
      touched.add(key);
      joined.push([key, i]);
    }
    for (const key of touched) {
      for (const m of this.members(key)) {
        const d = this.findings.get(m);
        if (d === undefined) continue;
        order.remove(d);
        this.findings.delete(m);
      }
    }
    for (const [key, i] of left) this.drop(key, i);
    if (delta.by !== 0) this.shift(delta);
    return { touched, joined };
  }

  /** after the positions moved: the added items join their groups, which find again */
  rejoin(order: PlaceOrder, rules: ValidationSettings['rules'], now: Snapshot, { touched, joined }: { touched: Set<string>; joined: [string, number][] }): void {
    for (const [key, i] of joined) this.join(key, i);
    for (const key of touched) this.place(order, rules, now.items, key);
  }

  private shift(delta: Delta): void {
    for (const [key, g] of this.groups) {
      if (typeof g === 'number') this.groups.set(key, moved(delta, g));
      else for (let k = 0; k < g.length; k++) g[k] = moved(delta, g[k]);
    }
    const findings = [...this.findings];
    this.findings.clear();
    for (const [m, d] of findings) this.findings.set(moved(delta, m), d);
  }
}

/** The report's tags: counts, first uses and the report's order, index-like tags apart (inPropertyOrder). */
class TagRanks {
  readonly count = new Map<string, number>();
  /** where the tag is first used: position * POS + place in the item's tags (buildReport's ties) */
  private readonly first = new Map<string, number>();
  /** tags that are not array indexes, by count (descending), then first use */
  private readonly ranked: string[] = [];
  /** array-index tags ('0', '17'), ascending: objects list these first */
  private readonly indexed: string[] = [];
  /** tag lists of two tags or more (isTagStyle) */
  multi = 0;
  private readonly byRank = (a: string, b: string) => this.count.get(b)! - this.count.get(a)! || this.first.get(a)! - this.first.get(b)!;
  private readonly byNumber = (a: string, b: string) => Number(a) - Number(b);

  fill(checks: readonly ItemCheck[]): void {
    for (let i = 0; i < checks.length; i++) {
      const c = checks[i];
      if (c.tokens === null) continue;
      if (c.tags.length >= POS) throw new Error('kept report: too many tags in one caption');
      if (c.tags.length >= 2) this.multi++;
      c.tags.forEach((tag, pos) => {
        const n = this.count.get(tag);
        this.count.set(tag, (n ?? 0) + 1);
        if (n === undefined) this.first.set(tag, i * POS + pos);
      });
    }
    // the map holds the tags in order of first use: a stable sort on the counts alone ranks them
    const entries = [...this.count].filter(([tag]) => !isIndexKey(tag));
    entries.sort((a, b) => b[1] - a[1]);
    for (const [tag] of entries) this.ranked.push(tag);
    for (const tag of this.count.keys()) if (isIndexKey(tag)) this.indexed.push(tag);
    this.indexed.sort(this.byNumber);
  }

  private listOf(tag: string): [string[], (a: string, b: string) => number] {
    return isIndexKey(tag) ? [this.indexed, this.byNumber] : [this.ranked, this.byRank];
  }

  private unrank(tag: string): void {
    const [list, compare] = this.listOf(tag);
    const at = lowerBound(list, tag, compare);
    if (list[at] !== tag) throw new Error('kept report: tags out of order');
    list.splice(at, 1);
  }

  private rank(tag: string): void {
    const [list, compare] = this.listOf(tag);
    list.splice(lowerBound(list, tag, compare), 0, tag);
  }

  update(delta: Delta, was: Snapshot, now: Snapshot): void {
    const added = new Set(delta.added);
    const removed = new Set(delta.removed);
    const touched = new Set<string>();
    for (const i of delta.removed) if (was.checks[i].tokens !== null) for (const tag of was.checks[i].tags) touched.add(tag);
    for (const i of delta.added) {
      const c = now.checks[i];
      if (c.tags.length >= POS) throw new Error('kept report: too many tags in one caption');
      if (c.tokens !== null) for (const tag of c.tags) touched.add(tag);
    }
    // out of the order under the old counts and first uses, back in under the new ones
    for (const tag of touched) if (this.count.has(tag)) this.unrank(tag);
    for (const i of delta.removed) {
      const old = was.checks[i];
      if (old.tokens === null) continue;
      if (old.tags.length >= 2) this.multi--;
      for (const tag of old.tags) this.count.set(tag, this.count.get(tag)! - 1);
    }
    // tags first used by a removed item (all of them touched), and the others' first uses moved
    // with their items (the order of the untouched ones stays)
    const before = new Map<string, number>();
    const at = (tag: string, first: number) => {
      const i = Math.floor(first / POS);
      if (removed.has(i)) before.set(tag, first);
      else if (delta.by !== 0 && i >= delta.from) this.first.set(tag, first + delta.by * POS);
    };
    if (delta.by === 0) {
      for (const tag of touched) {
        const first = this.first.get(tag);
        if (first !== undefined) at(tag, first);
      }
    } else for (const [tag, first] of this.first) at(tag, first);
    /** a tag's first use among the added items, and how often they use it */
    const firstInAdded = new Map<string, number>();
    const usesInAdded = new Map<string, number>();
    for (const i of delta.added) {
      const c = now.checks[i];
      if (c.tokens === null) continue;
      if (c.tags.length >= 2) this.multi++;
      c.tags.forEach((tag, pos) => {
        this.count.set(tag, (this.count.get(tag) ?? 0) + 1);
        usesInAdded.set(tag, (usesInAdded.get(tag) ?? 0) + 1);
        if (!firstInAdded.has(tag)) firstInAdded.set(tag, i * POS + pos);
      });
    }
    // a tag first used by a removed item may now be first used by a kept one further on: its old
    // first use was the earliest, so the kept items before it do not have it
    const sought = new Set<string>();
    let from = Infinity;
    for (const tag of touched) {
      const n = this.count.get(tag)!;
      if (n === 0) {
        this.count.delete(tag);
        this.first.delete(tag);
        continue;
      }
      const old = this.first.get(tag);
      const inAdded = firstInAdded.get(tag) ?? Infinity;
      const gone = before.get(tag);
      if (old !== undefined && gone === undefined) this.first.set(tag, Math.min(old, inAdded));
      else if (n > (usesInAdded.get(tag) ?? 0)) {
        if (gone === undefined) throw new Error('kept report: a new tag that kept items use');
        sought.add(tag);
        // the first kept item after it: the next position, or where the run of changes began
        const i = Math.floor(gone / POS);
        from = Math.min(from, delta.by === 0 ? i + 1 : Math.min(i, delta.from + delta.by));
      } else this.first.set(tag, inAdded);
    }
    for (let i = from; sought.size > 0 && i < now.checks.length; i++) {
      if (added.has(i)) continue;
      const c = now.checks[i];
      if (c.tokens === null) continue;
      c.tags.forEach((tag, pos) => {
        if (!sought.delete(tag)) return;
        this.first.set(tag, Math.min(i * POS + pos, firstInAdded.get(tag) ?? Infinity));
      });
    }
    if (sought.size > 0) throw new Error('kept report: a counted tag that no item uses');
    for (const tag of touched) if (this.count.has(tag)) this.rank(tag);
  }

  /** the report's REPORT_TAGS tags, in its order */
  top(): [string, number][] {
    const out: [string, number][] = [];
    for (const list of [this.indexed, this.ranked]) {
      for (const tag of list) {
        if (out.length === REPORT_TAGS) return out;
        out.push([tag, this.count.get(tag)!]);
      }
    }
    return out;
  }
}

/** Token counts: how many captions, their sum, the largest, how many over the limit, the histogram. */
class TokenStats {
  captions = 0;
  sum = 0;
  over = 0;
  max = 0;
  readonly bins: number[];
  /** token count -> captions with it (the largest when the largest goes) */
  private readonly values = new Map<number, number>();

  constructor(private readonly limit: number) {
    this.bins = histogramRanges(limit).map(() => 0);
  }

  add(tokens: number, sign: 1 | -1): void {
    this.captions += sign;
    this.sum += sign * tokens;
    if (tokens > this.limit) this.over += sign;
    this.bins[histogramBin(tokens, this.limit, this.bins.length)] += sign;
    const n = (this.values.get(tokens) ?? 0) + sign;
    if (n < 0) throw new Error('kept report: a token count it never had');
    if (n === 0) this.values.delete(tokens);
    else this.values.set(tokens, n);
    if (sign === 1 && tokens > this.max) this.max = tokens;
    else if (sign === -1 && n === 0 && tokens === this.max) {
      this.max = 0;
      for (const v of this.values.keys()) if (v > this.max) this.max = v;
    }
  }
}

interface Snapshot {
  items: readonly ManifestItem[];
  checks: readonly ItemCheck[];
}

/**
 * From the last build to this one: the items at `removed` (positions of the last build) went,
 * those at `added` (positions of this one) came, and the others moved by `by` from position
 * `from` on (an edit: the same positions, by 0; an item added or removed: one run of positions)
 */
interface Delta {
  removed: readonly number[];
  added: readonly number[];
  from: number;
  by: number;
  /** kept items whose check is an equal new object (its record read again): [last build's, this one's] */
  remade: readonly [ItemCheck, ItemCheck][];
}

/** a kept item's position in this build */
const moved = (delta: Delta, i: number): number => (i >= delta.from ? i + delta.by : i);

/** what buildReport puts together from every item, kept for updates */
class ReportState {
  private readonly order = new PlaceOrder();
  private readonly images = new DuplicateGroups(0, (item) => item.image?.sha256 ?? null, duplicateImage);
  private readonly captions = new DuplicateGroups(1, (item, check) => (item.caption && check.captionKey !== null ? check.captionKey : null), duplicateCaption);
  private readonly tags = new TagRanks();
  private readonly tokens: TokenStats;
  private numbering: Diagnostic[] = [];
  private withTrigger = 0;
  private present = 0;
  private readonly missing: number[] = [];
  private readonly cut: number[] = [];

  constructor(
    manifest: Manifest,
    now: Snapshot,
    private readonly settings: ValidationSettings,
  ) {
    this.tokens = new TokenStats(settings.rules.max_tokens);
    const rules = settings.rules;
    this.findNumbering(manifest);
    const stray = new Findings(rules);
    checkStray(stray, manifest);
    stray.diagnostics.forEach((d, k) => this.order.add(d, DATASET, STRAY + k));
    const skipped = new Findings(rules);
    checkSkipped(skipped, manifest);
    skipped.diagnostics.forEach((d, k) => this.order.add(d, DATASET, SKIPPED + k));
    this.images.fill(now.items, now.checks);
    this.captions.fill(now.items, now.checks);
    this.images.placeAll(this.order, rules, now.items);
    this.captions.placeAll(this.order, rules, now.items);
    for (let i = 0; i < now.checks.length; i++) this.count(i, now.checks[i], 1);
    this.tags.fill(now.checks);
    this.order.sorted();
  }

  private findNumbering(manifest: Manifest): void {
    for (const d of this.numbering) this.order.remove(d);
    const findings = new Findings(this.settings.rules);
    checkNumbering(findings, manifest);
    this.numbering = findings.diagnostics;
    this.numbering.forEach((d, k) => this.order.add(d, DATASET, NUMBERING + k));
  }

  /** an item's diagnostics, trigger and tokens in (sign 1) or out (-1) of the aggregates */
  private count(i: number, c: ItemCheck, sign: 1 | -1): void {
    if (c.diagnostics.length >= POS) throw new Error('kept report: too many diagnostics in one item');
    c.diagnostics.forEach((d, pos) => (sign === 1 ? this.order.add(d, i, pos) : this.order.remove(d)));
    if (c.trigger !== null) {
      this.withTrigger += sign;
      if (c.trigger === 'present') this.present += sign;
      const list = c.trigger === 'missing' ? this.missing : c.trigger === 'cut' ? this.cut : null;
      if (list) (sign === 1 ? insertSorted : removeSorted)(list, i);
    }
    if (c.tokens !== null) this.tokens.add(c.tokens, sign);
  }

  update(manifest: Manifest, delta: Delta, was: Snapshot, now: Snapshot): void {
    const rules = this.settings.rules;
    for (const [a, b] of delta.remade) a.diagnostics.forEach((d, k) => d !== b.diagnostics[k] && this.order.replace(d, b.diagnostics[k]));
    // numbering reads only where the files are, which a caption edit does not change
    let relocated = delta.by !== 0;
    if (delta.by === 0) for (const i of delta.added) relocated ||= !sameOrigins(was.items[i], now.items[i]);
    // out under the last build's positions, then the kept items move, then in under this build's
    for (const i of delta.removed) this.count(i, was.checks[i], -1);
    const images = this.images.leave(this.order, delta, was, now);
    const captions = this.captions.leave(this.order, delta, was, now);
    this.order.shift(delta);
    if (delta.by !== 0) for (const list of [this.missing, this.cut]) for (let k = 0; k < list.length; k++) list[k] = moved(delta, list[k]);
    for (const i of delta.added) this.count(i, now.checks[i], 1);
    this.images.rejoin(this.order, rules, now, images);
    this.captions.rejoin(this.order, rules, now, captions);
    if (relocated) this.findNumbering(manifest);
    this.tags.update(delta, was, now);
  }

  report(manifest: Manifest, tokenizer: { id: string; reason: string }): ValidationReport {
    const items = manifest.items;
    const where = (i: number) => items[i].caption?.origin ?? items[i].id;
    const tagStyle = this.tokens.captions > 0 && this.tags.multi * 2 >= this.tokens.captions;
    const t = this.tokens;
    return assembleReport(manifest, this.settings, tokenizer, {
      diagnostics: this.order.list(),
      trigger: { present: this.present, of: this.withTrigger, missing: this.missing.map(where), cut: this.cut.map(where) },
      tokens: { max: t.max, sum: t.sum, captions: t.captions, over: t.over, bins: [...t.bins] },
      tags: tagStyle ? { top: this.tags.top(), distinct: this.tags.count.size } : null,
    });
  }
}

function imageOrigin(item: ManifestItem): string | undefined {
  return item.image?.origin ?? item.error?.origin;
}

/** checkNumbering reads these two of an item */
function sameOrigins(a: ManifestItem, b: ManifestItem): boolean {
  return imageOrigin(a) === imageOrigin(b) && a.caption?.origin === b.caption?.origin;
}

function sameList<T>(a: readonly T[], b: readonly T[], same: (x: T, y: T) => boolean): boolean {
  return a.length === b.length && a.every((x, i) => same(x, b[i]));
}

interface Last extends Snapshot {
  /** settings hash and tokenizer: the items' checks are for these */
  key: string;
  manifest: Manifest;
}

/**
 * The last report of one validate stage, updated from the items that changed. `report` gives
 * what buildReport gives for the same arguments.
 */
export class KeptReport {
  private last: Last | undefined;
  private state: ReportState | undefined;
  /** how each report was made: the plain way, a kept state made or updated, or a state that failed its update */
  readonly counts = { plain: 0, made: 0, updated: 0, failed: 0 };

  /**
   * `key` names the settings and tokenizer the checks were made with; `again`: another build will
   * follow (a watch), so the kept state is made now even when no update can use it yet
   */
  report(manifest: Manifest, checks: ItemCheck[], settings: ValidationSettings, key: string, tokenizer: { id: string; reason: string }, again = false): ValidationReport {
    const now: Last = { key, manifest, items: manifest.items, checks };
    const last = this.last;
    this.last = now;
    const delta = last ? changedItems(last, now) : null;
    if (delta === null && !again) {
      // the first build, or one unlike the last: the plain way; kept state is made when an update can use it
      this.state = undefined;
      this.counts.plain++;
      return buildReport(manifest, checks, settings, tokenizer);
    }
    try {
      if (delta !== null && this.state) {
        this.state.update(manifest, delta, last!, now);
        this.counts.updated++;
      } else {
        this.state = new ReportState(manifest, now, settings);
        this.counts.made++;
      }
      return this.state.report(manifest, tokenizer);
    } catch {
      // a state that does not add up is never trusted: the plain way, and start over
      this.state = undefined;
      this.counts.failed++;
      return buildReport(manifest, checks, settings, tokenizer);
    }
  }
}

/**
 * What the report reads of an item besides its check: an item that is a new object with these the
 * same (prepare made it again, from a listing that changed elsewhere) is not a change.
 */
function sameForReport(a: ManifestItem, b: ManifestItem): boolean {
  return (
    a.id === b.id &&
    a.row === b.row &&
    a.image?.sha256 === b.image?.sha256 &&
    a.image?.origin === b.image?.origin &&
    a.error?.origin === b.error?.origin &&
    (a.caption === null) === (b.caption === null) &&
    a.caption?.origin === b.caption?.origin &&
    a.caption?.line === b.caption?.line
  );
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && typeof b === 'object' && a !== null && b !== null && JSON.stringify(a) === JSON.stringify(b));
}

/** the same fields in the same order (the report writes them as they are) with the same values */
function sameDiagnostic(a: Diagnostic, b: Diagnostic): boolean {
  const keys = Object.keys(a);
  const other = Object.keys(b);
  if (keys.length !== other.length) return false;
  for (let k = 0; k < keys.length; k++) {
    if (keys[k] !== other[k] || !sameValue(a[keys[k] as keyof Diagnostic], b[keys[k] as keyof Diagnostic])) return false;
  }
  return true;
}

/** an equal check: the item memo may read a record again (a new object) that it let go of */
function sameCheck(a: ItemCheck, b: ItemCheck): boolean {
  return (
    a.tokens === b.tokens &&
    a.trigger === b.trigger &&
    a.captionKey === b.captionKey &&
    a.tags.length === b.tags.length &&
    a.tags.every((t, k) => t === b.tags[k]) &&
    a.diagnostics.length === b.diagnostics.length &&
    a.diagnostics.every((d, k) => sameDiagnostic(d, b.diagnostics[k]))
  );
}

/** an item kept from the last build: the same or an equal check, and an item the same for the report */
function kept(last: Last, now: Last, i: number, j: number, remade: [ItemCheck, ItemCheck][]): boolean {
  const a = last.checks[i];
  const b = now.checks[j];
  if (!(last.items[i] === now.items[j] || sameForReport(last.items[i], now.items[j]))) return false;
  if (a === b) return true;
  if (!sameCheck(a, b)) return false;
  remade.push([a, b]);
  return true;
}

/**
 * What changed since the last build: positions whose check is not the very object of the last
 * build's, or whose item differs; with another number of items, the one run of positions between
 * the items kept at the start and at the end. null: not an update (other settings, stray or
 * skipped files, or too many changes).
 */
function changedItems(last: Last, now: Last): Delta | null {
  const a = last.manifest;
  const b = now.manifest;
  if (last.key !== now.key || a.dataset !== b.dataset || a.layout !== b.layout) return null;
  if (!sameList(a.stray, b.stray, (x, y) => x === y)) return null;
  if (!sameList(a.skipped, b.skipped, (x, y) => x.origin === y.origin && x.reason === y.reason)) return null;
  const most = Math.max(16, Math.floor(b.items.length / DELTA_SHARE));
  const remade: [ItemCheck, ItemCheck][] = [];
  if (a.items.length === b.items.length) {
    const changed: number[] = [];
    const [before, after, checked, checks] = [a.items, b.items, last.checks, now.checks];
    for (let i = 0; i < after.length; i++) {
      // the very same objects (nearly every item of a save), without a call
      if (checked[i] === checks[i] && before[i] === after[i]) continue;
      if (kept(last, now, i, i, remade)) continue;
      if (changed.length === most) return null;
      changed.push(i);
    }
    return { removed: changed, added: changed, from: b.items.length, by: 0, remade };
  }
  const shorter = Math.min(a.items.length, b.items.length);
  let start = 0;
  while (start < shorter && kept(last, now, start, start, remade)) start++;
  let end = 0;
  while (end < shorter - start && kept(last, now, a.items.length - 1 - end, b.items.length - 1 - end, remade)) end++;
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
  const removed = range(start, a.items.length - end);
  const added = range(start, b.items.length - end);
  if (removed.length + added.length > most) return null;
  return { removed, added, from: a.items.length - end, by: b.items.length - a.items.length, remade };
}
