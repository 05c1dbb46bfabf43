// The yaml package, loaded on first use: with zod it is most of lorabuild's start-up time, and a
// no-op run with a memoised lorafile (config/memo.ts) never parses YAML. (A CommonJS build, so
// require() loads it synchronously, from sources under vitest as from dist/.)
import { packageRequire } from '../package-root.js';

let yaml: typeof import('yaml') | undefined;

export function yamlModule(): typeof import('yaml') {
  yaml ??= packageRequire('yaml') as typeof import('yaml');
  return yaml;
}
