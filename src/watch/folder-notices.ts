// Change notices for the listed files of dataset folders, one OS watch per folder that holds them
// (fs.watch on the folder: inotify reports every file written, created or removed in it, by name).
//
// chokidar watched each of those files on its own: at 10,000 images that was 20,000 OS watches and
// FSWatcher objects, ~50 MB of heap (~160 MB resident) and a second before the watch was ready, and
// at 100,000 images more watches than Linux grants by default (fs.inotify.max_user_watches), so
// saves were only found by walking the folders every few seconds. A folder watch has none of that,
// and unlike chokidar's own folder mode it never re-reads the folder on a notice.
import { existsSync, lstatSync, statSync, watch, type FSWatcher, type Stats } from 'node:fs';
import { basename, dirname, join, sep } from 'node:path';

/** editors' swap and backup files, which chokidar leaves out too (a folder poll still sees them come) */
const EDITOR_TEMP_RE = /^\..*\.sw[px]$|~$|\.subl.*\.tmp$/;

/** stats remembered to drop a second notice of one write (truncate, then write); past this many, forgotten */
const MAX_REMEMBERED_STATS = 10_000;

/** the error the system gives when it grants no more watches (the tests' limit gives it too) */
export function watchLimitError(): NodeJS.ErrnoException {
  return Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' });
}

export interface FolderNoticeHooks {
  /** what chokidar's watcher said of a watched file: 'change' or 'unlink' (`stats` when known); 'folder' when a folder's notices were lost */
  event(abs: string, event: string, stats?: Stats): void;
  /** the OS notice as it came, before any stat: `watchedPath` the listed file itself, or the folder for another name */
  raw(eventType: string, watchedPath: string, name: string): void;
  /** the system refused a watch (ENOSPC and the like) */
  refused(err: NodeJS.ErrnoException): void;
  ignored(abs: string): boolean;
  /** tests: how many more OS watches the system grants (undefined: no limit) */
  budget(): number | undefined;
}

interface Watched {
  watcher: FSWatcher;
  /** the folder's inode when watched: a folder replaced since (removed and made again) is watched anew */
  ino: number;
}

export class FolderNotices {
  private readonly folders = new Map<string, Watched>();
  private listed: ReadonlySet<string> = new Set();
  /** how many folders the last update asked for */
  private wanted = 0;
  /** the stat each file was last reported with */
  private readonly reported = new Map<string, string>();

  constructor(private readonly hooks: FolderNoticeHooks) {}

  /** the folders to watch are those holding `files` (absolute paths of listed files) */
  update(files: readonly string[]): void {
    const listed = new Set(files);
    const wanted = new Set<string>();
    for (const file of listed) wanted.add(dirname(file));
    this.listed = listed;
    this.wanted = wanted.size;
    for (const abs of this.reported.keys()) if (!listed.has(abs)) this.reported.delete(abs);
    for (const [dir, watched] of this.folders) {
      if (!wanted.has(dir) || inoOf(dir) !== watched.ino) this.unwatch(dir);
    }
    for (const dir of wanted) if (!this.folders.has(dir)) this.watchFolder(dir);
  }

  close(): void {
    for (const dir of [...this.folders.keys()]) this.unwatch(dir);
    this.reported.clear();
  }

  /** whether every folder the last update asked for is watched (none has gone or broken since) */
  complete(): boolean {
    return this.folders.size === this.wanted;
  }

  /** how many folders are watched (tests) */
  get size(): number {
    return this.folders.size;
  }

  private watchFolder(dir: string): void {
    const ino = inoOf(dir);
    if (ino === undefined) return; // gone already: the folder poll and the next walk see that
    const budget = this.hooks.budget();
    if (budget !== undefined && budget <= 0) {
      this.hooks.refused(watchLimitError());
      return;
    }
    let watcher: FSWatcher | undefined;
    try {
      // (a closed watcher's last notices, or one of a folder watched anew since, are not this watch's)
      watcher = watch(dir, { persistent: true }, (eventType, name) => {
        if (watcher !== undefined && this.folders.get(dir)?.watcher === watcher) this.notice(dir, eventType, name);
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') this.hooks.refused(e);
      return;
    }
    watcher.on('error', () => {
      // the folder went away or its watch broke: its files are found by the next walk (a watch of a
      // folder made again since is another watcher, and stays)
      if (this.folders.get(dir)?.watcher !== watcher) return;
      this.unwatch(dir);
      this.hooks.event(dir, 'folder');
    });
    this.folders.set(dir, { watcher, ino });
  }

  private unwatch(dir: string): void {
    const watched = this.folders.get(dir);
    if (!watched) return;
    this.folders.delete(dir);
    watched.watcher.close();
  }

  private notice(dir: string, eventType: string, name: string | Buffer | null): void {
    if (name === null || name === undefined) {
      // a notice without a name (the queue overflowed): anything in the folder may have changed
      this.hooks.event(dir, 'folder');
      return;
    }
    const base = name.toString();
    if (EDITOR_TEMP_RE.test(base)) return;
    const abs = dir.endsWith(sep) ? dir + base : join(dir, base);
    if (eventType === 'rename' && base === basename(dir) && !existsSync(abs)) {
      // the folder itself was removed or moved (the OS names it so): this watch is dead. The next
      // walk lists the folder again (if it is back), and the plan after it watches it anew
      this.unwatch(dir);
      this.hooks.event(dir, 'folder');
      return;
    }
    if (this.hooks.ignored(abs)) return;
    if (!this.listed.has(abs)) {
      // a name no listing holds: the folder's own stat moves when it comes or goes, and the folder
      // poll reports that as before; its notice marks the listing stale at once (WalkCache.rawEvent)
      if (eventType === 'rename') this.hooks.raw(eventType, dir, base);
      return;
    }
    this.hooks.raw(eventType, abs, base);
    let st: Stats;
    try {
      st = statSync(abs);
    } catch {
      this.reported.delete(abs);
      this.hooks.event(abs, 'unlink');
      return;
    }
    // a subfolder is the folder poll's to report
    if (!st.isFile()) return;
    const key = `${st.size}:${st.mtimeMs}:${st.ino}`;
    if (this.reported.get(abs) === key) return;
    if (this.reported.size >= MAX_REMEMBERED_STATS) this.reported.clear();
    this.reported.set(abs, key);
    this.hooks.event(abs, 'change', st);
  }
}

function inoOf(dir: string): number | undefined {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() ? st.ino : undefined;
  } catch {
    return undefined;
  }
}
