// Where a `folder:` of the lorafile is on disk, and how it is shown in messages and lock files.
import os from 'node:os';
import path from 'node:path';

/** Absolute path of a dataset folder written in the lorafile: `~` expands, relative paths resolve against the lorafile's folder. */
export function resolveDatasetFolder(lorafileRoot: string, folder: string): string {
  let p = folder;
  if (p === '~' || p.startsWith('~/') || p.startsWith('~\\')) p = path.join(os.homedir(), p.slice(1));
  // A lorafile written on Windows (datasets\one-line-art) still works on Linux CI; drive-letter
  // paths are only meaningful on Windows and are left to path.resolve there.
  if (process.platform !== 'win32' && !/^[A-Za-z]:[\\/]/.test(p)) p = p.replace(/\\/g, '/');
  return path.resolve(lorafileRoot, p);
}

/** The folder as written, with '/' separators and no trailing separator: the prefix of display paths. */
export function displayFolder(folder: string): string {
  const p = folder.replace(/\\/g, '/').replace(/\/+$/, '');
  return p === '' ? '/' : p;
}

export function displayPath(displayRoot: string, rel: string): string {
  return displayRoot === '.' ? rel : `${displayRoot}/${rel}`;
}
