// validate:DATASET — the caption and image rules over prepare's manifest.json, per item through
// ctx.item (an edited caption re-checks that item only) plus the dataset-wide rules. Outputs
// validation.json + validation.md; errors fail the stage, which blocks training; warnings do not.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Config, DatasetSpec } from '../config/schema.js';
import type { Manifest, ManifestItem } from '../datasets/manifest.js';
import { canonicalHash, sha256Hex } from '../engine/canonical.js';
import type { Json, StageContext, StageImpl } from '../engine/types.js';
import type { ItemCheck, ValidationSettings } from '../text/check-item.js';
import { tokenizerForDataset } from '../text/resolve.js';

/** bump when a per-item result changes for the same item and settings */
const ITEM_VERSION = 2;

function datasetOf(ctx: StageContext): { name: string; spec: DatasetSpec } {
  const name = ctx.node.target;
  const spec = ctx.config.datasets[name];
  if (!spec) throw new Error(`${ctx.node.id}: the lorafile has no dataset '${name}'`);
  return { name, spec };
}

/** rules.min_size, else the dataset's resolution, else the first lora's training resolution, else 512. */
export function minImageSize(config: Config, name: string, spec: DatasetSpec): number {
  const lora = Object.values(config.loras).find((l) => l.dataset === name);
  return spec.rules.min_size ?? spec.resolution ?? lora?.resolution ?? 512;
}

function readManifest(ctx: StageContext, upstream: string): Manifest {
  const manifest = ctx.readJson(upstream, 'manifest.json') as unknown as Manifest;
  if (!manifest || !Array.isArray(manifest.items) || !Array.isArray(manifest.stray)) {
    throw new Error(`${upstream} manifest.json is not a dataset manifest; run \`lorabuild cache verify\``);
  }
  return manifest;
}

/**
 * A caption's bytes: its text's UTF-8 when they hash to the caption's sha256 (prepare then stored no
 * blob), else read from the store, synchronously (at most 1 MB; an edited caption should not wait for
 * the event loop); null when neither (a lost blob: the text's UTF-8 stands in).
 */
function captionBytes(ctx: StageContext, caption: { sha256: string; text: string }): Buffer | null {
  const utf8 = Buffer.from(caption.text, 'utf8');
  if (sha256Hex(utf8) === caption.sha256) return utf8;
  try {
    return readFileSync(ctx.blobPath(caption.sha256));
  } catch {
    return null;
  }
}

/** The tokenizer of a dataset's model, from what the model's files say (architecture, own tokenizer). */
function tokenizerOptions(ctx: StageContext) {
  return { cacheDir: ctx.cacheDir, modelHint: async (model: string) => (await modelStage()).modelTokenizerHint(ctx, model) };
}

// the model stage brings the hub and checkpoint code: loaded only for a dataset a LoRA trains on
const modelStage = () => import('./model.js');

type ItemKey = { v: number; item: ManifestItem; settings: string; tokenizer: string };

/**
 * manifest item -> its last key: prepare hands the very same (frozen) item objects save after save
 * in `lorabuild watch`, and the same key object is hashed once (cache/item-memo.ts keyHash)
 */
const keptKeys = new WeakMap<ManifestItem, ItemKey>();

function itemKey(item: ManifestItem, settings: string, tokenizer: string): Json {
  let key = keptKeys.get(item);
  if (key?.settings !== settings || key.tokenizer !== tokenizer) {
    key = { v: ITEM_VERSION, item, settings, tokenizer };
    keptKeys.set(item, key);
  }
  return key as unknown as Json;
}

/**
 * What one validate stage computed last, for the next build in the same process (`lorabuild
 * watch`): the item keys by position, and the report, updated from the items that changed.
 */
interface Kept {
  settings: string;
  items: readonly ManifestItem[];
  keys: Json[];
  report: import('../text/validation-delta.js').KeptReport;
}

/** stage (and cache) -> what it kept; a few, for a process that builds more than one project */
const kept = new Map<string, Kept>();
const KEPT_STAGES = 8;

function keptFor(ctx: StageContext, make: () => Kept): Kept {
  const at = `${ctx.cacheDir}\0${ctx.node.id}`;
  let k = kept.get(at);
  if (!k) {
    k = make();
    if (kept.size >= KEPT_STAGES) kept.delete(kept.keys().next().value!);
    kept.set(at, k);
  }
  return k;
}

/**
 * A report listing at most this many diagnostics and captions (a few MB of JSON) is made in memory
 * and stored as a blob; a larger one is streamed to a file (text/json-stream.ts), the same bytes
 */
const INLINE_REPORT_LISTED = 5000;

function listed(report: import('../text/validation-report.js').ValidationReport): number {
  return report.diagnostics.length + (report.trigger ? report.trigger.missing.length + report.trigger.cut.length : 0);
}

/** tags kept in the stage's meta */
const META_TAGS = 50;

/** the `n` most frequent tags (ties by name), in that order */
export function topTags(freq: Record<string, number>, n: number): Record<string, number> {
  const sorted = Object.entries(freq).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return Object.fromEntries(sorted.slice(0, n));
}

export const stage: StageImpl = {
  kind: 'validate',
  version: 3,
  materializeTo: (node) => `datasets/${node.target}`,

  async inputs(ctx) {
    const { name, spec } = datasetOf(ctx);
    const { tokenizer, reason } = await tokenizerForDataset(ctx.config, name, tokenizerOptions(ctx));
    // a hub model's tokenizer comes from its pinned snapshot: the pin goes into the lock here too
    const trainer = Object.values(ctx.config.loras).find((l) => l.dataset === name);
    return {
      params: {
        rules: spec.rules as unknown as Json,
        trigger: spec.trigger ?? null,
        min_size: minImageSize(ctx.config, name, spec),
        tokenizer: tokenizer.id,
        tokenizer_reason: reason,
        ...(trainer ? await (await modelStage()).modelPinParams(ctx, trainer.model) : {}),
      },
      files: {},
    };
  },

  async run(ctx) {
    // the rules and report writers load only when the stage runs (a fresh one only fingerprints)
    const [{ checkItem }, { writeJsonStreamed }, { KeptReport }, { renderMarkdown }, { groupDiagnostics }] = await Promise.all([
      import('../text/check-item.js'),
      import('../text/json-stream.js'),
      import('../text/validation-delta.js'),
      import('../text/validation-markdown.js'),
      import('../config/diagnostic-groups.js'),
    ]);
    const { name, spec } = datasetOf(ctx);
    const manifest = readManifest(ctx, `prepare:${name}`);
    const { tokenizer, reason } = await tokenizerForDataset(ctx.config, name, tokenizerOptions(ctx));
    // a process that builds again (a watch) encodes the next edited caption: the vocabulary is
    // parsed now (~80 ms), not in that save, even when every item here is memoized
    if (ctx.rebuilds) {
      if (tokenizer.encodeIds) tokenizer.encodeIds('a');
      else tokenizer.encode('a');
    }
    const settings: ValidationSettings = { rules: spec.rules, trigger: spec.trigger ?? null, minSize: minImageSize(ctx.config, name, spec), layout: manifest.layout };
    const checks: ItemCheck[] = [];
    // hashed once, not stringified again inside each of a thousand item keys
    const settingsHash = canonicalHash(settings as unknown as Json);
    const keySettings = `${settingsHash}\0${tokenizer.id}`;
    const last = keptFor(ctx, () => ({ settings: '', items: [], keys: [], report: new KeptReport() }));
    // an item at the same place as last build's, the very same object: the same key object
    const lastKeys = last.settings === keySettings ? last.keys : [];
    const lastItems = last.items;
    const keys: Json[] = new Array(manifest.items.length);
    const items = manifest.items;
    for (let i = 0; i < items.length; i++) {
      if (i % 64 === 0 && ctx.signal.aborted) throw new Error('interrupted');
      const item = items[i];
      const key = lastItems[i] === item && lastKeys[i] !== undefined ? lastKeys[i] : itemKey(item, settingsHash, tokenizer.id);
      keys[i] = key;
      // a check costs a tokenization (~20 us): kept in the stage's item pack only, no file each
      const check = ctx.memoized?.<Json>(item.id, key) ?? await ctx.item(item.id, key, async () => {
        const bytes = item.caption ? captionBytes(ctx, item.caption) : null;
        return checkItem(item, bytes, tokenizer, settings) as unknown as Json;
      }, { packOnly: true });
      checks.push(check as unknown as ItemCheck);
      if (i % 500 === 499) ctx.progress(i + 1, items.length, undefined, 'items');
    }
    Object.assign(last, { settings: keySettings, items, keys });
    const report = last.report.report(manifest, checks, settings, keySettings, { id: tokenizer.id, reason }, ctx.rebuilds === true);
    const markdown = renderMarkdown(report);
    if (listed(report) <= INLINE_REPORT_LISTED) {
      // straight into the store: no staging folder made, written, hashed again and removed per save
      ctx.addOutput('validation.json', await ctx.putBlob(Buffer.from(`${JSON.stringify(report, null, 2)}\n`, 'utf8')));
      ctx.addOutput('validation.md', await ctx.putBlob(Buffer.from(markdown, 'utf8')));
    } else {
      // synchronously: behind a thousand memo lookups, async writes wait tens of ms for the event loop
      writeJsonStreamed(join(ctx.outDir, 'validation.json'), report);
      writeFileSync(join(ctx.outDir, 'validation.md'), markdown);
    }
    // printed to a person: a few of each kind and a count (all of them are in validation.json)
    const allIn = `${ctx.config.out}/datasets/${name}/validation.json`;
    if (report.diagnostics.length > 0) ctx.emit({ diagnostics: groupDiagnostics(report.diagnostics, allIn) as unknown as Json[] });
    const meta: Json = {
      items: report.items,
      errors: report.errors,
      warnings: report.warnings,
      tokenizer: tokenizer.id,
      max_tokens: report.tokens.max,
      trigger_coverage: report.trigger ? { present: report.trigger.present, of: report.trigger.of } : null,
      // the most frequent tags only: meta goes into every lock entry and fingerprint downstream,
      // and 100,000 unique captions would make it O(dataset) (validation.json has every tag)
      tag_frequency: report.tagFrequency ? topTags(report.tagFrequency, META_TAGS) : null,
      tags: report.tagsDistinct,
    };
    if (report.errors > 0) {
      // a failed stage records no outputs, but the user needs the report most then: the executor
      // still copies the staged reports into out/
      ctx.log(`validation report: ${ctx.config.out}/datasets/${name}/validation.md`);
      return { meta, failed: { reason: `${report.errors} error${report.errors === 1 ? '' : 's'} in captions` } };
    }
    return { meta };
  },
};
