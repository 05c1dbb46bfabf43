// prepare:DATASET — the fetch listing turned into manifest.json: every item's image decoded and
// measured, original image and caption bytes stored in the CAS, the caption cleaned, and with
// `resolution:` a resized + center-cropped PNG. Per item through ctx.item, keyed by content, so
// editing one caption re-runs that item only (and renaming a file re-runs none).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { DatasetSpec } from '../config/schema.js';
import type { Diagnostic } from '../config/diagnostic.js';
import type { ListedFile, Listing, ListingEntry, Manifest, ManifestItem } from '../datasets/manifest.js';
import { localListing } from '../datasets/listing-paths.js';
import type { Json, StageContext, StageImpl } from '../engine/types.js';
import { IMAGE_LIMITS } from '../images/formats.js';
import { checkListedBytes, checkListedSize, readListedSync, type ListedSource } from '../images/read-listed.js';
import type { CaptionChoice } from '../datasets/hub/caption-choice.js';
import { datasetSpec } from './fetch.js';

/** bump when the per-item result changes for the same bytes */
const ITEM_VERSION = 1;
const MAX_CAPTION_BYTES = 1024 * 1024;
const CONCURRENCY = 16;
const SYNC_READ_BYTES = 64 * 1024;

/** What an item's bytes give, independent of its name and place (the memoized part). */
type ItemContent = {
  image: { sha256: string; width: number; height: number; format: string } | null;
  imageError: string | null;
  caption: { sha256: string; text: string; clean: string } | null;
  prepared: { sha256: string; width: number; height: number } | null;
};

/** The caption training uses: BOM stripped, CRLF/CR -> LF, trimmed. */
export function cleanCaption(text: string): string {
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n').trim();
}

/** Decoded exactly as stored: a BOM stays and bad UTF-8 becomes U+FFFD, for validation to report. */
function decodeCaption(bytes: Buffer): string {
  return new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Bytes of a listed file, refused if too big or changed since fetch listed it. Small files (captions)
 * are read synchronously: one caption must not wait behind a thousand memoized items for the event loop.
 */
async function readListed(file: ListedFile, limit: number): Promise<Buffer> {
  const source = listedSource(file, limit);
  if (file.size <= SYNC_READ_BYTES) return readListedSync(source);
  checkListedSize(source);
  const bytes = await readFile(source.abs);
  checkListedBytes(source, bytes);
  return bytes;
}

function listedSource(file: ListedFile, limit: number): ListedSource {
  if (!file.abs) throw new Error(`${file.path}: the listing says not where the file is`);
  return { path: file.path, abs: file.abs, sha256: file.sha256, size: file.size, limit };
}

interface Sources {
  /** `file`: a file on disk, read (and checked against the listing) by the thread that decodes it */
  image: { sha256: string; load: () => Promise<Uint8Array>; file?: ListedSource } | null;
  caption: { sha256: string; load: () => Promise<Buffer> } | null;
}

// the image pool (and sharp) load only when an item is computed: a run where every item is memoized never needs them
let imagePool: Promise<typeof import('../images/decode-pool.js')> | undefined;

/** The image part of an item, memoized on the image bytes alone: a caption edit never decodes it again. */
type ImageContent = Pick<ItemContent, 'image' | 'imageError' | 'prepared'>;

async function computeImage(ctx: StageContext, image: NonNullable<Sources['image']>, resolution: number | null): Promise<ImageContent> {
  const { decodeAndStore } = await (imagePool ??= import('../images/decode-pool.js'));
  // decoded and stored on a worker thread; the blobs are referenced through the item's value
  const source = image.file ? { file: image.file } : { bytes: await image.load() };
  return decodeAndStore(ctx.cacheDir, source, resolution, (bytes) => ctx.putBlob(bytes));
}

/**
 * Folder datasets: caption bytes that are not UTF-8 go to the CAS (validate reads them there), and the
 * image part is memoized on its own (a caption edit then never decodes the image again). Hub rows
 * (`hubRow`): the caption is text from the parquet file, its bytes that text's UTF-8, which
 * validation reads from the manifest (no blob), and a commit's rows never change (no separate image
 * memo): a file less each, per row.
 */
async function computeContent(ctx: StageContext, label: string, sources: Sources, resolution: number | null, hubRow: boolean): Promise<ItemContent> {
  const content: ItemContent = { image: null, imageError: null, caption: null, prepared: null };
  const image = sources.image;
  if (sources.caption) {
    const bytes = await sources.caption.load();
    const text = decodeCaption(bytes);
    // validate checks a caption's bytes: they go to the store only when its text does not give them
    // back (not UTF-8); otherwise validate takes the text's UTF-8, and a cold build makes a file less per item
    const sha = hubRow || Buffer.from(text, 'utf8').equals(bytes) ? sources.caption.sha256 : (await ctx.putBlob(bytes)).sha256;
    content.caption = { sha256: sha, text, clean: cleanCaption(text) };
  }
  if (image && hubRow) Object.assign(content, await computeImage(ctx, image, resolution));
  else if (image) {
    const key: Json = { v: ITEM_VERSION, part: 'image', image: image.sha256, resolution };
    Object.assign(content, await ctx.item(`${label} image`, key, () => computeImage(ctx, image, resolution), { quiet: true }));
  }
  return content;
}

interface ItemPlace {
  id: string;
  imageOrigin: string | null;
  caption: { origin: string; line: number; choice?: CaptionChoice } | null;
  row?: number;
}

function toManifestItem(place: ItemPlace, content: ItemContent): ManifestItem {
  const item: ManifestItem = {
    id: place.id,
    image: content.image && place.imageOrigin !== null ? { ...content.image, origin: place.imageOrigin } : null,
    caption:
      content.caption && place.caption
        ? { ...content.caption, origin: place.caption.origin, line: place.caption.line, ...(place.caption.choice ? { choice: place.caption.choice } : {}) }
        : null,
  };
  if (content.prepared) item.prepared = content.prepared;
  if (content.imageError !== null) item.error = { code: 'undecodable', message: content.imageError, origin: place.imageOrigin ?? place.id };
  if (place.row !== undefined) item.row = place.row;
  return item;
}

/**
 * What a listing entry gave the last time, kept with the entry object: `lorabuild watch` hands the
 * very same entry objects save after save (datasets/listing-paths.ts), so an unchanged item costs
 * a memo lookup by the same key object and gives the very same manifest item, which validate and
 * the manifest's chunk tree then know by identity. Entries and manifest items are never changed.
 */
interface KeptEntry {
  resolution: number | null;
  place: ItemPlace;
  sources: Sources;
  key: Json;
  content?: ItemContent;
  item?: ManifestItem;
}

const keptEntries = new WeakMap<ListingEntry, KeptEntry>();

/**
 * The entries of each stage's last run and their work, by place: an unchanged entry at the same
 * place (a save changes one caption) is found by comparing, not by a WeakMap lookup.
 */
const lastRuns = new Map<string, { entries: readonly ListingEntry[]; kept: KeptEntry[] }>();
const MAX_LAST_RUNS = 16;

/** an item's memo key: what its bytes are (not its name or place) and how it is prepared */
function itemKey(sources: Sources, resolution: number | null): Json {
  return { v: ITEM_VERSION, image: sources.image?.sha256 ?? null, caption: sources.caption?.sha256 ?? null, resolution };
}

class PrepareRun {
  readonly items: (ManifestItem | null)[] = [];
  /** by item index: items are prepared concurrently, the manifest lists them in order */
  private readonly skippedAt: Manifest['skipped'] = [];
  constructor(
    private readonly ctx: StageContext,
    private readonly spec: DatasetSpec,
    /** items are rows of a hub dataset (see computeContent) */
    private readonly hubRows: boolean,
  ) {
    this.last = lastRuns.get(ctx.node.id);
  }

  /** the last run's entries (by place), and this run's work by place */
  private readonly last: { entries: readonly ListingEntry[]; kept: KeptEntry[] } | undefined;
  private readonly keptAt: KeptEntry[] = [];

  /** the work for a listing entry, kept with the entry object (KeptEntry) */
  private keptFor(index: number, entry: ListingEntry): KeptEntry {
    const resolution = this.spec.resolution ?? null;
    let kept = this.last?.entries[index] === entry ? this.last.kept[index] : keptEntries.get(entry);
    if (kept?.resolution !== resolution) {
      const sources = fileSources(entry);
      kept = { resolution, place: filePlace(entry), sources, key: itemKey(sources, resolution) };
      keptEntries.set(entry, kept);
    }
    this.keptAt[index] = kept;
    return kept;
  }

  /** keeps this run's work by place for the stage's next run (call once every entry was prepared) */
  keepPlaces(entries: readonly ListingEntry[]): void {
    lastRuns.delete(this.ctx.node.id);
    lastRuns.set(this.ctx.node.id, { entries, kept: this.keptAt });
    if (lastRuns.size > MAX_LAST_RUNS) lastRuns.delete(lastRuns.keys().next().value!);
  }

  /** a listing entry the item memo holds, at once (no await); false when it must be computed */
  known(index: number, entry: ListingEntry): boolean {
    const kept = this.keptFor(index, entry);
    const content = this.ctx.memoized?.<ItemContent>(kept.place.id, kept.key);
    if (content === undefined) return false;
    this.finish(index, kept.place, content, undefined, kept);
    return true;
  }

  async processEntry(index: number, entry: ListingEntry): Promise<void> {
    const kept = this.keptFor(index, entry);
    await this.process(index, kept.place, kept.sources, undefined, kept);
  }

  /** `rowError`: a parquet row whose image could not even be read (no bytes to decode) */
  async process(index: number, place: ItemPlace, sources: Sources, rowError?: string, kept?: KeptEntry): Promise<void> {
    const resolution = this.spec.resolution ?? null;
    const key = kept?.key ?? itemKey(sources, resolution);
    const content = await this.ctx.item(place.id, key, () => computeContent(this.ctx, place.id, sources, resolution, this.hubRows));
    this.finish(index, place, content, rowError, kept);
  }

  private finish(index: number, place: ItemPlace, content: ItemContent, rowError: string | undefined, kept: KeptEntry | undefined): void {
    let item: ManifestItem;
    if (kept) {
      // the same record value (an unchanged item): the very same manifest item as the last build
      if (kept.content !== content || !kept.item) Object.assign(kept, { content, item: toManifestItem(place, content) });
      item = kept.item!;
    } else {
      item = toManifestItem(place, content);
    }
    if (rowError !== undefined) item.error = { code: 'undecodable', message: rowError, origin: place.imageOrigin ?? place.id };
    if (item.error && this.spec.bad_images === 'skip') {
      const origin = item.error.origin ?? item.id;
      this.skippedAt[index] = { origin, reason: item.error.message };
      const warning: Diagnostic = {
        severity: 'warning',
        code: 'undecodable',
        message: `skipped: ${item.error.message}`,
        // a parquet origin ('data/train-0.parquet row 3') is not a file to open
        ...(place.row === undefined ? { file: origin } : {}),
        item: item.id,
        hint: 'replace or remove the image (bad_images: skip drops it from training)',
      };
      this.ctx.emit({ item: item.id, diagnostics: [warning as unknown as Json] });
      this.ctx.log(`warning: ${origin}: skipped, ${item.error.message}`);
      this.items[index] = null;
      return;
    }
    this.items[index] = item;
  }

  get skipped(): Manifest['skipped'] {
    return this.skippedAt.filter((s) => s !== undefined);
  }
}

function fileSources(entry: ListingEntry): Sources {
  const image = entry.image;
  const captionFile = entry.captionFile;
  const captionText = entry.captionText;
  let caption: Sources['caption'] = null;
  if (captionFile) caption = { sha256: captionFile.sha256, load: () => readListed(captionFile, MAX_CAPTION_BYTES) };
  else if (captionText) {
    const bytes = Buffer.from(captionText.text, 'utf8');
    caption = { sha256: sha256(bytes), load: async () => bytes };
  }
  if (!image) return { image: null, caption };
  return { image: { sha256: image.sha256, load: () => readListed(image, IMAGE_LIMITS.maxBytes), ...(image.abs ? { file: listedSource(image, IMAGE_LIMITS.maxBytes) } : {}) }, caption };
}

function filePlace(entry: ListingEntry): ItemPlace {
  const caption = entry.captionFile
    ? { origin: entry.captionFile.path, line: 1 }
    : entry.captionText
      ? { origin: entry.captionText.path, line: entry.captionText.line }
      : null;
  return { id: entry.id, imageOrigin: entry.image?.path ?? null, caption };
}

/** progress at most this often (an item every 0.1 ms would otherwise be a line every 0.1 ms with --json) */
const PROGRESS_MS = 200;

/** ctx.progress, called at most every PROGRESS_MS, and always for the last item */
function throttledProgress(ctx: StageContext, unit: string): (done: number, total: number) => void {
  let shown = 0;
  return (done, total) => {
    if (done < total && Date.now() - shown < PROGRESS_MS) return;
    shown = Date.now();
    ctx.progress(done, total, undefined, unit);
  };
}

async function prepareEntries(ctx: StageContext, run: PrepareRun, entries: ListingEntry[]): Promise<void> {
  // memoized items first, without an await each; then the rest, CONCURRENCY at a time
  const pending: number[] = [];
  for (let i = 0; i < entries.length; i++) {
    // (every 256th: a lookup costs less than asking the signal)
    if ((i & 255) === 0 && ctx.signal.aborted) throw new Error('interrupted');
    if (!run.known(i, entries[i])) pending.push(i);
  }
  let next = 0;
  let done = entries.length - pending.length;
  const progress = throttledProgress(ctx, 'items');
  if (done > 0) progress(done, entries.length);
  const worker = async () => {
    while (next < pending.length) {
      if (ctx.signal.aborted) throw new Error('interrupted');
      const index = pending[next++];
      await run.processEntry(index, entries[index]);
      progress(++done, entries.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, pending.length) }, worker));
}

async function hubItems(): Promise<typeof import('../datasets/hub/items.js')> {
  try {
    return await import('../datasets/hub/items.js');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') throw new Error('hub datasets are not available in this build (src/datasets/hub/items.ts is missing)');
    throw err;
  }
}

/** rows in flight at once: their images decode in parallel on sharp's (libuv's) thread pool */
const ROW_CONCURRENCY = 8;

async function prepareHubRows(ctx: StageContext, run: PrepareRun, listing: Listing, spec: DatasetSpec): Promise<void> {
  const mod = await hubItems();
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let index = 0;
  let done = 0;
  let total = 0;
  const rowProgress = throttledProgress(ctx, 'rows');
  const progress = () => rowProgress(done, Math.min(total, spec.max_items ?? total));
  for await (const row of mod.readHubItems(listing, spec, ctx.signal, (rows) => (total = rows))) {
    if (spec.max_items !== undefined && index >= spec.max_items) break;
    const imageBytes = row.image;
    const captionBytes = row.caption ? Buffer.from(row.caption.text, 'utf8') : null;
    const place: ItemPlace = {
      id: `row ${row.row}`,
      imageOrigin: row.origin,
      caption: row.caption ? { origin: row.origin, line: 1, ...(row.caption.choice ? { choice: row.caption.choice } : {}) } : null,
      row: row.row,
    };
    const captionSource = captionBytes ? { sha256: sha256(captionBytes), load: async () => captionBytes } : null;
    const sources: Sources = row.error !== undefined ? { image: null, caption: captionSource } : { image: imageBytes ? { sha256: sha256(imageBytes), load: async () => imageBytes } : null, caption: captionSource };
    const work = run.process(index, place, sources, row.error).then(
      () => {
        inFlight.delete(work);
        done++;
        progress();
      },
      (err: unknown) => {
        inFlight.delete(work);
        failure ??= err;
      },
    );
    inFlight.add(work);
    index++;
    if (inFlight.size >= ROW_CONCURRENCY) await Promise.race(inFlight);
    if (failure !== undefined) break;
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
}

function readListing(ctx: StageContext, upstream: string): Listing {
  const listing = ctx.readJson(upstream, 'listing.json') as unknown as Listing;
  if (!listing || typeof listing !== 'object' || !Array.isArray(listing.entries) || typeof listing.layout !== 'string') {
    throw new Error(`${upstream} listing.json is not a dataset listing`);
  }
  return localListing(ctx.config, listing);
}

type ItemCounts = { items: number; images: number; captions: number; prepared: number; errors: number; images_without_caption: number; captions_without_image: number };

/** each stage's last manifest items and their counts (manifest items are never changed once made) */
const lastCounts = new Map<string, { items: ManifestItem[]; counts: ItemCounts }>();

/**
 * The manifest's counts for the stage's meta: patched from the stage's last counts where the items
 * are the very objects at the very places they were (a save changes one), else in one pass.
 */
function countItems(items: ManifestItem[], slot: string): ItemCounts {
  const last = lastCounts.get(slot);
  let n: ItemCounts;
  if (last && last.items.length === items.length) {
    n = { ...last.counts };
    for (let i = 0; i < items.length; i++) {
      if (items[i] === last.items[i]) continue;
      count(n, last.items[i], -1);
      count(n, items[i], 1);
    }
  } else {
    n = { items: items.length, images: 0, captions: 0, prepared: 0, errors: 0, images_without_caption: 0, captions_without_image: 0 };
    for (const i of items) count(n, i, 1);
  }
  lastCounts.delete(slot);
  lastCounts.set(slot, { items, counts: n });
  if (lastCounts.size > MAX_LAST_RUNS) lastCounts.delete(lastCounts.keys().next().value!);
  return { ...n };
}

function count(n: ItemCounts, i: ManifestItem, by: 1 | -1): void {
  if (i.image) n.images += by;
  if (i.caption) n.captions += by;
  if (i.prepared) n.prepared += by;
  if (i.error) n.errors += by;
  if ((i.image || i.error) && !i.caption) n.images_without_caption += by;
  if (i.caption && !i.image && !i.error) n.captions_without_image += by;
}

export const stage: StageImpl = {
  kind: 'prepare',
  version: 1,
  materializeTo: () => null,

  async inputs(ctx) {
    const { spec } = datasetSpec(ctx);
    const params: Record<string, Json> = {
      resolution: spec.resolution ?? null,
      bad_images: spec.bad_images,
      max_items: spec.max_items ?? null,
    };
    if (spec.hub) {
      // how rows become items (only parquet sources read these)
      params.image_column = spec.image_column;
      params.caption_column = spec.caption_column ?? null;
      params.caption_choice = spec.caption_choice;
      params.caption_seed = spec.caption_seed;
    }
    return { params, files: {} };
  },

  async run(ctx) {
    const { name, spec } = datasetSpec(ctx);
    const upstream = `fetch:${name}`;
    const listing = readListing(ctx, upstream);
    const run = new PrepareRun(ctx, spec, listing.source === 'hub');
    if (listing.layout === 'parquet') {
      await prepareHubRows(ctx, run, listing, spec);
    } else {
      // a hub imagefolder names repo paths: its images are found in this run's HF cache
      const all = listing.source === 'hub' ? await (await hubItems()).locateEntries(listing, ctx.signal) : listing.entries;
      const entries = spec.max_items !== undefined ? all.slice(0, spec.max_items) : all;
      await prepareEntries(ctx, run, entries);
      run.keepPlaces(entries);
    }
    // pushed one by one, not filtered: an item computed after the ones after it (a watch save's
    // changed caption) leaves run.items holey, filter would copy that kind of array, and the loops
    // over every item, compiled on packed arrays, would be compiled again on the first save
    const items: ManifestItem[] = [];
    for (const item of run.items) if (item !== null) items.push(item);
    const manifest: Manifest = { dataset: name, source: listing.source, layout: listing.layout, items, stray: listing.stray ?? [], skipped: run.skipped };
    ctx.writeJson('manifest.json', manifest as unknown as Json, { trees: ['items', 'stray'] });
    return { meta: { ...countItems(items, ctx.node.id), skipped: run.skipped.length, stray: manifest.stray.length } };
  },
};
