// `lorabuild check`: does the committed lock still describe the lorafile, the inputs and the
// artifacts? Made for CI on a fresh clone with an EMPTY cache, so the lock and out/ must be enough:
//
//  - every stage's own inputs (params, input files) are fingerprinted against the lock entry, with
//    the lock's upstream outputs standing in for the upstream stages (so a stage is judged by
//    what it was built from, not by what a machine-specific listing looks like);
//  - cheap stages (fetch, prepare, validate) re-run for real and their outputs must match the lock;
//  - GPU stages (train, render) and the report never run (unless `rebuild`): their recorded outputs
//    must be in out/ or the cache with the recorded bytes;
//  - environment facts (worker and torch versions, device class) that legitimately differ between
//    the student's machine and CI are taken from the lock and reported as info, never as stale.
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import { Cas } from '../cache/cas.js';
import { ItemMemo } from '../cache/item-memo.js';
import { CacheLayout } from '../cache/layout.js';
import type { Config } from '../config/schema.js';
import { renderModelName } from '../config/render-loras.js';
import type { ComputeWorker } from '../worker/client.js';
import { expandUserPath } from '../worker/selection.js';
import { canonicalJson, SHA256_RE } from './canonical.js';
import type { StageRegistry } from './executor.js';
import { fingerprint, outputsDigest } from './fingerprint.js';
import { withFilesRead } from './file-tree.js';
import { readLockfile } from './lockfile.js';
import { entryIntegrity } from './lock-integrity.js';
import { checkOutputName, displayPath, listStaged } from './outputs.js';
import { staleReasons, summarize } from './reasons.js';
import { makeStageContext, type ContextDeps } from './stage-context.js';
import { StatMemo } from './stat-memo.js';
import type { CrossCheckProblem, Json, LockEntry, Lockfile, OutputFile, Plan, StageImpl, StageKind, StageNode, StageOutputs } from './types.js';
import { runWorker } from './run-worker.js';
import type { RemoteCache } from '../cache/remote/remote-cache.js';

/** Params that describe the machine a stage ran on, not what it was built from. */
export const ENVIRONMENT_PARAMS = ['worker_version', 'torch', 'device'] as const;

import { CHEAP_KINDS } from './stage-kinds.js';

/** Stages `rebuild` re-runs too; their logs and JSON summaries are not compared, only the artifacts. */
const REBUILT_KINDS: ReadonlySet<StageKind> = new Set(['train', 'render']);
const REBUILT_ARTIFACT = /\.(safetensors|png)$/;

/** Param under which each compute stage records its model identity (read when the checkpoint is absent). */
const MODEL_IDENTITY_PARAM: Partial<Record<StageKind, string>> = { train: 'model_identity', render: 'model' };

export type FindingKind = 'stale' | 'tampered' | 'missing' | 'failed' | 'environment' | 'info';

export interface CheckFinding {
  stage: string;
  kind: FindingKind;
  message: string;
  /** the artifact or input file concerned, relative to the lorafile */
  file?: string;
}

export type StageCheckStatus = 'ok' | 'stale' | 'tampered' | 'missing' | 'failed' | 'skipped';

export interface StageCheck {
  stage: string;
  kind: StageKind;
  /** rerun: executed again and compared; verified: outputs checked against the lock only */
  mode: 'rerun' | 'verified' | 'none';
  status: StageCheckStatus;
  findings: CheckFinding[];
}

export interface CheckResult {
  stages: StageCheck[];
  /** problems not tied to one stage (missing or damaged lock) */
  general: CheckFinding[];
  exitCode: number;
  /** the lock as read (empty when missing or damaged) */
  lock: Lockfile;
  /** outputs each stage has now (re-run or verified); absent for stages that could not be decided */
  outputs: Map<string, StageOutputs>;
  /** where an output blob of `outputs` is in the cache (read-only) */
  blobPath(sha256: string): string;
  /** the store blobPath names (chunk trees of a manifest are read through it) */
  cas: Cas;
}

export interface CheckOptions {
  config: Config;
  plan: Plan;
  registry: StageRegistry;
  cacheDir: string;
  lockFile: string;
  /** also re-run train and render and compare their outputs with the lock */
  rebuild?: boolean;
  worker?: () => Promise<ComputeWorker>;
  signal?: AbortSignal;
  onStage?: (check: StageCheck) => void;
  /** artifacts neither in out/ nor in the cache are fetched from here by hash (verified) */
  remote?: RemoteCache;
}

export const CHECK_EXIT = { ok: 0, failed: 1, invalid: 2, stale: 3, tampered: 4 } as const;

export const RUN_HINT = 'run `lorabuild run`, then commit lorafile.lock and out/';

export async function checkProject(opts: CheckOptions): Promise<CheckResult> {
  const { config, plan } = opts;
  const signal = opts.signal ?? new AbortController().signal;
  const layout = new CacheLayout(opts.cacheDir);
  mkdirSync(opts.cacheDir, { recursive: true });
  // every file is read again: a stat memo (size, mtime, inode) can be fooled by a same-size edit
  // with its mtime set back, and check must say the same with or without a cache
  const memo = StatMemo.inMemory();
  const cas = new Cas(opts.cacheDir);
  const items = new ItemMemo(opts.cacheDir, cas);
  const loaded = await readLockfile(opts.lockFile, opts.cacheDir, (abs) => memo.hashFile(abs));
  const lock = loaded.lock;
  const lockName = displayPath(config.root, opts.lockFile);
  const general: CheckFinding[] = [];
  if (loaded.textHash === '') general.push({ stage: '', kind: 'stale', file: lockName, message: `${lockName} is missing: nothing has been built yet; ${RUN_HINT}` });
  // a lock that does not read is not the tool's output any more (edited by hand, a merge conflict)
  else if (loaded.problem) general.push({ stage: '', kind: 'tampered', file: lockName, message: loaded.problem.replace(/ — the lock is ignored.*$/, ` — ${lockName} was damaged or edited by hand; ${RUN_HINT}`) });

  const sharedWorker = runWorker(config, opts.cacheDir);
  const worker = opts.worker ?? (() => sharedWorker.get());

  const outputs = new Map<string, StageOutputs>();
  /** stage id -> output name -> the committed copy in out/ whose bytes matched the lock */
  const verified = new Map<string, Map<string, string>>();
  const changedOutputs = new Set<string>();
  const checks = new Map<string, StageCheck>();
  try {
    for (const id of plan.order) {
      const node = plan.stages.get(id)!;
      const check = await checkStage(node);
      checks.set(id, check);
      opts.onStage?.(check);
    }
  } finally {
    await sharedWorker.close();
  }
  const stages = plan.order.map((id) => checks.get(id)!);
  return { stages, general, exitCode: exitCodeOf([...general, ...stages.flatMap((s) => s.findings)]), lock, outputs, blobPath: (sha) => cas.path(sha), cas };

  async function checkStage(node: StageNode): Promise<StageCheck> {
    const findings: CheckFinding[] = [];
    const add = (kind: FindingKind, message: string, file?: string) => findings.push({ stage: node.id, kind, message, ...(file ? { file } : {}) });
    const done = (mode: StageCheck['mode']): StageCheck => ({ stage: node.id, kind: node.kind, mode, status: statusOf(findings), findings });

    const blocker = node.deps.find((d) => !outputs.has(d));
    if (blocker) return { stage: node.id, kind: node.kind, mode: 'none', status: 'skipped', findings: [{ stage: node.id, kind: 'info', message: `not checked: ${blocker} could not be decided` }] };
    const entry = lock.stages[node.id];
    const impl = await opts.registry(node.kind);
    if (!entry) {
      add('stale', `${node.id} has never been built (it is not in ${lockName}); ${RUN_HINT}`);
      // a cheap stage that never got into the lock usually failed (caption errors): say why
      if (CHEAP_KINDS.has(node.kind)) {
        const why = await whyNeverBuilt(node, impl);
        if (why) add('failed', why);
      }
      return done('none');
    }
    const rerun = CHEAP_KINDS.has(node.kind) || (Boolean(opts.rebuild) && REBUILT_KINDS.has(node.kind));
    const modelParam = MODEL_IDENTITY_PARAM[node.kind];
    const recordedModel = modelParam ? entry.params?.[modelParam] : undefined;
    const deps: ContextDeps = {
      config,
      node,
      cacheDir: opts.cacheDir,
      signal,
      previous: entry,
      // a CI machine may lack the model checkpoint and downloaded LoRA files: their hashes come from the lock
      options: opts.rebuild ? {} : { ...(typeof recordedModel === 'string' ? { modelIdentityIfMissing: recordedModel } : {}), inputFilesIfMissing: entry.files ?? {} },
      memo,
      cas,
      items,
      upstream: outputs,
      emit: () => {},
      worker,
    };

    let current;
    try {
      current = await impl.inputs(makeStageContext(deps, null).ctx);
    } catch (err) {
      add('failed', `${node.id}: could not read its inputs: ${messageOf(err)}`);
      return done('none');
    }
    const absentModel = absentCheckpoint(config, node);
    if (absentModel && typeof recordedModel === 'string') add('info', `model checkpoint ${absentModel} is not on this machine: its identity is taken from ${lockName} (${recordedModel})`);
    for (const [shown, sha] of Object.entries(current.files)) {
      if (entry.files?.[shown] === sha && !existsSync(resolve(config.root, shown))) add('info', `${shown} is not on this machine: its hash is taken from ${lockName}`);
    }
    const params = { ...current.params };
    for (const key of ENVIRONMENT_PARAMS) {
      if (!(key in params) || !(key in (entry.params ?? {}))) continue;
      if (canonicalJson(params[key]) === canonicalJson(entry.params[key])) continue;
      add('environment', `${node.id} was built with ${key} ${show(entry.params[key])}; this machine has ${show(params[key])} (an environment difference, not a reason to rebuild)`);
      params[key] = entry.params[key];
    }

    const reasons: string[] = [];
    const lockDigests: Record<string, string> = {};
    let upstreamAsBuilt = true;
    for (const dep of node.deps) {
      const depEntry = lock.stages[dep];
      if (!depEntry) {
        reasons.push(`${dep} is not in the lock`);
        upstreamAsBuilt = false;
        continue;
      }
      lockDigests[dep] = outputsDigest({ files: depEntry.outputs, meta: depEntry.meta });
      if (entry.upstream[dep] !== depEntry.fingerprint) {
        upstreamAsBuilt = false;
        reasons.push(entry.upstream[dep] === undefined ? `it does not record ${dep} as built from` : `${dep} was rebuilt after it`);
      }
      if (changedOutputs.has(dep)) reasons.push(`upstream ${dep} changed`);
    }
    // the entry must still match the fingerprint it stores (only decidable when its upstream
    // entries are the ones it was built from; otherwise it is stale anyway)
    const integrity = upstreamAsBuilt ? entryIntegrity({ kind: node.kind, implVersion: impl.version, entry, params, files: current.files, upstream: lockDigests }) : undefined;
    // a cheap upstream re-ran and gave other outputs than the lock records: if those reproduce this
    // entry's fingerprint, the lock's record of that upstream was edited, not this entry
    const editedUpstream =
      integrity && !integrity.consistent
        ? node.deps.find((dep) => changedOutputs.has(dep) && outputs.has(dep) && entryIntegrity({ kind: node.kind, implVersion: impl.version, entry, params: entry.params, files: entry.files, upstream: { ...lockDigests, [dep]: outputsDigest(outputs.get(dep)!) } }).consistent)
        : undefined;
    if (editedUpstream) {
      add('tampered', `${lockName} was edited by hand: the outputs it records for ${editedUpstream} are not the ones ${node.id} was built from (re-running ${editedUpstream} gives those); ${RUN_HINT}`, lockName);
    } else if (integrity && !integrity.consistent) {
      const edited = integrity.fields.length
        ? integrity.exact
          ? `edited: ${integrity.fields.join(', ')}`
          : `it differs from this build in ${integrity.fields.join(', ')}`
        : `a recorded param, input hash, or an output of ${node.deps.length ? node.deps.join(', ') : 'no upstream'} in the lock was changed`;
      add('tampered', `${lockName} was edited by hand: the entry of ${node.id} no longer matches the fingerprint it stores (${edited}); ${RUN_HINT}`, lockName);
    } else {
      const fp = fingerprint({ kind: node.kind, version: impl.version, params, files: current.files, upstream: lockDigests });
      if (fp !== entry.fingerprint) {
        const own = staleReasons(withFilesRead(entry, cas), { implVersion: impl.version, params, files: current.files, upstream: entry.upstream });
        reasons.unshift(...(own.length ? own : ['tool or environment versions changed']));
      }
    }
    const stale = reasons.length > 0;
    if (stale) add('stale', `${summarize([...new Set(reasons)], 4)} since ${node.id} was built; ${RUN_HINT}`);

    const materialized = materializedFolder(impl, node, config);
    const copies = await verifyArtifacts(node, entry, materialized, rerun, add);
    verified.set(node.id, copies);
    if (!rerun && impl.crossCheck && copies.size > 0) {
      const problems = await impl.crossCheck({
        config,
        node,
        entry,
        lock,
        verifiedOutput: (stageId, name) => verified.get(stageId)?.get(name) ?? null,
        display: (abs) => displayPath(config.root, abs),
      }).catch((err: unknown): CrossCheckProblem[] => [{ message: `${node.id}: its committed outputs could not be cross-checked: ${messageOf(err)}` }]);
      for (const p of problems) add('tampered', p.message, p.file);
    }

    if (!rerun) {
      // downstream stages are judged against what the lock says this one produced, even when out/ lost it
      if (Object.entries(entry.outputs).every(([name, blob]) => validOutput(name, blob))) outputs.set(node.id, { files: entry.outputs, meta: entry.meta });
      return done('verified');
    }
    const ran = await runAgain(node, impl, deps, current);
    if ('failed' in ran) {
      add('failed', `${node.id} failed when re-run: ${ran.failed}`);
      return done('rerun');
    }
    outputs.set(node.id, ran);
    if (stale) changedOutputs.add(node.id);
    const differences = compareOutputs(node.kind, entry, ran);
    if (differences.length > 0 && !stale) {
      // a rebuild on another device or torch may differ in the last bits: noted, not held against downstream
      const env = findings.some((f) => f.kind === 'environment');
      const kind: FindingKind = CHEAP_KINDS.has(node.kind) ? 'stale' : env ? 'info' : 'tampered';
      add(kind, `re-running ${node.id} did not reproduce the lock: ${summarize(differences, 4)}${kind === 'stale' ? `; ${RUN_HINT}` : ''}`);
      if (kind !== 'info') changedOutputs.add(node.id);
    }
    return done('rerun');
  }

  async function whyNeverBuilt(node: StageNode, impl: StageImpl): Promise<string | null> {
    const deps: ContextDeps = { config, node, cacheDir: opts.cacheDir, signal, previous: undefined, options: {}, memo, cas, items, upstream: outputs, emit: () => {}, worker };
    try {
      const ran = await runAgain(node, impl, deps, await impl.inputs(makeStageContext(deps, null).ctx));
      return 'failed' in ran ? `${node.id} fails: ${ran.failed}` : null;
    } catch (err) {
      return `${node.id} fails: ${messageOf(err)}`;
    }
  }

  /**
   * Recorded outputs of a stage that materializes must be committed in out/: regular files inside
   * the project (no links: they dangle in CI) with the recorded bytes, whatever the local cache
   * holds, so that check says the same on the student's machine and in CI. Outputs kept in the
   * cache only must be there (or re-run). Returns the verified copies.
   */
  async function verifyArtifacts(
    node: StageNode,
    entry: LockEntry,
    materialized: string | null,
    rerun: boolean,
    add: (kind: FindingKind, message: string, file?: string) => void,
  ): Promise<Map<string, string>> {
    const copies = new Map<string, string>();
    for (const [name, blob] of Object.entries(entry.outputs)) {
      // the lock is a committed file: its names and hashes are checked before they become paths
      if (!validOutput(name, blob)) {
        add('tampered', `${lockName} records an impossible output for ${node.id}: ${checkOutputName(name) ?? `'${name}' has no valid sha256 and size`}`);
        continue;
      }
      const inLocalCache = async () => cas.has(blob.sha256, blob.size) && (await hashOrNull(cas.path(blob.sha256), true)) === blob.sha256;
      // only a remote cache the grader names stands in for a committed file (the local cache never does)
      const fromRemote = async (): Promise<boolean> => {
        if (!opts.remote) return false;
        if (!(await inLocalCache()) && !(await opts.remote.fetchBlob(`${name} of ${node.id}`, blob.sha256, blob.size, cas))) return false;
        add('info', `${name} of ${node.id} is not committed; its recorded bytes came from the remote cache ${opts.remote.url}`);
        copies.set(name, cas.path(blob.sha256));
        return true;
      };
      if (!materialized) {
        if (!rerun && !(await inLocalCache()) && !(await fromRemote())) add('missing', `${node.id}'s output ${name} is neither in out/ nor in the cache: rebuild it with \`lorabuild run\``, name);
        continue;
      }
      const copy = join(materialized, ...name.split('/'));
      const shown = displayPath(config.root, copy);
      const found = committedFile(config.root, copy);
      if (found.kind === 'missing') {
        // with a remote cache a submission need not commit out/: re-run stages are compared with the lock below
        if (opts.remote && (rerun || (await fromRemote()))) continue;
        const local = cas.has(blob.sha256, blob.size) ? ' (`lorabuild run` restores it from your cache)' : '';
        const upload = opts.remote ? `, or upload it to the remote cache (lorabuild run --remote-cache ${opts.remote.url})` : '';
        add('missing', `${shown} is missing (recorded in ${lockName} for ${node.id})${local}: commit out/ with the lock${upload}`, shown);
        continue;
      }
      if (found.kind !== 'file') {
        add('tampered', `${found.problem}: ${node.id}'s output must be committed as a regular file inside the project; restore it with \`lorabuild run\``, found.shown ?? shown);
        continue;
      }
      const sha = await hashOrNull(copy);
      if (sha !== blob.sha256) {
        add('tampered', `${shown} differs from what ${lockName} records for ${node.id} (sha256 ${(sha ?? 'unreadable').slice(0, 12)}… on disk, ${blob.sha256.slice(0, 12)}… in the lock): restore it with \`lorabuild run\` or rebuild and commit both`, shown);
        continue;
      }
      if (found.size !== blob.size) {
        add('tampered', `${lockName} was edited by hand: it records ${blob.size} bytes for ${shown} (outputs.${name}.size of ${node.id}), the file has ${found.size}; ${RUN_HINT}`, lockName);
        continue;
      }
      copies.set(name, copy);
      if (!cas.has(blob.sha256, blob.size)) await cas.putFile(copy, true);
    }
    return copies;
  }

  async function hashOrNull(abs: string, trusted = false): Promise<string | null> {
    try {
      return await memo.hashFile(abs, trusted);
    } catch {
      return null;
    }
  }

  async function runAgain(node: StageNode, impl: StageImpl, deps: ContextDeps, inputs: Awaited<ReturnType<StageImpl['inputs']>>): Promise<StageOutputs | { failed: string }> {
    mkdirSync(layout.tmp, { recursive: true });
    const staging = mkdtempSync(join(layout.tmp, 'check-'));
    const { ctx, record } = makeStageContext({ ...deps, options: {} }, staging);
    try {
      let result;
      try {
        result = await impl.run(ctx, inputs);
      } catch (err) {
        return { failed: messageOf(err) };
      }
      if (result.failed) return { failed: result.failed.reason };
      const files: Record<string, OutputFile> = {};
      for (const [name, abs] of listStaged(staging)) files[name] = await cas.putFile(abs);
      for (const [name, blob] of record.added) files[name] = blob;
      for (const blob of Object.values(files)) memo.record(cas.path(blob.sha256), statSync(cas.path(blob.sha256)), blob.sha256, true);
      return { files, meta: result.meta ?? null };
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }
}

/**
 * What differs between the lock's outputs and a re-run's. A fetch listing names absolute paths
 * of this machine, so for fetch only its summary (meta) is compared; its input files were already
 * compared by hash. Rebuilt train/render stages are compared by their LoRAs and images only (their
 * logs and timings legitimately differ).
 */
function compareOutputs(kind: StageKind, entry: LockEntry, now: StageOutputs): string[] {
  const out: string[] = [];
  const rebuilt = REBUILT_KINDS.has(kind);
  if (!rebuilt && canonicalJson(entry.meta) !== canonicalJson(now.meta)) out.push('its summary (meta) differs');
  if (kind === 'fetch') return out;
  for (const name of Object.keys({ ...entry.outputs, ...now.files }).sort()) {
    if (rebuilt && !REBUILT_ARTIFACT.test(name)) continue;
    const before = entry.outputs[name];
    const after = now.files[name];
    if (!before) out.push(`${name} is new`);
    else if (!after) out.push(`${name} is no longer produced`);
    else if (before.sha256 !== after.sha256) out.push(`${name} differs`);
    else if (before.size !== after.size) out.push(`${name}'s recorded size ${before.size} is not its size ${after.size}`);
  }
  return out;
}

type CommittedFile = { kind: 'file'; size: number } | { kind: 'missing' } | { kind: 'bad'; problem: string; shown?: string };

/**
 * What is committed at `abs` (inside the project `root`): a regular file reached without symbolic
 * links, nothing, or something else (a link, a folder, a FIFO ...). Only lstat is used, so a FIFO
 * is never opened.
 */
function committedFile(root: string, abs: string): CommittedFile {
  const parts = relative(root, abs).split(sep);
  let current = root;
  for (const [i, part] of parts.entries()) {
    current = join(current, part);
    let st;
    try {
      st = lstatSync(current);
    } catch {
      return { kind: 'missing' };
    }
    const shown = displayPath(root, current);
    if (st.isSymbolicLink()) return { kind: 'bad', problem: `${shown} is a symbolic link (links dangle in a fresh clone)`, shown };
    const last = i === parts.length - 1;
    if (!last && !st.isDirectory()) return { kind: 'bad', problem: `${shown} is not a folder`, shown };
    if (last && !st.isFile()) return { kind: 'bad', problem: `${shown} is ${st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : 'not a regular file'}`, shown };
    if (last) return { kind: 'file', size: st.size };
  }
  return { kind: 'missing' };
}

/** The checkpoint path of the stage's model when it is a file that this machine lacks (CI). */
function absentCheckpoint(config: Config, node: StageNode): string | null {
  const render = node.kind === 'render' ? config.renders[node.target] : undefined;
  const modelName = node.kind === 'train' ? config.loras[node.target]?.model : render ? renderModelName(config, render) : undefined;
  const checkpoint = modelName ? config.models[modelName]?.checkpoint : undefined;
  if (!checkpoint) return null;
  return existsSync(expandUserPath(config.root, checkpoint)) ? null : checkpoint;
}

function validOutput(name: string, blob: OutputFile | undefined): boolean {
  return checkOutputName(name) === undefined && typeof blob?.sha256 === 'string' && SHA256_RE.test(blob.sha256) && Number.isSafeInteger(blob.size);
}

function materializedFolder(impl: StageImpl, node: StageNode, config: Config): string | null {
  const sub = impl.materializeTo(node, config);
  if (sub === null) return null;
  const outRoot = resolve(config.root, config.out);
  const folder = resolve(outRoot, sub);
  if (isAbsolute(sub) || !(folder + sep).startsWith(normalize(outRoot + sep))) throw new Error(`${node.id}: materializeTo '${sub}' must be a folder inside ${config.out}/`);
  return folder;
}

const SEVERITY: Record<FindingKind, number> = { info: 0, environment: 0, failed: 1, stale: 2, missing: 3, tampered: 4 };

function statusOf(findings: CheckFinding[]): StageCheckStatus {
  let worst: FindingKind = 'info';
  for (const f of findings) if (SEVERITY[f.kind] > SEVERITY[worst]) worst = f.kind;
  return worst === 'info' || worst === 'environment' ? 'ok' : worst;
}

/** tampered or missing artifacts 4, stale 3, failures (validation errors, unreadable inputs) 1. */
export function exitCodeOf(findings: CheckFinding[]): number {
  if (findings.some((f) => f.kind === 'tampered' || f.kind === 'missing')) return CHECK_EXIT.tampered;
  if (findings.some((f) => f.kind === 'stale')) return CHECK_EXIT.stale;
  if (findings.some((f) => f.kind === 'failed')) return CHECK_EXIT.failed;
  return CHECK_EXIT.ok;
}

function show(v: Json | undefined): string {
  return typeof v === 'string' ? v : canonicalJson(v);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
