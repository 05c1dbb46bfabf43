// Where a `folder:` of the lorafile is on disk, and how it is shown in messages and lock files.
import { resolveUserPath } from '../../config/paths.js';

/** Absolute path of a dataset folder written in the lorafile (`~`, relative and Windows-style paths as everywhere else). */
export function resolveDatasetFolder(lorafileRoot: string, folder: string): string {
  return resolveUserPath({ root: lorafileRoot }, folder);
}

/** The folder as written, with '/' separators and no trailing separator: the prefix of display paths. */
export function displayFolder(folder: string): string {
  const p = folder.replace(/\\/g, '/').replace(/\/+$/, '');
  return p === '' ? '/' : p;
}

export function displayPath(displayRoot: string, rel: string): string {
  return displayRoot === '.' ? rel : `${displayRoot}/${rel}`;
}
