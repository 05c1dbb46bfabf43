// The executor: walks the stage graph DAG-parallel (one queue per resource class), decides per
// stage fresh / cached / stale, runs what is stale, records outputs in the action cache and the
// successful stages in lorafile.lock. In 'status' mode it decides but runs and writes nothing
// except the stat memo.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { ActionCache, keepPackLeaves, packLists, type PackedItem } from '../cache/action-cache.js';
import { readSharedTree, readTreeLeaves, TreeDamage } from '../cache/chunk-tree.js';
import { readRegularFileSync, writeOwnedFileAtomic } from '../cache/safe-fs.js';
import { Cas } from '../cache/cas.js';
import { ItemMemo } from '../cache/item-memo.js';
import { CacheLayout } from '../cache/layout.js';
import type { ClusterSpec, Config } from '../config/schema.js';
import type { FolderFile } from '../datasets/local/walk.js';
import type { ComputeWorker } from '../worker/client.js';
import { canonicalJson, SHA256_RE } from './canonical.js';
import { fingerprint, outputsDigest } from './fingerprint.js';
import { badFileHash, keepAtHand, longFilesDigest, withFilesRead, writeFilesTree } from './file-tree.js';
import { readLockfile, writeLockfile } from './lockfile.js';
import { Limiter } from './limiter.js';
import { checkOutputName, checkOutputs, listStaged, materialize } from './outputs.js';
import { staleReasons, summarize } from './reasons.js';
import { makeStageContext } from './stage-context.js';
import { StatMemo, type HashStats } from './stat-memo.js';
import type { Json, LockEntry, Plan, ResourceClass, StageEvent, StageImpl, StageInputs, StageKind, StageNode, StageOutcome, StageOutputs } from './types.js';
import { clusterWorker, runWorker } from './run-worker.js';
import type { RemoteCache } from '../cache/remote/remote-cache.js';
import { CHEAP_KINDS } from './stage-kinds.js';

export type StageRegistry = (kind: StageKind) => Promise<StageImpl>;

export interface ExecuteOptions {
  config: Config;
  plan: Plan;
  registry: StageRegistry;
  cacheDir: string;
  lockFile: string;
  /**
   * 'warm': the stages in `warm` run as in 'run', fresh or not, and nothing is recorded (no action
   * entry, lock, out/ copy, log or last-run record): only the blobs they write (the same as
   * before) and the memos passed in. The plan's other stages are decided as in 'status'. A watch
   * fills its memos so while it waits for the first save.
   */
  mode: 'run' | 'status' | 'warm';
  /** with mode 'warm': the stages that run (ones that read only local files: not train or render) */
  warm?: ReadonlySet<string>;
  signal?: AbortSignal;
  options?: Record<string, Json>;
  keepGoing?: boolean;
  onEvent?: (event: StageEvent) => void;
  /** ids of every stage the lorafile has now; lock entries of other stages are dropped */
  knownStageIds?: Set<string>;
  worker?: () => Promise<ComputeWorker>;
  concurrency?: Partial<Record<ResourceClass, number>>;
  /**
   * A per-item memo kept across runs by a long-lived process (`lorabuild watch`): made with
   * { remember: true }, its records are not re-read from disk for every run.
   */
  items?: ItemMemo;
  /**
   * the store, kept across runs by a long-lived process: one that remembers presence
   * (refreshed at the start of each run) writes an unchanged chunk-tree leaf without a stat
   */
  cas?: Cas;
  /** a stat memo kept across runs by a long-lived process; its racy entries are dropped after each run */
  statMemo?: StatMemo;
  /** lists dataset folders; `lorabuild watch` passes its walk cache (default: a full walk per build) */
  walkFolder?: (rootAbs: string, display: string) => Promise<FolderFile[]>;
  /** emit no event per memoized item (`lorabuild watch` shows none); stage events still count them */
  quietCachedItems?: boolean;
  /** stages that cannot run, with why (a missing input found by the pre-flight check): they fail at once */
  blocked?: Map<string, string>;
  /** a remote cache (cache/remote): read before a compute stage runs, written after it ran */
  remote?: RemoteCache;
  /** run train and render as Slurm jobs (cluster/slurm-worker.ts) */
  cluster?: ClusterSpec;
}

export type ReportOutcome = StageOutcome | 'stale';

export interface StageReport {
  stage: string;
  outcome: ReportOutcome;
  reason: string;
  durationMs: number;
  fingerprint?: string;
  items?: { ran: number; cached: number };
  /** 'remote' when a cached outcome came from the remote cache */
  source?: 'local' | 'remote';
}

export interface ExecuteResult {
  reports: Map<string, StageReport>;
  /** outputs (files and meta) of the stages that ended fresh, cached or ran */
  outputs: Map<string, StageOutputs>;
  interrupted: boolean;
  hashing: HashStats;
  lockWritten: boolean;
  /** the existing lock could not be read (and was ignored) */
  lockProblem?: string;
}

class Interrupted extends Error {}

interface Decided {
  report: StageReport;
  outputs?: StageOutputs;
  lockEntry?: LockEntry;
  /** what the stage leaves for later builds, written right after its final event (recordStages) */
  records?: (() => void)[];
}

export async function execute(opts: ExecuteOptions): Promise<ExecuteResult> {
  const { config, plan, mode } = opts;
  const signal = opts.signal ?? new AbortController().signal;
  const emit = opts.onEvent ?? (() => {});
  const layout = new CacheLayout(opts.cacheDir);
  mkdirSync(opts.cacheDir, { recursive: true });
  // leftovers of killed runs go; the folder itself stays (the watch runs a build per save)
  if (mode === 'run') cleanTemp(opts.cacheDir);
  const memo = opts.statMemo ?? StatMemo.load(layout.statMemo);
  const cas = opts.cas ?? new Cas(opts.cacheDir);
  cas.refreshPresence();
  const actions = new ActionCache(opts.cacheDir);
  const items = opts.items ?? new ItemMemo(opts.cacheDir, cas);
  items.refresh();
  const loaded = readLockfile(opts.lockFile, opts.cacheDir, (abs) => memo.knownHash(abs));
  const previousLock = loaded.lock;

  const sharedWorker = runWorker(config, opts.cacheDir);
  const worker = opts.worker ?? (() => sharedWorker.get());
  const cluster = opts.cluster ? clusterWorker(config, opts.cacheDir, opts.cluster, worker) : undefined;

  const cpu = opts.concurrency?.cpu ?? Math.max(1, availableParallelism());
  const queues: Record<ResourceClass, Limiter> = {
    cpu: new Limiter(cpu),
    net: new Limiter(opts.concurrency?.net ?? 4),
    gpu: new Limiter(opts.concurrency?.gpu ?? 1),
  };

  let recordProblem: string | undefined;
  const outputs = new Map<string, StageOutputs>();
  const fingerprints = new Map<string, string>();
  const newEntries = new Map<string, LockEntry>();
  const decided = new Map<string, Promise<StageReport>>();
  const uploads: Promise<void>[] = [];
  let haltedBy: string | undefined;

  const finish = (d: Decided): StageReport => {
    if (d.outputs && d.report.fingerprint) {
      outputs.set(d.report.stage, d.outputs);
      fingerprints.set(d.report.stage, d.report.fingerprint);
    }
    if (d.lockEntry) newEntries.set(d.report.stage, d.lockEntry);
    if (d.report.outcome === 'failed' && !opts.keepGoing && mode === 'run') haltedBy ??= d.report.stage;
    emit({
      stage: d.report.stage,
      outcome: d.report.outcome,
      reason: d.report.reason,
      durationMs: d.report.durationMs,
      ...(d.report.items ? { items: d.report.items } : {}),
      ...(d.report.source ? { source: d.report.source } : {}),
    });
    if (d.records) recordProblem ??= recordStages(d.records);
    return d.report;
  };

  const processStage = async (node: StageNode): Promise<Decided> => {
    const started = Date.now();
    const report = (outcome: ReportOutcome, reason: string, extra: Partial<StageReport> = {}): StageReport => ({
      stage: node.id,
      outcome,
      reason,
      durationMs: Date.now() - started,
      ...extra,
    });
    const impl = await opts.registry(node.kind);
    // a warm-up reruns its stages; the others are only decided, as `status` does
    const rerun = mode === 'warm' && opts.warm?.has(node.id) === true;
    const decideOnly = mode === 'status' || (mode === 'warm' && !rerun);
    const previous = previousLock.stages[node.id];
    const onCluster = cluster !== undefined && node.resource === 'gpu';
    const contextDeps = {
      config,
      node,
      cacheDir: opts.cacheDir,
      signal,
      previous,
      options: onCluster ? { ...opts.options, executor: 'slurm' } : (opts.options ?? {}),
      memo,
      cas,
      items,
      upstream: outputs,
      emit,
      worker: onCluster ? () => cluster.get() : worker,
      walkFolder: opts.walkFolder,
      quietCached: opts.quietCachedItems === true,
    };
    const inputs = checkInputs(node, await impl.inputs(makeStageContext(contextDeps, null).ctx));
    const upstreamDigests: Record<string, string> = {};
    const upstreamFps: Record<string, string> = {};
    for (const dep of node.deps) {
      upstreamDigests[dep] = outputsDigest(outputs.get(dep)!);
      upstreamFps[dep] = fingerprints.get(dep)!;
    }
    const fp = fingerprint({ kind: node.kind, version: impl.version, params: inputs.params, files: inputs.files, upstream: upstreamDigests });
    const materializedDir = materializedFolder(impl, node, config);
    const lockEntry = (out: StageOutputs): LockEntry => {
      // a long file map: the lock keeps its digest and tree root; the tree is written (to this
      // cache) only when the entry's files changed, so a no-op run never builds it (status
      // writes no lock, and no tree)
      const digest = longFilesDigest(inputs.files);
      const kept = previous?.filesTree !== undefined && previous.filesTree.digest === digest && (mode !== 'run' || cas.has(previous.filesTree.root));
      const filesTree = digest === undefined ? undefined : kept ? previous!.filesTree : mode === 'run' ? writeFilesTree(inputs.files, cas) : undefined;
      if (kept && items.remembers) keepAtHand(previous!.filesTree!, inputs.files, false);
      return {
        fingerprint: fp,
        params: inputs.params,
        files: filesTree ? {} : inputs.files,
        ...(filesTree ? { filesTree } : {}),
        upstream: upstreamFps,
        outputs: out.files,
        meta: out.meta,
        implVersion: impl.version,
      };
    };

    let reasons: string[];
    if (rerun) {
      reasons = ['filling the memos'];
    } else if (previous?.fingerprint === fp && actions.has(fp)) {
      const problems = await checkOutputs(previous.outputs, materializedDir, config.root, cas, memo);
      const out: StageOutputs = { files: previous.outputs, meta: previous.meta };
      if (items.remembers && !decideOnly) keepItemPack(items, actions.get(fp));
      if (problems.length === 0) return { report: report('fresh', 'up to date', { fingerprint: fp }), outputs: out, lockEntry: lockEntry(out) };
      reasons = problems.map((p) => p.message);
      if (!problems.some((p) => p.blobBad)) {
        if (decideOnly) return { report: report('cached', `${summarize(reasons)} (restorable from cache)`, { fingerprint: fp }), outputs: out };
        materialize(out.files, Object.keys(out.files), materializedDir!, cas, memo, config.root);
        return { report: report('cached', `${summarize(reasons)}; restored from cache`, { fingerprint: fp }), outputs: out, lockEntry: lockEntry(out) };
      }
    } else if (previous?.fingerprint === fp) {
      // a fresh clone (or cleared cache) with a committed lock and out/: take the outputs back
      // into the cache when every copy still has its recorded hash, instead of rebuilding
      const out: StageOutputs = { files: previous.outputs, meta: previous.meta };
      if (materializedDir && Object.keys(out.files).length > 0 && (await copiesMatch(out.files, materializedDir, memo))) {
        if (decideOnly) return { report: report('cached', 'the cache lacks it, but its outputs in out/ match lorafile.lock (restorable)', { fingerprint: fp }), outputs: out };
        for (const name of Object.keys(out.files)) await cas.putFile(join(materializedDir, ...name.split('/')), true);
        actions.put({ version: 1, stage: node.id, kind: node.kind, fingerprint: fp, params: inputs.params, upstream: upstreamFps, outputs: out, refs: [], items: [], createdAt: new Date().toISOString(), durationMs: 0 });
        return { report: report('cached', 'the cache lacked it; adopted its outputs from out/ (they match lorafile.lock)', { fingerprint: fp }), outputs: out, lockEntry: lockEntry(out) };
      }
      reasons = ['its cache entry is gone (cache cleared, gc or verify removed it)'];
    } else {
      reasons = staleReasons(previous && withFilesRead(previous, cas), { implVersion: impl.version, params: inputs.params, files: inputs.files, upstream: upstreamFps });
      if (reasons.length === 0) reasons = ['tool or environment versions changed'];
    }

    const entry = rerun ? undefined : actions.get(fp);
    if (entry && restorable(entry, cas)) {
      const out = entry.outputs;
      if (decideOnly) return { report: report('cached', `${summarize(reasons)} (restorable from cache)`, { fingerprint: fp }), outputs: out };
      if (materializedDir) materialize(out.files, Object.keys(previous?.outputs ?? {}), materializedDir, cas, memo, config.root);
      keepItemPack(items, entry);
      return { report: report('cached', `${summarize(reasons)}; restored from cache`, { fingerprint: fp }), outputs: out, lockEntry: lockEntry(out) };
    }
    if (decideOnly) return { report: report('stale', summarize(reasons), { fingerprint: fp }) };

    const remote = mode === 'run' && opts.remote && usesRemote(node) ? opts.remote : undefined;
    const fromRemote = remote ? await remote.fetch(node, fp, cas, actions) : undefined;
    if (fromRemote) {
      for (const blob of Object.values(fromRemote.files)) memo.record(cas.path(blob.sha256), statSync(cas.path(blob.sha256)), blob.sha256, true);
      if (materializedDir) materialize(fromRemote.files, Object.keys(previous?.outputs ?? {}), materializedDir, cas, memo, config.root);
      return { report: report('cached', `${summarize(reasons)}; restored from the remote cache`, { fingerprint: fp, source: 'remote' }), outputs: fromRemote, lockEntry: lockEntry(fromRemote) };
    }

    // run it
    if (signal.aborted) throw new Interrupted();
    emit({ stage: node.id, outcome: 'started', reason: summarize(reasons) });
    // made when the stage first asks for it (a folder made and removed costs ~1 ms on ext4)
    let staging: string | undefined;
    const stagingDir = (): string => {
      if (staging === undefined) {
        mkdirSync(layout.tmp, { recursive: true });
        staging = mkdtempSync(join(layout.tmp, 'stage-'));
      }
      return staging;
    };
    const { ctx, record } = makeStageContext(contextDeps, stagingDir);
    preloadItems(items, actions, cas, previous?.fingerprint);
    const records: (() => void)[] = [];
    const recordRun = (outcome: string, reason: string, kept: string[] = []) => {
      if (rerun) return;
      const at = new Date().toISOString();
      records.push(() => {
        // a log lost in a crash is only a missing log; the last-run record names the reports kept in out/, so it is replaced plainly
        writeOwnedFileAtomic(opts.cacheDir, layout.log(fp), record.log.length ? `${record.log.join('\n')}\n` : '', { missingIsAbsent: true });
        writeOwnedFileAtomic(opts.cacheDir, layout.lastRun(node.id), JSON.stringify({ stage: node.id, fingerprint: fp, outcome, reason, at, ...(kept.length ? { kept } : {}) }));
      });
    };
    try {
      let result;
      try {
        result = await impl.run(ctx, inputs);
      } catch (err) {
        if (signal.aborted) throw new Interrupted();
        const message = err instanceof Error ? err.message : String(err);
        record.log.push(`error: ${err instanceof Error ? (err.stack ?? message) : message}`);
        items.settleUnfiled(record.items, false);
        recordRun('failed', message);
        return { report: report('failed', message, { fingerprint: fp, items: record.itemCounts }), records };
      }
      if (signal.aborted) throw new Interrupted();
      if (result.failed) {
        // no pack is recorded for a failed run: what it computed goes to the item journal
        items.settleUnfiled(record.items, false);
        if (rerun) return { report: report('failed', result.failed.reason, { fingerprint: fp, items: record.itemCounts }) };
        // what a failed stage wrote (validation.md with the caption errors) is what the user needs
        // most: it goes to out/ like outputs do, but into no lock entry
        const kept = materializedDir && (staging !== undefined || record.added.size > 0) ? await keepFailureReports(staging, record.added, materializedDir, [...Object.keys(previous?.outputs ?? {}), ...keptBefore(layout, node.id)], cas, memo, config.root) : [];
        recordRun('failed', result.failed.reason, kept);
        return { report: report('failed', result.failed.reason, { fingerprint: fp, items: record.itemCounts }), records };
      }
      const files: StageOutputs['files'] = {};
      if (staging !== undefined) for (const [name, abs] of listStaged(staging)) files[name] = await cas.putFile(abs);
      for (const [name, blob] of record.added) files[name] = blob;
      // we know these hashes: the next freshness check need not read the blobs
      for (const blob of Object.values(files)) memo.record(cas.path(blob.sha256), statSync(cas.path(blob.sha256)), blob.sha256, true);
      const out: StageOutputs = { files, meta: result.meta ?? null };
      const durationMs = Date.now() - started;
      const lists = packLists(cas, record.refs, record.items, node.id);
      // a memo that remembers its records (watch) has this pack's records already
      if (lists.itemPack) items.packed(lists.itemPack.root, record.items.keys());
      // a warm-up records no action entry, so its pack is found by no later run
      items.settleUnfiled(record.items, lists.itemPack !== undefined && !rerun);
      if (rerun) {
        // the map the lock records, at hand for the first save (built now if still lazy: no save yet)
        if (previous?.filesTree) keepAtHand(previous.filesTree, inputs.files, true);
        return { report: report('ran', summarize(reasons), { fingerprint: fp, items: record.itemCounts }), outputs: out };
      }
      const entry = {
        version: 1 as const,
        stage: node.id,
        kind: node.kind,
        fingerprint: fp,
        params: inputs.params,
        upstream: upstreamFps,
        outputs: out,
        ...lists,
        ...(record.trees.length > 0 ? { trees: record.trees } : {}),
        createdAt: new Date().toISOString(),
        durationMs,
      };
      records.push(() => actions.put(entry));
      if (remote) uploads.push(remote.upload(entry, cas));
      if (materializedDir) materialize(out.files, [...Object.keys(previous?.outputs ?? {}), ...keptBefore(layout, node.id)], materializedDir, cas, memo, config.root);
      const reason = summarize(reasons);
      recordRun('ran', reason);
      return { report: report('ran', reason, { fingerprint: fp, items: record.itemCounts }), outputs: out, lockEntry: lockEntry(out), records };
    } finally {
      if (staging !== undefined) rmSync(staging, { recursive: true, force: true });
    }
  };

  const schedule = (node: StageNode): Promise<StageReport> => {
    const blockedBy = async (): Promise<StageReport | undefined> => {
      const deps = await Promise.all(node.deps.map((d) => decided.get(d)!));
      // a failed dependency decides before a stale one: the stage will not run at all
      return deps.find((r) => r.outcome === 'failed' || r.outcome === 'skipped') ?? deps.find((r) => r.outcome === 'stale');
    };
    return (async () => {
      const blocker = await blockedBy();
      if (blocker) {
        const reason =
          blocker.outcome === 'failed'
            ? `${blocker.stage} failed`
            : blocker.outcome === 'stale'
              ? `upstream ${blocker.stage} is stale`
              : blocker.reason;
        return finish({ report: { stage: node.id, outcome: mode === 'status' && blocker.outcome === 'stale' ? 'stale' : 'skipped', reason, durationMs: 0 } });
      }
      const cannot = opts.blocked?.get(node.id);
      if (cannot !== undefined) {
        if (mode === 'run') writeOwnedFileAtomic(opts.cacheDir, layout.lastRun(node.id), JSON.stringify({ stage: node.id, fingerprint: null, outcome: 'failed', reason: cannot, at: new Date().toISOString(), log: `error: ${cannot}\n` }));
        return finish({ report: { stage: node.id, outcome: 'failed', reason: cannot, durationMs: 0 } });
      }
      return queues[node.resource].add(async () => {
        if (signal.aborted) return finish({ report: { stage: node.id, outcome: 'skipped', reason: 'interrupted', durationMs: 0 } });
        if (haltedBy) return finish({ report: { stage: node.id, outcome: 'skipped', reason: `not started: ${haltedBy} failed (--keep-going builds the independent stages)`, durationMs: 0 } });
        try {
          return finish(await processStage(node));
        } catch (err) {
          const interrupted = err instanceof Interrupted || signal.aborted;
          const reason = interrupted ? 'interrupted' : err instanceof Error ? err.message : String(err);
          if (mode === 'run' && !interrupted) {
            // failed before it had a fingerprint (e.g. inputs() could not read the dataset): keep the error for `status --log`
            const log = `error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`;
            writeOwnedFileAtomic(opts.cacheDir, layout.lastRun(node.id), JSON.stringify({ stage: node.id, fingerprint: null, outcome: 'failed', reason, at: new Date().toISOString(), log }));
          }
          return finish({ report: { stage: node.id, outcome: 'failed', reason, durationMs: 0 } });
        }
      });
    })();
  };

  for (const id of plan.order) decided.set(id, schedule(plan.stages.get(id)!));
  const reports = new Map<string, StageReport>();
  for (const id of plan.order) reports.set(id, await decided.get(id)!);
  await sharedWorker.close();
  await Promise.all(uploads);

  let lockWritten = false;
  let lockWriteProblem: string | undefined;
  if (mode === 'run') {
    const stages: Record<string, LockEntry> = {};
    for (const [id, entry] of Object.entries(previousLock.stages)) {
      if (!opts.knownStageIds || opts.knownStageIds.has(id)) stages[id] = entry;
    }
    let changed = loaded.textHash === '' || loaded.problem !== undefined || Object.keys(stages).length !== Object.keys(previousLock.stages).length;
    for (const [id, entry] of newEntries) {
      const before = stages[id];
      // same fingerprint = same params, files and upstream; outputs can differ only after a rebuild
      if (!before || before.fingerprint !== entry.fingerprint || canonicalJson(before.outputs as unknown as Json) !== canonicalJson(entry.outputs as unknown as Json)) changed = true;
      stages[id] = entry;
    }
    // rendering 20,000 file hashes as YAML costs more than a whole no-op run: skip it when nothing changed
    let written: string | null = null;
    try {
      // a long-lived process (watch: its stat memo is kept across builds) keeps its lock's parse in memory
      written = changed ? await writeLockfile(opts.lockFile, { version: 1, stages }, loaded.textHash, opts.cacheDir, opts.statMemo === undefined) : null;
    } catch (err) {
      // a folder (or a FIFO) where the lock belongs: say so instead of failing the whole run
      lockWriteProblem = `could not write ${opts.lockFile}: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (written) {
      memo.record(opts.lockFile, statSync(opts.lockFile), written, true);
      lockWritten = true;
    }
  }
  items.endRun();
  memo.save();
  memo.dropRacy();
  const problems = [lockWriteProblem ?? loaded.problem, recordProblem].filter((p): p is string => p !== undefined);
  return { reports, outputs, interrupted: signal.aborted, hashing: { ...memo.stats }, lockWritten, ...(problems.length ? { lockProblem: problems.join('; ') } : {}) };
}

/**
 * Writes what a stage leaves for later builds (its action entry, log and last-run record) right
 * after its final event instead of before: no stage of the same build reads them, and the event
 * (in `watch`, a save's diagnostics) need not wait for those file writes. An entry lost in a kill
 * between the two is a miss: the stage runs again. Returns what could not be written.
 */
export function recordStages(writes: (() => void)[]): string | undefined {
  let problem: string | undefined;
  for (const write of writes) {
    try {
      write();
    } catch (err) {
      problem ??= `could not record a stage's result in the cache (${err instanceof Error ? err.message : String(err)}); it will run again next time`;
    }
  }
  return problem;
}

/**
 * The item records of the stage's previous build, from its action entry's item pack: one read of a
 * few dozen leaves instead of one file per item. A pack that cannot be read is only a lost speed-up.
 */
/** a stage fresh or restored in a build of a remembering memo: the records of its pack stay held (ItemMemo.keepPack) */
function keepItemPack(items: ItemMemo, entry: { itemPack?: { root: string } } | undefined): void {
  if (entry?.itemPack) items.keepPack(entry.itemPack.root);
}

function preloadItems(items: ItemMemo, actions: ActionCache, cas: Cas, previousFingerprint: string | undefined): void {
  if (!previousFingerprint) return;
  const pack = actions.get(previousFingerprint)?.itemPack;
  if (!pack || items.hasPreloaded(pack.root)) return;
  try {
    // a watch (a memo that remembers) reads it through the leaf cache: a pack of a state built by
    // an earlier process shares all but a leaf or two with the packs this one read, and only those
    // are read and parsed (at 100,000 items a full read took ~1 s per save that undid a fix)
    if (items.remembers) items.preload(readSharedTree(cas, pack), pack.root);
    else {
      // a one-off run writes its pack again from these records: unchanged leaves are not joined and hashed again
      const { records, leaves } = readTreeLeaves(cas, pack);
      keepPackLeaves(records, items.preload(records, pack.root), leaves);
    }
  } catch (err) {
    if (!(err instanceof TreeDamage)) throw err;
  }
}

/** Names a failed run of the stage wrote into out/ (recorded in its last-run record): lorabuild's own files. */
function keptBefore(layout: CacheLayout, stageId: string): string[] {
  try {
    const last = JSON.parse(readRegularFileSync(layout.lastRun(stageId), 'utf8')) as { kept?: unknown };
    return Array.isArray(last.kept) ? last.kept.filter((n): n is string => typeof n === 'string' && checkOutputName(n) === undefined) : [];
  } catch {
    return [];
  }
}

/** Copies what a failed stage staged or added into its out/ folder (never over a file lorabuild did not write); returns the names. */
async function keepFailureReports(staging: string | undefined, added: ReadonlyMap<string, StageOutputs['files'][string]>, materializedDir: string, ours: string[], cas: Cas, memo: StatMemo, root: string): Promise<string[]> {
  const files: StageOutputs['files'] = {};
  if (staging !== undefined) for (const [name, abs] of listStaged(staging)) files[name] = await cas.putFile(abs);
  for (const [name, blob] of added) files[name] = blob;
  materialize(files, ours.filter((name) => name in files), materializedDir, cas, memo, root);
  return Object.keys(files);
}

async function copiesMatch(files: StageOutputs['files'], materializedDir: string, memo: StatMemo): Promise<boolean> {
  for (const [name, blob] of Object.entries(files)) {
    try {
      if ((await memo.hashFile(join(materializedDir, ...name.split('/')))) !== blob.sha256) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * The remote cache holds the stages that `check` verifies instead of re-running: train and render
 * (minutes to hours on a GPU), score and the report. fetch, prepare and validate rebuild from the
 * clone's own files faster than they would download.
 */
function usesRemote(node: StageNode): boolean {
  return !CHEAP_KINDS.has(node.kind);
}

function restorable(entry: { outputs: StageOutputs; refs: string[] }, cas: Cas): boolean {
  for (const blob of Object.values(entry.outputs.files)) if (!cas.has(blob.sha256, blob.size)) return false;
  return entry.refs.every((sha) => cas.has(sha));
}

function materializedFolder(impl: StageImpl, node: StageNode, config: Config): string | null {
  const sub = impl.materializeTo(node, config);
  if (sub === null) return null;
  const outRoot = resolve(config.root, config.out);
  const folder = resolve(outRoot, sub);
  if (isAbsolute(sub) || !(folder + sep).startsWith(normalize(outRoot + sep))) {
    throw new Error(`${node.id}: materializeTo '${sub}' must be a folder inside ${config.out}/`);
  }
  return folder;
}

function checkInputs(node: StageNode, inputs: StageInputs): StageInputs {
  if (!inputs || typeof inputs.params !== 'object' || inputs.params === null || typeof inputs.files !== 'object' || inputs.files === null) {
    throw new Error(`${node.id}: inputs() must return { params, files }`);
  }
  const bad = badFileHash(inputs.files);
  if (bad !== undefined) throw new Error(`${node.id}: input file ${bad} has no sha256 (got ${JSON.stringify(inputs.files[bad])})`);
  return inputs;
}

/** removes leftovers of killed runs: staging folders and temp files (call while holding the writer lock) */
export function cleanTemp(cacheDir: string): void {
  const layout = new CacheLayout(cacheDir);
  try {
    for (const name of readdirSync(layout.tmp)) rmSync(join(layout.tmp, name), { recursive: true, force: true });
  } catch {
    // no tmp folder
  }
}
