// Where a worker thread's script is: its built copy in dist/, also when the module that starts it
// runs from src/ (the tests) or from the bundle (dist/lorabuild.cjs, which keeps worker scripts as
// files of their own); undefined when it is not built.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../package-root.js';

/** `rel`: the script's path under dist/, e.g. 'images/decode-worker.js' */
export function workerScript(rel: string): URL | undefined {
  const script = join(PACKAGE_ROOT, 'dist', rel);
  return existsSync(script) ? pathToFileURL(script) : undefined;
}
