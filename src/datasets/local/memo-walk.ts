// A walk of a dataset folder through its folder memo in the cache: the names of unchanged
// subfolders come from the memo, and the memo is brought up to date with what the walk read.
import { folderMemoPath, loadFolderMemo, saveFolderMemo } from './folder-memo.js';
import { walkDatasetFolderSync, type FolderWalk } from './walk.js';

export function walkWithFolderMemo(cacheDir: string, rootAbs: string, display: string): FolderWalk {
  const file = folderMemoPath(cacheDir, rootAbs);
  const before = loadFolderMemo(file, rootAbs);
  const walk = walkDatasetFolderSync(rootAbs, display, before.dirs);
  try {
    saveFolderMemo(cacheDir, file, rootAbs, before, { ...before, dirs: walk.dirs });
  } catch {
    // only a cache: the next walk reads those folders again
  }
  return walk;
}
