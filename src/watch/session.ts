// `lorabuild watch` wired together: chokidar on the inputs of the selected targets, the WatchLoop
// state machine, the engine's execute() per build (with the loop's AbortSignal), re-planning when
// the lorafile changes (an invalid lorafile keeps the last good plan), per-dataset diagnostics
// marked stale the moment a change arrives, and trains/renders stopped when their inputs change.
import { readFileSync, statSync, type Stats } from 'node:fs';
import { relative, resolve, sep } from 'node:path';
import { Cas } from '../cache/cas.js';
import { keepLeavesInMemory } from '../cache/chunk-tree.js';
import { ItemMemo } from '../cache/item-memo.js';
import { CacheLayout } from '../cache/layout.js';
import { acquireWriterLock, waitingMessage } from '../cache/writer-lock.js';
import { ConfigError } from '../config/errors.js';
import { execute, type StageRegistry } from '../engine/executor.js';
import { sha256FileSync } from '../engine/file-hash.js';
import { openProject, type Project } from '../engine/project.js';
import { sameStat, StatMemo } from '../engine/stat-memo.js';
import type { Json, StageEvent, StageKind } from '../engine/types.js';
import type { WatchEvent } from './events.js';
import { classifyChange, isIgnored, stageDatasets, stageInputFiles, watchedPaths, watchSetFor, type ChangeKind, type WatchSet } from './files.js';
import type { WatchScreen } from './screen.js';
import { WatchLoop, type Change } from './state.js';
import { WalkCache } from './walk-cache.js';
import { warmStageIds } from './warm.js';
import { fullGc } from './full-gc.js';
import { InputWatchers } from './watchers.js';
import { boundPlan, type ThroughKind } from './through.js';
import { groupDiagnostics } from '../config/diagnostic-groups.js';
import type { Diagnostic } from '../config/diagnostic.js';

export interface WatchOptions {
  file: string | undefined;
  targets: string[];
  through: ThroughKind | undefined;
  /** false (--no-cancel): a train/render whose inputs change finishes before the rerun */
  cancel: boolean;
  debounceMs: number;
  screen: WatchScreen;
  registry: StageRegistry;
}

const COMPUTE_KINDS = new Set(['train', 'render']);
/**
 * After this long without a build, the kept folder listings are checked against the folders (a
 * walk, off the path of any save): a notice the watcher never delivered is found within it.
 */
const AUDIT_IDLE_MS = 30_000;
/**
 * Short of file watches (InputWatchers.outOfWatches): the folders are walked again this often, or
 * ten times as long as the last walk took (at most a tenth of the time goes to walking).
 */
const AUDIT_SHORT_MS = 2_000;
/** more notices than this before a build: listings are re-walked rather than patched */
const PATCHABLE_NOTICES = 256;
/** chokidar's per-path throttle of 'change' events (FSWatcher._emit) */
const CHOKIDAR_CHANGE_THROTTLE_MS = 50;
/** chokidar's own throttle of raw notices of one file (a truncate and its write are one save) */
const RAW_SETTLE_MS = 5;

function statOrNull(abs: string): Stats | null {
  try {
    return statSync(abs);
  } catch {
    return null;
  }
}

export class WatchSession {
  private project: Project | undefined;
  private set: WatchSet | undefined;
  private watchers: InputWatchers | undefined;
  /** dataset folder -> the files its last listing held (what the file watcher holds for it) */
  private readonly listedFiles = new Map<string, string[]>();
  private readonly lorafile: string;
  private readonly loop: WatchLoop;
  private build = 0;
  /** stage ids started and not yet finished in the current build */
  private readonly running = new Set<string>();
  /** datasets whose shown diagnostics are current (a change makes them stale) */
  private readonly current = new Set<string>();
  private lorafileChanged = false;
  private noticesSinceBuild = 0;
  private auditTimer: NodeJS.Timeout | undefined;
  /** datasets (or every one, after a lorafile edit) changed since the current build started */
  private readonly changedDuringBuild = new Set<string>();
  private everythingChangedDuringBuild = false;
  private stopRequested = false;
  /** some inputs get no change notices: the audit walks their folders every few seconds */
  private auditOften = false;
  private lastAuditMs = 0;
  private readonly rechecks = new Set<NodeJS.Timeout>();
  /** per file, chokidar's last add/change notice (or a recheck's): when, and the stat it saw */
  private readonly noticed = new Map<string, { at: number; stat: Stats | null }>();
  /** files with a recheckIfThrottled pending */
  private readonly soon = new Set<string>();
  private items: { cacheDir: string; cas: Cas; memo: ItemMemo; stats: StatMemo } | undefined;
  /** the warm-up after the first build is running (see warmUp) */
  private warming = false;
  /** the last watchPlan() and what it was made from */
  private lastPlan: { set: WatchSet; listings: (string[] | undefined)[]; plan: { files: string[]; folders: string[] } } | undefined;
  /** the plan the watchers hold (update() is skipped for the very same plan) */
  private watchedPlan: { files: string[]; folders: string[] } | undefined;
  /** dataset folder listings, patched from watcher events instead of walked on every build */
  readonly walks = new WalkCache();

  constructor(private readonly options: WatchOptions) {
    this.lorafile = resolve(options.file ?? 'lorafile.yaml');
    this.loop = new WatchLoop({
      debounceMs: options.debounceMs,
      run: (signal, changes) => this.runBuild(signal, changes),
      // a save during the warm-up stops it: the save's build does what is left of it
      shouldCancel: (change) => this.warming || (this.options.cancel && this.affectedRunning(change).length > 0),
      onCancel: (change) => {
        if (!this.warming) this.emit({ watch: 'cancel', build: this.build, stages: this.affectedRunning(change), path: this.display(change.path) });
      },
      onState: (state, previous) => {
        if (state === 'queued' && previous === 'running') this.emit({ watch: 'queued', build: this.build });
      },
      onError: (err) => this.emit({ watch: 'error', message: err instanceof Error ? err.message : String(err) }),
    });
  }

  /** plans, starts watching, runs the first build; returns once the watchers are ready */
  async start(): Promise<void> {
    await this.replan();
    const paths = this.set ? watchedPaths(this.set) : [this.lorafile];
    // list the dataset folders now, so that their files are watched one by one from the start
    if (this.set) for (const root of this.set.datasets.values()) await this.walks.walk(root, root).catch(() => undefined);
    this.watchers = new InputWatchers({
      event: (abs, event, stats) => {
        if (event === 'add' || event === 'change') this.noticed.set(abs, { at: performance.now(), stat: stats ?? statOrNull(abs) });
        this.onFileEvent(abs, event);
        if (event === 'add' || event === 'change') this.recheckLater(abs);
      },
      raw: (eventType, watchedPath, evPath) => {
        this.walks.rawEvent(eventType, watchedPath, evPath);
        if (eventType === 'change') this.recheckIfThrottled(watchedPath);
      },
      error: (message) => this.emit({ watch: 'error', message }),
      outOfWatches: () => {
        this.auditOften = true;
        this.auditLater();
      },
      ignored: (abs) => (this.set ? isIgnored(this.set, abs) : false),
    });
    const plan = this.watchPlan();
    await this.watchers.start(plan.files, plan.folders);
    this.watchedPlan = plan;
    if (this.stopRequested) {
      // Ctrl-C arrived while starting
      await this.watchers.close();
      return;
    }
    this.emit({ watch: 'ready', lorafile: this.display(this.lorafile), paths: paths.length, through: this.options.through ?? null, targets: this.options.targets });
    if (this.project) this.loop.start();
  }

  /**
   * What the watchers should hold: the lorafile, model files and every listed dataset file one by
   * one, with their folders polled; a dataset folder not listed yet (or listed through symbolic
   * links) is watched as a folder.
   */
  private watchPlan(): { files: string[]; folders: string[] } {
    if (!this.set) return { files: [this.lorafile], folders: [] };
    const roots = new Set(this.set.datasets.values());
    for (const root of [...this.listedFiles.keys()]) if (!roots.has(root)) this.listedFiles.delete(root);
    // a listing dropped by a change is re-made by the next build: keep watching what it held till then
    const listings = [...roots].map((root) => this.walks.filesOf(root) ?? this.listedFiles.get(root));
    // the same watch set and the very same listings (a caption save): the same plan, not 10,000 paths again
    const last = this.lastPlan;
    if (last && last.set === this.set && last.listings.length === listings.length && last.listings.every((l, i) => l === listings[i])) return last.plan;
    const files = [this.set.lorafile, ...this.set.models.values()];
    const folders: string[] = [];
    let i = 0;
    for (const root of roots) {
      const listed = listings[i++];
      if (listed) {
        this.listedFiles.set(root, listed);
        // not push(...listed): 200,000 arguments overflow the stack
        for (const file of listed) files.push(file);
        folders.push(root);
      } else {
        files.push(root);
      }
    }
    const plan = { files: [...new Set(files)], folders };
    this.lastPlan = { set: this.set, listings, plan };
    return plan;
  }

  private watchThis(plan: { files: string[]; folders: string[] }): void {
    if (!this.watchers || plan === this.watchedPlan) return;
    this.watchers.update(plan.files, plan.folders);
    this.watchedPlan = plan;
  }

  private auditLater(): void {
    if (this.auditTimer) clearTimeout(this.auditTimer);
    this.auditTimer = setTimeout(() => {
      this.auditTimer = undefined;
      if (this.stopRequested) return;
      if (this.loop.current === 'watching') {
        const started = performance.now();
        for (const root of this.walks.audit()) this.onFileEvent(root, 'missed');
        this.lastAuditMs = performance.now() - started;
      }
      // (a build under way audits again when it ends)
      if (this.auditOften && this.loop.current === 'watching') this.auditLater();
    }, this.auditOften ? Math.max(AUDIT_SHORT_MS, 10 * this.lastAuditMs) : AUDIT_IDLE_MS);
    this.auditTimer.unref();
  }

  /** Ctrl-C: stop the current build through the engine's abort path, then stop watching */
  async stop(): Promise<void> {
    this.stopRequested = true;
    await this.loop.stop();
    for (const timer of this.rechecks) clearTimeout(timer);
    if (this.auditTimer) clearTimeout(this.auditTimer);
    await this.watchers?.close();
    this.emit({ watch: 'stopped' });
  }

  /**
   * chokidar drops a second 'change' of a path within 50 ms of the first: a save right after
   * another could go unseen while the build had already read the older text. So each changed
   * file is stat'ed again a little later and reported once more if it changed meanwhile.
   */
  private recheckLater(abs: string): void {
    const timer = setTimeout(() => {
      this.rechecks.delete(timer);
      if (this.changedSinceNoticed(abs)) this.recheckLater(abs);
    }, CHOKIDAR_CHANGE_THROTTLE_MS + 10);
    this.rechecks.add(timer);
  }

  /**
   * The OS's own notice of a write to a file that chokidar reported less than 50 ms ago: chokidar
   * will drop its 'change', so the file is stat'ed as soon as the write has settled (chokidar's own
   * 5 ms) instead of at the recheck 60 ms later: two saves in a row are both answered at once.
   */
  private recheckIfThrottled(abs: string): void {
    const last = this.noticed.get(abs);
    if (!last || performance.now() - last.at >= CHOKIDAR_CHANGE_THROTTLE_MS || this.soon.has(abs)) return;
    const timer = setTimeout(() => {
      this.rechecks.delete(timer);
      this.soon.delete(abs);
      this.changedSinceNoticed(abs);
    }, RAW_SETTLE_MS);
    this.soon.add(abs);
    this.rechecks.add(timer);
  }

  /** reports `abs` again when its stat moved since the last notice of it; true if it did */
  private changedSinceNoticed(abs: string): boolean {
    const now = statOrNull(abs);
    const last = this.noticed.get(abs);
    if (!now || (last?.stat && sameStat(now, last.stat))) return false;
    this.noticed.set(abs, { at: last?.at ?? performance.now(), stat: now });
    // (onFileEvent drops it when the last build already read this very content)
    this.onFileEvent(abs, 'change');
    return true;
  }

  private onFileEvent(abs: string, event: string): void {
    if (event === 'change' && this.alreadyRead(abs)) return;
    if (++this.noticesSinceBuild > PATCHABLE_NOTICES) this.walks.dropAll();
    else this.walks.changed(abs, event);
    const set = this.set;
    const change: ChangeKind = set ? classifyChange(set, abs) : abs === this.lorafile ? { kind: 'lorafile' } : { kind: 'other' };
    if (change.kind === 'other') return;
    const affects = change.kind === 'lorafile' ? ['lorafile'] : change.names.map((n) => `${change.kind}:${n}`);
    this.emit({ watch: 'change', path: this.display(abs), event, affects });
    if (change.kind === 'lorafile') this.lorafileChanged = true;
    const staleDatasets = change.kind === 'dataset' ? change.names : change.kind === 'lorafile' ? [...this.current] : [];
    if (change.kind === 'lorafile') this.everythingChangedDuringBuild = true;
    for (const name of staleDatasets) this.changedDuringBuild.add(name);
    for (const name of staleDatasets) {
      if (this.current.delete(name)) this.emit({ watch: 'stale', dataset: name });
    }
    // with no valid lorafile yet, the loop is still 'initial': the first valid save starts the first build
    this.loop.change({ path: abs, event });
  }

  /**
   * True when the last build read exactly what the file holds now. One save often reaches us
   * twice: a second notice for the same write (truncate, then write), delayed behind chokidar
   * re-reading the folder, would otherwise start a build that changes nothing. Same stat is not
   * enough for a file written moments before it was hashed (racy, see StatMemo): that one is read
   * and hashed again.
   */
  private alreadyRead(abs: string): boolean {
    const used = this.walks.seen(abs);
    const stats = this.items?.stats;
    if (!used || !stats) return false;
    const now = statOrNull(abs);
    if (!now || !sameStat(now, used.stat)) return false;
    const recorded = stats.recordedHash(abs, now);
    if (!recorded) return false;
    if (recorded.racy) {
      try {
        if (sha256FileSync(abs) !== recorded.sha256) return false;
      } catch {
        return false;
      }
    }
    this.walks.confirm(abs);
    return true;
  }

  /** running train/render stages that read the changed path */
  private affectedRunning(change: Change): string[] {
    const compute = [...this.running].filter((id) => COMPUTE_KINDS.has(id.split(':')[0]));
    if (!compute.length || !this.set || !this.project) return [];
    const kind = classifyChange(this.set, change.path);
    // a lorafile edit may change any parameter: stopping costs little, the rerun resumes from the state
    if (kind.kind === 'lorafile') return compute;
    if (kind.kind === 'other') return [];
    const config = this.project.config;
    return compute.filter((id) => {
      const node = { kind: id.slice(0, id.indexOf(':')) as StageKind, target: id.slice(id.indexOf(':') + 1) };
      const names = kind.kind === 'dataset' ? stageDatasets(config, node) : [...stageInputFiles(config, node).keys()];
      return names.some((n) => kind.names.includes(n));
    });
  }

  /** loads the lorafile; an invalid one is reported and the last good plan stays */
  private async replan(): Promise<boolean> {
    let project: Project;
    try {
      project = await openProject(this.lorafile, this.options.targets);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.emit({ watch: 'config-error', diagnostics: err.diagnostics as unknown as Json[], keeping: this.project !== undefined });
      return false;
    }
    this.project = project;
    this.walks.useCache(project.cacheDir);
    this.set = watchSetFor(project.config, boundPlan(project.plan, this.options.through), project.cacheDir, project.lockFile);
    const after = watchedPaths(this.set);
    if (this.watchers) {
      this.watchThis(this.watchPlan());
    }
    this.emit({ watch: 'replanned', stages: boundPlan(project.plan, this.options.through).order, paths: after.length });
    return true;
  }

  private async runBuild(signal: AbortSignal, changes: Change[]): Promise<void> {
    this.build++;
    this.noticesSinceBuild = 0;
    if (this.auditTimer) clearTimeout(this.auditTimer);
    this.changedDuringBuild.clear();
    this.everythingChangedDuringBuild = false;
    const started = Date.now();
    if (this.lorafileChanged) {
      this.lorafileChanged = false;
      await this.replan();
    }
    const project = this.project;
    if (!project) return;
    this.emit({ watch: 'build', build: this.build, changes: [...new Set(changes.map((c) => this.display(c.path)))] });
    let lock;
    try {
      lock = await acquireWriterLock(project.cacheDir, 'lorabuild watch', {
        signal,
        onWait: (holder, waited) => this.emit({ watch: 'waiting', holder: `${holder.command} (pid ${holder.pid})`, cache: project.cacheDir, message: waitingMessage(holder, project.cacheDir, waited) }),
      });
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
    const kept = this.memosFor(project.cacheDir);
    const collected = new Map<string, Json[]>();
    const counts: Record<string, number> = { fresh: 0, cached: 0, ran: 0, failed: 0, skipped: 0 };
    try {
      const result = await execute({
        config: project.config,
        plan: boundPlan(project.plan, this.options.through),
        registry: this.options.registry,
        cacheDir: project.cacheDir,
        lockFile: project.lockFile,
        mode: 'run',
        signal,
        options: { update: [], keepGoing: false },
        knownStageIds: project.allStageIds,
        items: kept.memo,
        cas: kept.cas,
        statMemo: kept.stats,
        walkFolder: (rootAbs, display) => this.walks.walk(rootAbs, display),
        // no screen shows a memoized item (see screen.ts)
        quietCachedItems: true,
        onEvent: (e) => this.onStageEvent(e, collected, signal, project),
      });
      for (const r of result.reports.values()) if (r.outcome in counts) counts[r.outcome]++;
      const verdict = result.interrupted ? 'interrupted' : counts.failed ? 'failed' : 'done';
      this.emit({ watch: 'idle', build: this.build, verdict, counts, durationMs: Date.now() - started });
      if (this.build === 1 && !result.interrupted) await this.warmUp(project, signal, kept, result.reports);
    } finally {
      this.running.clear();
      lock.release();
      // files added or removed since: watch the dataset files this build listed
      this.watchThis(this.watchPlan());
      this.auditLater();
    }
  }

  /**
   * After the first build (the writer lock still held, the loop still running, so a save waits for
   * it or stops it): reruns the dataset stages without recording anything, to fill the memos the
   * first save would otherwise fill (watch/warm.ts; validate parses its tokenizer's vocabulary).
   */
  private async warmUp(project: Project, signal: AbortSignal, kept: { cas: Cas; memo: ItemMemo; stats: StatMemo }, first: ReadonlyMap<string, { outcome: string }>): Promise<void> {
    const started = Date.now();
    const plan = boundPlan(project.plan, this.options.through);
    // a stage the first build ran filled its memos already
    const warm = new Set([...warmStageIds(project.config, plan)].filter((id) => first.get(id)?.outcome === 'fresh' || first.get(id)?.outcome === 'cached'));
    this.warming = true;
    let interrupted = false;
    try {
      const result = warm.size === 0 ? { interrupted: false } : await execute({
        config: project.config,
        plan,
        registry: this.options.registry,
        cacheDir: project.cacheDir,
        lockFile: project.lockFile,
        mode: 'warm',
        warm,
        signal,
        items: kept.memo,
        cas: kept.cas,
        statMemo: kept.stats,
        walkFolder: (rootAbs, display) => this.walks.walk(rootAbs, display),
        quietCachedItems: true,
      });
      interrupted = result.interrupted;
    } catch {
      // only a head start: the save's build does the work and reports what fails
      interrupted = signal.aborted;
    } finally {
      this.warming = false;
    }
    // its garbage now, while no save waits (one that comes meanwhile waits for this ~10-50 ms)
    if (!interrupted && warm.size > 0) fullGc();
    this.emit({ watch: 'warm', stages: [...warm], interrupted, durationMs: Date.now() - started });
  }

  private onStageEvent(e: StageEvent, collected: Map<string, Json[]>, signal: AbortSignal, project: Project): void {
    // a build's thousands of per-item events: shown (or not) by the screen, nothing else to do
    if (e.item !== undefined && e.diagnostics === undefined) {
      this.options.screen.stage(e);
      return;
    }
    const final = e.item === undefined && e.progress === undefined && e.outcome !== undefined && e.outcome !== 'started';
    if (e.outcome === 'started' && e.item === undefined) this.running.add(e.stage);
    if (final) this.running.delete(e.stage);
    this.options.screen.stage(e);
    const node = project.plan.stages.get(e.stage);
    if (node?.kind !== 'validate') return;
    if (e.diagnostics) collected.set(node.target, [...(collected.get(node.target) ?? []), ...e.diagnostics]);
    if (!final) return;
    if (signal.aborted || e.reason === 'interrupted') return; // stays stale: the rerun decides
    if (e.outcome === 'ran' || e.outcome === 'failed') {
      // caption errors always come with diagnostics; a failure without them is a crash of the stage
      if (e.outcome === 'failed' && !collected.has(node.target)) {
        this.emit({ watch: 'unvalidated', dataset: node.target, reason: e.reason ?? 'failed' });
        return;
      }
      this.showDiagnostics(node.target, collected.get(node.target) ?? []);
    } else if (e.outcome === 'skipped') {
      this.emit({ watch: 'unvalidated', dataset: node.target, reason: e.reason ?? 'skipped' });
    } else {
      // fresh or restored: the materialised report is what the last validation found
      this.showMaterialized(node.target, project);
    }
  }

  /** memos kept across builds, one set per cache folder: unchanged items and files are not re-read from disk */
  private memosFor(cacheDir: string): { cas: Cas; memo: ItemMemo; stats: StatMemo } {
    if (this.items?.cacheDir !== cacheDir) {
      // blobs found present are trusted until gc or verify moves the cache generation
      keepLeavesInMemory(true);
      const cas = new Cas(cacheDir, { rememberPresence: true });
      this.items = { cacheDir, cas, memo: new ItemMemo(cacheDir, cas, { remember: true }), stats: StatMemo.load(new CacheLayout(cacheDir).statMemo) };
    }
    return this.items;
  }

  private showDiagnostics(dataset: string, diagnostics: Json[]): void {
    let errors = 0;
    let warnings = 0;
    for (const raw of diagnostics) {
      const d = raw as Partial<Diagnostic> | null;
      const severity = d?.more?.severity ?? d?.severity;
      const n = d?.more?.count ?? 1;
      if (severity === 'error') errors += n;
      else if (severity === 'warning') warnings += n;
    }
    // a dataset with thousands of one problem: a few of each kind and the counts (validation.json has all)
    diagnostics = groupDiagnostics(diagnostics as unknown as Diagnostic[], `${this.project?.config.out ?? 'out'}/datasets/${dataset}/validation.json`) as unknown as Json[];
    // a save that arrived while this build ran: show what was found, but not as current
    if (this.everythingChangedDuringBuild || this.changedDuringBuild.has(dataset)) {
      this.emit({ watch: 'diagnostics', dataset, errors, warnings, diagnostics, stale: true });
      return;
    }
    this.current.add(dataset);
    this.emit({ watch: 'diagnostics', dataset, errors, warnings, diagnostics });
  }

  private showMaterialized(dataset: string, project: Project): void {
    const file = resolve(project.config.root, project.config.out, 'datasets', dataset, 'validation.json');
    try {
      // read at once (not after an await) so that no change can slip between the stage event and this
      const report = JSON.parse(readFileSync(file, 'utf8')) as { diagnostics?: Json[] };
      this.showDiagnostics(dataset, Array.isArray(report.diagnostics) ? report.diagnostics : []);
    } catch {
      this.emit({ watch: 'unvalidated', dataset, reason: `validation is fresh but ${this.display(file)} is missing` });
    }
  }

  private display(abs: string): string {
    const root = this.project?.config.root ?? resolve(this.lorafile, '..');
    const rel = relative(root, abs);
    return (rel === '' ? '.' : rel).split(sep).join('/');
  }

  private emit(e: WatchEvent): void {
    this.options.screen.watch(e);
  }
}
