// Dataset folder listings kept between the builds of `lorabuild watch`. The watcher reports every
// change, so a build need not walk and lstat a thousand files to find the one caption that was
// saved: a 'change' of a listed file re-stats that file only; anything else (a file added or
// removed, a folder event, a path the listing does not know) drops the folder's listing and the
// next build walks it again. Folders reached through symbolic links are never kept: the watcher
// may report their files under another path. A walk again reads only the subfolders whose stat
// changed: their names come from the cache's folder memo (the one `lorabuild run` uses), or from
// the last walk when no cache is given.
import { lstatSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { DirNames } from '../datasets/local/dir-names.js';
import { walkWithFolderMemo } from '../datasets/local/memo-walk.js';
import { walkDatasetFolderSync, type FolderFile, type FolderWalk } from '../datasets/local/walk.js';
import { sameStat } from '../engine/stat-memo.js';
import { isInside } from './files.js';

interface KeptWalk {
  files: FolderFile[];
  /** absolute path -> index in files */
  index: Map<string, number>;
  /** files the watcher reported changed since the walk */
  dirty: Set<string>;
  /** files' absolute paths (a re-stat changes no path): the same array while the walk is kept */
  paths?: string[];
}

export class WalkCache {
  private readonly walks = new Map<string, KeptWalk>();
  /** folder names of the last walk of each root (when no cache folder is set) */
  private readonly dirs = new Map<string, DirNames>();
  private cacheDir: string | undefined;
  /** walks done in full (for tests and the bench: a caption save should cause none) */
  fullWalks = 0;

  /** keep folder names in this cache's folder memo (shared with `lorabuild run`) */
  useCache(cacheDir: string): void {
    this.cacheDir = cacheDir;
  }

  async walk(rootAbs: string, display: string): Promise<FolderFile[]> {
    const kept = this.walks.get(rootAbs);
    if (kept && this.restat(kept)) return kept.files.slice();
    this.walks.delete(rootAbs);
    const { files, followedLinks } = this.fullWalk(rootAbs, display);
    this.fullWalks++;
    if (!followedLinks) this.walks.set(rootAbs, { files, index: new Map(files.map((f, i) => [f.abs, i])), dirty: new Set() });
    return files.slice();
  }

  /** a watcher event for `abs` ('add', 'change', 'unlink', 'addDir', 'unlinkDir') */
  changed(abs: string, event: string): void {
    for (const [root, kept] of this.walks) {
      if (!isInside(root, abs)) continue;
      if (event === 'change' && kept.index.has(abs)) kept.dirty.add(abs);
      else if (!(event === 'change' && basename(abs).startsWith('.'))) this.walks.delete(root); // dot-files are never listed
    }
  }

  /**
   * chokidar's 'raw' event: the file system's own notice, emitted before chokidar stats the path
   * and decides what it was. Marking the listing from it at once closes the gap in which a build
   * could start, trust a listing and miss a save whose processed event had not arrived yet.
   */
  rawEvent(eventType: string, watchedPath: string, evPath: string | null | undefined): void {
    if (!evPath) return;
    // chokidar watches every file on its own as well as each folder
    const known = [...this.walks.values()].some((kept) => kept.index.has(watchedPath));
    const abs = known ? watchedPath : join(watchedPath, evPath);
    this.changed(abs, eventType === 'change' ? 'change' : 'rename');
  }

  /** the stat the last build used for `abs` (dirty: changed since), or undefined if not kept */
  seen(abs: string): { stat: { size: number; mtimeMs: number; ino: number }; dirty: boolean } | undefined {
    for (const kept of this.walks.values()) {
      const i = kept.index.get(abs);
      if (i !== undefined) return { stat: kept.files[i], dirty: kept.dirty.has(abs) };
    }
    return undefined;
  }

  /**
   * Walks every kept folder again and compares it with its listing: true (and the listing dropped)
   * for each folder where a notice must have been missed (an overflowing notice queue during a
   * mass change, a network file system). Returns the folders that differed.
   */
  audit(): string[] {
    const differed: string[] = [];
    for (const [root, kept] of this.walks) {
      let files;
      try {
        files = this.fullWalk(root, root).files;
      } catch {
        files = undefined;
      }
      const same =
        files !== undefined &&
        files.length === kept.files.length &&
        files.every((f, i) => {
          const k = kept.files[i];
          return f.abs === k.abs && (kept.dirty.has(f.abs) || sameStat(f, k));
        });
      if (!same) {
        this.walks.delete(root);
        differed.push(root);
      }
    }
    return differed;
  }

  /** forget every listing (a burst of notices too big to patch one by one) */
  dropAll(): void {
    this.walks.clear();
  }

  /**
   * every file of the kept listing of `rootAbs` (absolute paths), or undefined when none is kept:
   * the very same array while the listing is kept (it must not be changed)
   */
  filesOf(rootAbs: string): string[] | undefined {
    const kept = this.walks.get(rootAbs);
    if (!kept) return undefined;
    return (kept.paths ??= kept.files.map((f) => f.abs));
  }

  /** the watcher's notice for `abs` turned out to change nothing: its listing entry is current again */
  confirm(abs: string): void {
    for (const kept of this.walks.values()) kept.dirty.delete(abs);
  }

  private fullWalk(rootAbs: string, display: string): FolderWalk {
    if (this.cacheDir !== undefined) return walkWithFolderMemo(this.cacheDir, rootAbs, display);
    const walk = walkDatasetFolderSync(rootAbs, display, this.dirs.get(rootAbs));
    this.dirs.set(rootAbs, walk.dirs);
    return walk;
  }

  /** re-stats the reported files; false when one is no longer a plain file (walk again) */
  private restat(kept: KeptWalk): boolean {
    for (const abs of kept.dirty) {
      let info;
      try {
        info = lstatSync(abs);
      } catch {
        return false;
      }
      if (!info.isFile()) return false;
      const i = kept.index.get(abs)!;
      kept.files[i] = { ...kept.files[i], size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
    }
    kept.dirty.clear();
    return true;
  }
}
