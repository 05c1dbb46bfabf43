// How the lorafile's own path is shown in diagnostics. Kept apart from load.ts so that light
// modules (planner, paths) can use it without loading the YAML parser and zod.
import path from 'node:path';

/** The lorafile path as diagnostics show it: relative to the cwd when inside it, '/' separators. */
export function displayFileName(file: string): string {
  const abs = path.resolve(file);
  const rel = path.relative(process.cwd(), abs);
  const shown = rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
  return shown.split(path.sep).join('/');
}
