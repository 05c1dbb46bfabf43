// Builds the StageContext a stage implementation sees: hashing through the stat memo, upstream
// outputs, the per-item memo, blob storage, a staging folder, progress and log lines.
import { readFileSync } from 'node:fs';
import { deepFreeze, parsedJson } from '../cache/parsed-json.js';
import type { ComputeWorker } from '../worker/client.js';
import type { Cas } from '../cache/cas.js';
import type { ItemMemo, ItemRecord, ItemRef } from '../cache/item-memo.js';
import type { TreeRef } from '../cache/chunk-tree.js';
import { joinTrees, splitTrees, treeChars } from '../cache/tree-json.js';
import type { Config } from '../config/schema.js';
import type { FolderFile } from '../datasets/local/walk.js';
import { checkOutputName } from './outputs.js';
import { RateMeter } from './rate.js';
import type { StatMemo } from './stat-memo.js';
import type { Json, LockEntry, OutputFile, StageContext, StageEvent, StageNode, StageOutputs } from './types.js';

export interface ContextDeps {
  config: Config;
  node: StageNode;
  cacheDir: string;
  signal: AbortSignal;
  previous: LockEntry | undefined;
  options: Record<string, Json>;
  memo: StatMemo;
  cas: Cas;
  items: ItemMemo;
  upstream: Map<string, StageOutputs>;
  emit: (event: StageEvent) => void;
  worker: () => Promise<ComputeWorker>;
  walkFolder?: (rootAbs: string, display: string) => Promise<FolderFile[]>;
  /** no event per memoized item (the watch shows none: 10,000 per save were only garbage) */
  quietCached?: boolean;
}

/** a run's item lookups in order: key objects and their refs */
interface Lookups {
  keys: Json[];
  refs: ItemRef[];
}

/** the lookups of each stage's last run with a remembering memo (a watch build looks up the same keys in the same order) */
const lastLookups = new Map<string, Lookups>();
const MAX_LOOKUP_RUNS = 32;

/** What a run of the stage used besides its outputs: recorded in the action cache for gc. */
export interface RunRecord {
  /** blobs used besides those the records of `items` name (packLists adds theirs) */
  refs: Set<string>;
  /** item memo id -> its record, as the action entry's item pack holds it */
  items: Map<string, ItemRecord>;
  added: Map<string, OutputFile>;
  /** chunk trees the outputs name (ctx.writeJson with `trees`), kept by gc with the action entry */
  trees: TreeRef[];
  log: string[];
  itemCounts: { ran: number; cached: number };
}

/**
 * `outDir` null: inputs only (status); item/putBlob/addOutput then refuse. A function is called the
 * first time the stage reads ctx.outDir: most stages (fetch, prepare) write only blobs, so their
 * staging folder is never made.
 */
export function makeStageContext(deps: ContextDeps, outDir: string | (() => string) | null): { ctx: StageContext; record: RunRecord } {
  const { node, cas, items } = deps;
  const record: RunRecord = { refs: new Set(), items: new Map(), trees: [], added: new Map(), log: [], itemCounts: { ran: 0, cached: 0 } };
  const runOnly = (what: string) => {
    if (outDir === null) throw new Error(`${node.id}: ctx.${what} may only be used in run(), not in inputs()`);
  };
  const upstreamOf = (stageId: string): StageOutputs => {
    if (!node.deps.includes(stageId)) throw new Error(`${node.id} reads ${stageId}, which is not one of its dependencies (${node.deps.join(', ') || 'none'})`);
    const outputs = deps.upstream.get(stageId);
    if (!outputs) throw new Error(`${node.id}: outputs of ${stageId} are not available`);
    return outputs;
  };
  const upstreamFile = (stageId: string, name: string): OutputFile => {
    const files = upstreamOf(stageId).files;
    const file = files[name];
    if (!file) throw new Error(`${stageId} has no output named '${name}' (it has: ${Object.keys(files).join(', ') || 'none'})`);
    return file;
  };
  // a memo kept across runs (watch): the keys looked up by this run, in order, for the next one
  const last = outDir !== null && items.remembers ? lastLookups.get(node.id) : undefined;
  const calls: Lookups | undefined = outDir !== null && items.remembers ? { keys: [], refs: [] } : undefined;
  if (calls) {
    lastLookups.delete(node.id);
    lastLookups.set(node.id, calls);
    if (lastLookups.size > MAX_LOOKUP_RUNS) lastLookups.delete(lastLookups.keys().next().value!);
  }
  /** the memo's record for an item key; a hit is recorded and reported as ctx.item does */
  // the key of the lookup just before, when it missed: a stage that asks ctx.memoized, then
  // ctx.item, for an item that is not memoized looks it up twice, and that is one place in `calls`
  // (were it two, every later key would be one place off from the last run's of a run without it)
  let missed: { key: Json; ref: ItemRef } | undefined;
  const lookup = (label: string, key: Json, quiet: boolean): { ref: ItemRef; hit: ItemRecord | undefined } => {
    let ref: ItemRef;
    if (calls && missed !== undefined && missed.key === key) {
      ref = missed.ref;
    } else if (calls) {
      // the very key object the last run looked up at this place has the ref it had (no WeakMap lookup)
      const n = calls.keys.length;
      ref = last !== undefined && last.keys[n] === key && key !== null && typeof key === 'object' ? last.refs[n] : items.ref(node.kind, key);
      calls.keys.push(key);
      calls.refs.push(ref);
    } else ref = items.ref(node.kind, key);
    const hit = items.find(ref);
    missed = calls && !hit && key !== null && typeof key === 'object' ? { key, ref } : undefined;
    // a quiet part (an image decoded once for every caption it gets) is looked up only when its
    // item is not cached, so it would come and go from the item pack run to run: it stays out
    if (hit) {
      // an item's blobs come with its record (packLists adds them); a quiet part's are named here
      if (!quiet) record.items.set(ref.id, hit);
      else for (const sha of hit.refs) record.refs.add(sha);
      if (!quiet) {
        record.itemCounts.cached++;
        if (!deps.quietCached) deps.emit({ stage: node.id, item: label, outcome: 'cached' });
      }
    }
    return { ref, hit };
  };
  // one meter per unit: a stage that encodes items, then trains steps, measures each phase apart
  const meters = new Map<string, RateMeter>();
  const ctx: StageContext = {
    config: deps.config,
    node,
    root: deps.config.root,
    cacheDir: deps.cacheDir,
    signal: deps.signal,
    rebuilds: items.remembers,
    previous: deps.previous,
    options: deps.options,
    get outDir(): string {
      return typeof outDir === 'function' ? outDir() : (outDir ?? '');
    },
    hashFile: (absPath, stat) => deps.memo.hashFile(absPath, { stat }),
    knownHash: (absPath, stat) => deps.memo.lookup(absPath, stat),
    ...(deps.walkFolder ? { walkFolder: deps.walkFolder } : {}),
    upstream: upstreamOf,
    upstreamPath: (stageId, name) => cas.path(upstreamFile(stageId, name).sha256),
    blobPath: (sha256) => cas.path(sha256),
    memoized<T extends Json>(label: string, key: Json, options?: { quiet?: boolean }): T | undefined {
      runOnly('memoized');
      return lookup(label, key, options?.quiet === true).hit?.value as T | undefined;
    },
    async item<T extends Json>(label: string, key: Json, compute: () => Promise<T>, options?: { quiet?: boolean; packOnly?: boolean }): Promise<T> {
      runOnly('item');
      const quiet = options?.quiet === true;
      const { ref, hit } = lookup(label, key, quiet);
      if (hit) return hit.value as T;
      const value = await compute();
      // (a quiet part is in no pack: it is always in the journal)
      const made = items.put(node.kind, ref.keyHash, label, value, ref, { journal: quiet || options?.packOnly !== true });
      if (!quiet) record.items.set(ref.id, made);
      else for (const sha of made.refs) record.refs.add(sha);
      if (!quiet) {
        record.itemCounts.ran++;
        deps.emit({ stage: node.id, item: label, outcome: 'ran' });
      }
      return value;
    },
    writeJson(name, value, options) {
      runOnly('writeJson');
      // frozen before its lists are written: a watch's chunk trees hand their records to readers as they are
      deepFreeze(value);
      const { stored, trees } = splitTrees(cas, value, options?.trees ?? []);
      record.trees.push(...trees);
      const text = `${JSON.stringify(stored)}\n`;
      const blob = cas.putBuffer(Buffer.from(text, 'utf8'));
      ctx.addOutput(name, blob);
      parsedJson.set(blob.sha256, value, text.length + treeChars(trees));
      return blob;
    },
    readJson(stageId, name) {
      const file = upstreamFile(stageId, name);
      const kept = parsedJson.get(file.sha256);
      if (kept !== undefined) return kept;
      const text = readFileSync(cas.path(file.sha256), 'utf8');
      let parsed: Json;
      try {
        parsed = JSON.parse(text) as Json;
      } catch (err) {
        throw new Error(`${stageId} ${name} is not valid JSON (${(err as Error).message}); run \`lorabuild cache verify\``);
      }
      let joined: ReturnType<typeof joinTrees>;
      try {
        joined = joinTrees(cas, parsed);
      } catch (err) {
        throw new Error(`${stageId} ${name}: ${(err as Error).message}`);
      }
      parsedJson.set(file.sha256, joined.value, text.length + treeChars(joined.trees));
      return joined.value;
    },
    async putBlob(data) {
      runOnly('putBlob');
      const blob = Buffer.isBuffer(data) ? cas.putBuffer(data) : await cas.putFile(data.file);
      record.refs.add(blob.sha256);
      return blob;
    },
    addOutput(name, blob) {
      runOnly('addOutput');
      const problem = checkOutputName(name);
      if (problem) throw new Error(`${node.id}: ${problem}`);
      if (!cas.has(blob.sha256, blob.size)) throw new Error(`${node.id}: output ${name} names blob ${blob.sha256}, which is not in the cache`);
      record.added.set(name, blob);
    },
    worker: deps.worker,
    progress(done, total, message, unit) {
      const meter = meters.get(unit ?? '') ?? meters.set(unit ?? '', new RateMeter()).get(unit ?? '')!;
      const { rate, eta_s } = meter.update(done, total);
      const estimate = rate === undefined ? {} : { rate: Number(rate.toPrecision(4)), eta_s: Math.round(eta_s!) };
      deps.emit({ stage: node.id, progress: { done, total, ...(unit ? { unit } : {}), ...(message ? { message } : {}), ...estimate } });
    },
    log(line) {
      record.log.push(line);
    },
    emit(event) {
      deps.emit({ ...event, stage: node.id });
    },
  };
  return { ctx, record };
}
