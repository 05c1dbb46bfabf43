// The watchers behind `lorabuild watch`.
//
//   listed:  every listed file of a local dataset, through one OS watch per folder that holds them
//            (folder-notices.ts): a save is noticed by name, without a watch per file.
//   files:   the lorafile, local model files and any dataset folder not listed yet (or listed through
//            symbolic links), with chokidar and the operating system's change notices.
//   folders: the dataset folders (and their subfolders), polling each folder's own stat, which
//            moves only when an entry is added, removed or renamed.
//
// Why not chokidar on the dataset folders: chokidar re-reads a watched folder, one lstat per
// entry, on every notice inside it, so each caption save in a 1,000-image folder cost a thousand
// lstats and ~35 ms of the main thread, racing the build it had just started. Why not chokidar on
// each listed file (as before): see folder-notices.ts.
import { resolve, sep } from 'node:path';
import type { Stats } from 'node:fs';
import { watch, type FSWatcher } from 'chokidar';
import { FolderNotices, watchLimitError } from './folder-notices.js';

/** how often dataset folders are polled for added or removed files */
export const FOLDER_POLL_MS = 100;

export interface WatcherHooks {
  /** chokidar's add/change/unlink/addDir/unlinkDir of an absolute path ('folder' for a polled folder whose entries changed) */
  event(abs: string, event: string, stats?: Stats): void;
  /** the OS notice, before chokidar has stat'ed anything (see WalkCache.rawEvent) */
  raw(eventType: string, watchedPath: string, evPath: string): void;
  error(message: string): void;
  /** the system refused to watch more files (ENOSPC): some inputs have no notices; called once */
  outOfWatches(): void;
  ignored(abs: string): boolean;
}

/**
 * The message for a watch the system refused (Linux: fs.inotify.max_user_watches, ~8,000 to ~1M by
 * kernel and memory; every dataset file takes one): said once, not once per refused file.
 */
export const OUT_OF_WATCHES =
  'watcher: the system refused to watch more files (ENOSPC): some input files get no change notices, so their folders are walked every few seconds instead and their saves are seen later. To watch them all, raise the limit, e.g. `sudo sysctl fs.inotify.max_user_watches=524288`';

/** tests: watch at most this many input files and refuse the rest as the system would (ENOSPC) */
function testWatchLimit(): number | undefined {
  const raw = process.env.LORABUILD_TEST_MAX_FILE_WATCHES;
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
}

export class InputWatchers {
  private files: FSWatcher | undefined;
  private folders: FSWatcher | undefined;
  private listed: FolderNotices | undefined;
  private lastUpdate: { allFiles: readonly string[]; folders: readonly string[] } | undefined;
  private watchedFiles = new Set<string>();
  private watchedFolders = new Set<string>();
  private refused = false;

  constructor(private readonly hooks: WatcherHooks) {}

  /**
   * `files`: plain files (and folders that must be watched the old way); `folders`: dataset folders
   * to poll. The files inside those folders are their listed files, watched through their folders.
   */
  async start(allFiles: string[], folders: string[]): Promise<void> {
    const ignored = (path: string) => this.hooks.ignored(resolve(path));
    const { files, listed } = splitListed(allFiles, folders);
    this.watchedFiles = new Set(files);
    this.watchedFolders = new Set(folders);
    const limit = testWatchLimit();
    this.files = watch(limit === undefined ? files : files.slice(0, limit), { ignoreInitial: true, ignored });
    if (limit !== undefined && files.length > limit) this.onError(watchLimitError());
    this.listed = new FolderNotices({
      event: (abs, event, stats) => this.hooks.event(abs, event, stats),
      raw: (eventType, watchedPath, name) => this.hooks.raw(eventType, watchedPath, name),
      refused: (err) => this.onError(err),
      ignored: (abs) => this.hooks.ignored(abs),
      // tests: the chokidar watches count first
      budget: () => (limit === undefined ? undefined : limit - Math.min(limit, files.length) - this.listed!.size),
    });
    this.listed.update(listed);
    this.lastUpdate = { allFiles, folders };
    this.folders = watch(folders, {
      ignoreInitial: true,
      usePolling: true,
      interval: FOLDER_POLL_MS,
      binaryInterval: FOLDER_POLL_MS,
      // folders only: their files are the other watcher's
      ignored: (path: string, stats?: Stats) => ignored(path) || (stats !== undefined && !stats.isDirectory()),
    });
    for (const event of ['add', 'change', 'unlink', 'addDir', 'unlinkDir'] as const) {
      this.files.on(event, (path: string, stats?: Stats) => this.hooks.event(resolve(path), event, stats));
      // a subfolder came or went (its files are picked up by the next folder walk)
      if (event === 'addDir' || event === 'unlinkDir') this.folders.on(event, (path: string) => this.hooks.event(resolve(path), event));
    }
    this.files.on('raw', (eventType: string, evPath: string, details: unknown) => {
      const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath;
      if (typeof watched === 'string') this.hooks.raw(eventType, resolve(watched), evPath);
    });
    // polling: a raw notice is the folder's own stat changing, i.e. entries added, removed or renamed
    this.folders.on('raw', (_eventType: string, evPath: string, details: unknown) => {
      if ((details as { curr?: unknown } | undefined)?.curr !== undefined && typeof evPath === 'string') this.hooks.event(resolve(evPath), 'folder');
    });
    for (const w of [this.files, this.folders]) w.on('error', (err) => this.onError(err));
    // (chokidar never reports 'ready' for a watcher started with no paths)
    const started = [files.length ? this.files : undefined, folders.length ? this.folders : undefined].filter((w) => w !== undefined);
    await Promise.all(started.map((w) => new Promise<void>((ready) => w.once('ready', () => ready()))));
  }

  private onError(err: unknown): void {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC' || String(err).includes('ENOSPC')) {
      if (this.refused) return;
      this.refused = true;
      this.hooks.error(OUT_OF_WATCHES);
      this.hooks.outOfWatches();
      return;
    }
    this.hooks.error(`watcher: ${err instanceof Error ? err.message : String(err)}`);
  }

  /** watch exactly these paths from now on */
  update(allFiles: string[], folders: string[]): void {
    // a save's build lists the same paths in a new plan: nothing to do, unless a folder watch died since
    const last = this.lastUpdate;
    if (last && sameList(last.allFiles, allFiles) && sameList(last.folders, folders) && this.listed?.complete()) return;
    this.lastUpdate = { allFiles, folders };
    const { files, listed } = splitListed(allFiles, folders);
    sync(this.files, this.watchedFiles, files);
    sync(this.folders, this.watchedFolders, folders);
    this.listed?.update(listed);
  }

  async close(): Promise<void> {
    this.listed?.close();
    await Promise.all([this.files?.close(), this.folders?.close()]);
  }
}

function sync(watcher: FSWatcher | undefined, watched: Set<string>, wanted: string[]): void {
  // after a caption save the paths are the same (wanted holds no duplicates: see WatchSession.watchPlan)
  if (wanted.length === watched.size && wanted.every((p) => watched.has(p))) return;
  const next = new Set(wanted);
  const removed = [...watched].filter((p) => !next.has(p));
  const added = wanted.filter((p) => !watched.has(p));
  if (removed.length) watcher?.unwatch(removed);
  if (added.length) watcher?.add(added);
  watched.clear();
  for (const p of next) watched.add(p);
}

/** the files inside a polled dataset folder (its listed files) apart from the rest */
function splitListed(all: readonly string[], folders: readonly string[]): { files: string[]; listed: string[] } {
  const prefixes = folders.map((f) => (f.endsWith(sep) ? f : f + sep));
  const files: string[] = [];
  const listed: string[] = [];
  for (const abs of all) (prefixes.some((p) => abs.startsWith(p)) ? listed : files).push(abs);
  return { files, listed };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
