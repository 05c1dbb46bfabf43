// Where lorabuild's own files are, for every module that needs one. Only this module reads
// import.meta.url: in the one-script bundle (dist/lorabuild.cjs, scripts/bundle.mjs) every module
// shares one file, so a path relative to a module's own URL would move; here it is the bundle's,
// which lies in dist/ like this module's built copy.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** the folder of the running code: src/ (vitest runs the sources), dist/ (built, or the bundle) */
export const CODE_DIR = dirname(fileURLToPath(import.meta.url));

/** the package's root folder: package.json, assets/, src/worker/ (the Python worker), dist/ */
export const PACKAGE_ROOT = dirname(CODE_DIR);

let required: NodeRequire | undefined;

/** loads an npm package synchronously (yaml and zod are CommonJS builds), resolved from the package root */
export function packageRequire(name: string): unknown {
  required ??= createRequire(join(PACKAGE_ROOT, 'package.json'));
  return required(name);
}
