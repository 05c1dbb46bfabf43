// Where a worker thread's script is: beside the module that starts it (in dist/), or, when that
// module runs from src/ (the tests), its built copy; undefined when neither exists (not built).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function workerScript(beside: URL, built: URL): URL | undefined {
  for (const script of [beside, built]) if (existsSync(fileURLToPath(script))) return script;
  return undefined;
}
