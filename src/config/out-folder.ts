// Where `out:` may point. lorabuild replaces files in out/ at will, so out/ must be a folder of its
// own: not the lorafile's folder (report.md, lorafile.lock), not a dataset (a build that writes into
// its own input never settles) and not the cache. Checked on every run (it depends on the disk and
// on LORABUILD_CACHE), so it is not part of the memoised parse.
import { lstatSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Diagnostic } from './diagnostic.js';
import { displayFileName } from './display.js';
import { ConfigError } from './errors.js';
import { resolveUserPath } from './paths.js';
import type { Config } from './schema.js';

/** The real path of `p`: its longest existing prefix resolved through links, the rest appended. */
export function realPathOf(p: string): string {
  const missing: string[] = [];
  let current = path.resolve(p);
  for (;;) {
    try {
      return path.join(realpathSync(current), ...missing.reverse());
    } catch {
      const parent = path.dirname(current);
      if (parent === current) return path.join(current, ...missing.reverse());
      missing.push(path.basename(current));
      current = parent;
    }
  }
}

/** a is b, or inside it */
export function isWithin(a: string, b: string): boolean {
  const rel = path.relative(b, a);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** What is wrong with `out:` (one sentence and a hint), or undefined when it is a folder of its own. */
export function outFolderProblem(config: Config, cacheDir: string): { message: string; hint: string } | undefined {
  const written = config.out;
  const outAbs = resolveUserPath(config, written);
  const hint = "point 'out:' at a folder of its own, such as 'out' (the default)";
  let entry;
  try {
    entry = lstatSync(outAbs);
  } catch {
    entry = undefined;
  }
  if (entry?.isSymbolicLink()) {
    let target = '';
    try {
      target = ` (to ${realpathSync(outAbs)})`;
    } catch {
      target = ' (a dangling link)';
    }
    return { message: `out: '${written}' is a symbolic link${target}; committed links dangle on other machines (CI)`, hint: 'make it a real folder' };
  }
  if (entry && !statSync(outAbs).isDirectory()) return { message: `out: '${written}' is a file, not a folder`, hint: `move the file away, or ${hint}` };

  const out = realPathOf(outAbs);
  const root = realPathOf(config.root);
  if (isWithin(root, out)) {
    return { message: `out: '${written}' ${out === root ? 'is' : 'contains'} the lorafile's own folder, and lorabuild replaces files in out/ (report.md, ...)`, hint };
  }
  const cache = realPathOf(cacheDir);
  if (isWithin(out, cache) || isWithin(cache, out)) {
    return { message: `out: '${written}' ${out === cache ? 'is' : isWithin(out, cache) ? 'is inside' : 'contains'} the cache (${cacheDir})`, hint };
  }
  for (const [name, spec] of Object.entries(config.datasets)) {
    if (!spec.folder) continue;
    const dataset = realPathOf(resolveUserPath(config, spec.folder));
    if (isWithin(out, dataset) || isWithin(dataset, out)) {
      const how = out === dataset ? 'is' : isWithin(out, dataset) ? 'is inside' : 'contains';
      return { message: `out: '${written}' ${how} the folder of dataset '${name}' (${spec.folder}): the build would write into its own input`, hint };
    }
  }
  return undefined;
}

/** Throws a positioned ConfigError (exit 2) when `out:` is not a folder of its own. */
export async function checkOutFolder(config: Config, cacheDir: string): Promise<void> {
  const problem = outFolderProblem(config, cacheDir);
  if (!problem) return;
  const { locatorOf } = await import('./load.js');
  // the default `out` is not written anywhere in the file: then there is no position to show
  const span = /^out[ \t]*:/m.test(config.source) ? locatorOf(config)?.value(['out']) : undefined;
  const diagnostic: Diagnostic = { severity: 'error', code: 'out-folder', file: displayFileName(config.file), message: problem.message, hint: problem.hint, ...(span ? { line: span.line, col: span.col, endCol: span.endCol } : {}) };
  throw new ConfigError([diagnostic], config.source);
}
