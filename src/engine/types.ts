// Contracts between the planner, the executor and the stage implementations.
// The executor (engine/) owns hashing, caching, locking and scheduling; a stage implementation
// (stages/) only says what enters its fingerprint and how to produce its outputs.
import type { FolderFile } from '../datasets/local/walk.js';
import type { Config } from '../config/schema.js';
import type { ComputeWorker } from '../worker/client.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type StageKind = 'fetch' | 'prepare' | 'validate' | 'train' | 'render' | 'score' | 'report';
export type ResourceClass = 'cpu' | 'net' | 'gpu';

/** One node of the stage graph, e.g. { id: 'prepare:pokemon', kind: 'prepare', target: 'pokemon' }. */
export interface StageNode {
  id: string;
  kind: StageKind;
  /** the lorafile entry this stage builds (dataset, lora or render name; '' for the report) */
  target: string;
  /** ids of the stages whose outputs this stage reads */
  deps: string[];
  resource: ResourceClass;
}

export interface Plan {
  stages: Map<string, StageNode>;
  /** topological order: every stage after its deps */
  order: string[];
  /** the target names the user asked for (empty = all) */
  selected: string[];
}

/** What enters a fingerprint besides upstream outputs. */
export interface StageInputs {
  /** parameters, compared key by key for "learning_rate 0.0001 -> 0.0002" reasons */
  params: Record<string, Json>;
  /** input files: display path (relative to the lorafile, '/' separators) -> sha256 */
  files: Record<string, string>;
}

export interface OutputFile {
  sha256: string;
  size: number;
}

/** What a finished stage produced, as recorded in the action cache and the lock. */
export interface StageOutputs {
  /** output name (relative path, '/' separators) -> blob */
  files: Record<string, OutputFile>;
  /** small JSON the stage wants downstream stages and reports to see (counts, resolved shas ...) */
  meta: Json;
}

/** An event line: printed as JSON with --json, drawn as progress otherwise. */
export type StageOutcome = 'fresh' | 'cached' | 'ran' | 'failed' | 'skipped';
export interface StageEvent {
  stage: string;
  outcome?: StageOutcome | 'started' | 'stale';
  reason?: string;
  /** per-item events (one caption, one render cell) name the item */
  item?: string;
  /** rate: units per second and eta_s: seconds left, once measurable (engine/rate.ts) */
  progress?: { done: number; total: number; unit?: string; message?: string; rate?: number; eta_s?: number };
  diagnostics?: Json[];
  durationMs?: number;
  /** on a stage's final event: how many ctx.item calls ran and how many came from the memo */
  items?: { ran: number; cached: number };
  /** on a 'cached' final event: where the outputs came from ('remote': the remote cache) */
  source?: 'local' | 'remote';
}

export interface StageContext {
  config: Config;
  node: StageNode;
  /** absolute lorafile folder */
  root: string;
  /** cache root (absolute) */
  cacheDir: string;
  signal: AbortSignal;
  /** the lock entry of this stage from the previous successful run, if any (hub revision pinning) */
  previous: LockEntry | undefined;
  /** CLI options that stages may honour (e.g. --update owner/name) */
  options: Record<string, Json>;

  /**
   * sha256 of a file through the stat memo: unchanged files are not read. Pass `stat` when you
   * have just stat'ed the file yourself (a folder walk): it saves a second stat per file.
   */
  hashFile(absPath: string, stat?: { size: number; mtimeMs: number; ino: number }): Promise<string>;
  /** the stat memo's hash of a file whose stat still matches, without reading it (else undefined) */
  knownHash?(absPath: string, stat: { size: number; mtimeMs: number; ino: number }): string | undefined;
  /**
   * Lists a dataset folder (datasets/local/walk.ts). A long-lived `lorabuild watch` passes a walk
   * cache that re-stats only the files its watcher reported; unset: the folder is walked.
   */
  walkFolder?(rootAbs: string, display: string): Promise<FolderFile[]>;
  /**
   * the process builds again after this build (`lorabuild watch`): what a stage keeps in memory for
   * its next run is used, so it may as well make it now
   */
  rebuilds?: boolean;
  /** outputs of an upstream stage (must be in node.deps) */
  upstream(stageId: string): StageOutputs;
  /** absolute path of an upstream output file inside the CAS (read-only!) */
  upstreamPath(stageId: string, name: string): string;
  /** absolute path of any blob in the CAS by hash (read-only!) */
  blobPath(sha256: string): string;

  /**
   * Per-item memo (one caption, one image, one render cell): returns the cached value for `key`
   * or computes it. Values are JSON; big results go to the CAS via putBlob and are referenced by
   * hash. Emits an item event with outcome 'cached' or 'ran'. `quiet`: a part of an item (memoized
   * on its own key, kept by gc like any item) that is neither counted nor reported. `packOnly`: a
   * value cheap to compute again is kept in the stage's item pack only, not in the item journal
   * (a cold build of 10,000 items spent ~4.5 s creating validate's record files, when records were files): found while
   * the last run's pack has it (or this process holds it), computed again otherwise.
   */
  item<T extends Json>(label: string, key: Json, compute: () => Promise<T>, options?: { quiet?: boolean; packOnly?: boolean }): Promise<T>;
  /**
   * ctx.item without computing, at once: the memoized value (recorded and reported as ctx.item
   * does), or undefined. A stage of thousands of unchanged items skips an await per item.
   */
  memoized?<T extends Json>(label: string, key: Json, options?: { quiet?: boolean }): T | undefined;
  /**
   * Writes a JSON output (compact, one trailing newline) straight into the CAS. The value must be
   * plain JSON; it is frozen and handed as is to downstream stages that readJson() it. `trees`:
   * top-level list fields stored as chunk trees when long (cache/tree-json.ts), so that a one-item
   * change writes O(changed) bytes; readJson puts them back.
   */
  writeJson(name: string, value: Json, options?: { trees?: readonly string[] }): OutputFile;
  /** a JSON output of an upstream stage, parsed (shared and frozen: read-only) */
  readJson(stageId: string, name: string): Json;
  /** store bytes (or a file, moved in) in the CAS; returns its hash */
  putBlob(data: Buffer | { file: string }): Promise<OutputFile>;

  /** staging folder for this run's outputs: everything in it becomes the stage's outputs */
  outDir: string;
  /** add a CAS blob as an output without copying it through outDir */
  addOutput(name: string, blob: OutputFile): void;

  /**
   * The Python compute worker, shared by every stage of the run: started on first use (lazily, so
   * runs without compute stages never start Python), restarted if it died, closed when the run
   * ends. Build it with SharedWorker + startWorker from worker/ (worker/start.ts).
   */
  worker(): Promise<ComputeWorker>;

  progress(done: number, total: number, message?: string, unit?: string): void;
  log(line: string): void;
  emit(event: Omit<StageEvent, 'stage'>): void;
}

export interface StageResult {
  meta: Json;
  /** diagnostics that block downstream stages make the stage 'failed' */
  failed?: { reason: string };
}

export interface StageImpl {
  kind: StageKind;
  /** bump when the implementation changes what it produces */
  version: number;
  /** folder under out/ where outputs are copied for the user, or null to keep them in the cache only */
  materializeTo(node: StageNode, config: Config): string | null;
  inputs(ctx: StageContext): Promise<StageInputs>;
  run(ctx: StageContext, inputs: StageInputs): Promise<StageResult>;
  /**
   * `lorabuild check` (stages it verifies without re-running): whether the committed artifacts agree
   * with what the lock records beyond their hashes (a LoRA's own training metadata, the LoRA a
   * render says it used). Every problem returned is a tampered finding.
   */
  crossCheck?(ctx: CrossCheckContext): Promise<CrossCheckProblem[]>;
}

export interface CrossCheckContext {
  config: Config;
  node: StageNode;
  entry: LockEntry;
  lock: Lockfile;
  /** absolute path of a committed output of a stage (out/) whose bytes check verified, or null */
  verifiedOutput(stageId: string, name: string): string | null;
  /** a path as the user sees it (relative to the lorafile) */
  display(abs: string): string;
}

export interface CrossCheckProblem {
  message: string;
  /** the artifact concerned, relative to the lorafile */
  file?: string;
}

/** One stage in lorafile.lock (deterministic YAML, meant to be committed). */
export interface LockEntry {
  fingerprint: string;
  params: Record<string, Json>;
  files: Record<string, string>;
  /**
   * Input file maps longer than FILES_INLINE_MAX (engine/file-tree.ts) are recorded as their digest
   * and the root of a chunk tree of [path, sha256] pairs in the cache instead (then `files` is
   * empty): a lock of a 100,000-image dataset stays a few KB, and an edit rewrites a few lines.
   */
  filesTree?: { digest: string; count: number; root: string };
  /** fingerprints of the upstream stages this one consumed */
  upstream: Record<string, string>;
  outputs: Record<string, OutputFile>;
  meta: Json;
  /** StageImpl.version that built it (explains "stage implementation version 1 -> 2") */
  implVersion?: number;
}

export interface Lockfile {
  version: 1;
  stages: Record<string, LockEntry>;
}
