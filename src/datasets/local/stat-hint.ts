// The big folders a command walked last time, with their names (cache/folders/stat-hint): a run
// hands them to the stat thread as soon as it starts, so that most of their lstats are done while
// the command's code is still loading (parallel-lstat.ts). Only a hint: a folder's stats are used
// only when the walk finds the very same names there. Checksummed like the other files of folders/
// (a damaged hint is ignored), and rewritten only when the walked folders or their names change.
import { statSync } from 'node:fs';
import { statHintPath } from './stat-thread.js';
import { framed, unframed } from './folder-cache-file.js';
import { readRegularFileSync, writeOwnedFileAtomic } from '../../cache/safe-fs.js';

export const STAT_HINT_MAGIC = 'lorabuild-stat-hint 1';
/** a hint bigger than this (100,000s of names per folder) is not read */
const MAX_BYTES = 64 * 1024 * 1024;
/** folders kept in a hint */
const MAX_FOLDERS = 16;

export interface HintedFolder {
  /** the folder's absolute path with its trailing separator (what the walk prefixes names with) */
  prefix: string;
  /** its names, as the walk lists them (sorted, hidden ones left out), joined by '\n' */
  names: string;
  count: number;
}

function namesIn(joined: string): number {
  let count = 1;
  for (let at = joined.indexOf('\n'); at >= 0; at = joined.indexOf('\n', at + 1)) count++;
  return count;
}

export function formatStatHint(folders: readonly HintedFolder[]): string {
  return framed(STAT_HINT_MAGIC, { folders: folders.slice(0, MAX_FOLDERS).map((f) => [f.prefix, f.names]) });
}

/** the folders of a hint's text, or why it is not a hint this code wrote whole */
export function parseStatHint(text: string): { folders: HintedFolder[] } | { problem: string } {
  const seen = unframed(text, STAT_HINT_MAGIC);
  if ('problem' in seen) return seen;
  const list = seen.body.folders;
  if (!Array.isArray(list) || list.length > MAX_FOLDERS) return { problem: 'it is malformed' };
  const folders: HintedFolder[] = [];
  for (const item of list) {
    if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string' || typeof item[1] !== 'string' || !item[0] || !item[1]) return { problem: 'it is malformed' };
    folders.push({ prefix: item[0], names: item[1], count: namesIn(item[1]) });
  }
  return { folders };
}

/** the hint's folders, or none when it is missing, too big or damaged */
export function readStatHint(cacheDir: string): HintedFolder[] {
  const file = statHintPath(cacheDir);
  try {
    if (statSync(file).size > MAX_BYTES) return [];
    const seen = parseStatHint(readRegularFileSync(file, 'utf8'));
    return 'folders' in seen ? seen.folders : [];
  } catch {
    return [];
  }
}

export function writeStatHint(cacheDir: string, folders: readonly HintedFolder[]): void {
  // a lost hint costs the next run its head start, nothing else
  writeOwnedFileAtomic(cacheDir, statHintPath(cacheDir), formatStatHint(folders), { missingIsAbsent: true });
}
