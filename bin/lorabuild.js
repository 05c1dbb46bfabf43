#!/usr/bin/env node
// lorabuild's command line. Runs the CLI from dist/lorabuild.cjs, all of its modules in one script
// (scripts/bundle.mjs, after tsc), through a V8 code cache (bin/code-cache.js): that starts sooner
// than loading the ~100 ES modules of a no-op run. Takes dist/cli/main.js instead when the bundle
// is missing, or, in a checkout with the TypeScript sources, older than it (tsc alone after a
// change: the bundle holds old code). An installed package has no sources to compile, and npm
// extracts its files in no set order with the time of extraction as their mtime: its bundle is
// always the one that was packed with its dist/.
//   LORABUILD_NO_BUNDLE=1       always dist/cli/main.js
//   LORABUILD_NO_CODE_CACHE=1   the bundle without the code cache
//   LORABUILD_DEBUG_ENTRY=1     says on stderr which entry ran, and what became of the code cache
'use strict';
const { existsSync, statSync } = require('node:fs');
const { join } = require('node:path');

const env = process.env;
const debug = env.LORABUILD_DEBUG_ENTRY === '1';
const dist = join(__dirname, '..', 'dist');
const bundle = join(dist, 'lorabuild.cjs');

/** the bundle's stat when it is there and, in a checkout with sources, not older than dist/cli/main.js */
function freshBundle() {
  if (env.LORABUILD_NO_BUNDLE === '1') return undefined;
  try {
    const stat = statSync(bundle);
    if (!existsSync(join(__dirname, '..', 'src', 'cli', 'main.ts'))) return stat;
    return stat.mtimeMs >= statSync(join(dist, 'cli', 'main.js')).mtimeMs ? stat : undefined;
  } catch {
    return undefined;
  }
}

const stat = freshBundle();
if (stat) {
  require('./code-cache.js').runBundle(bundle, stat, process.argv[2], { useCache: env.LORABUILD_NO_CODE_CACHE !== '1', debug });
} else {
  if (debug) process.stderr.write('lorabuild: entry dist/cli/main.js\n');
  const main = join(dist, 'cli', 'main.js');
  import('../dist/cli/main.js').catch((err) => {
    // a checkout that was never built (or whose dist/ was removed): say so, not a resolver stack
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && !existsSync(main)) {
      process.stderr.write(`lorabuild: ${main} is missing: lorabuild is not built; run \`npm run build\` in ${join(__dirname, '..')} (or \`bash scripts/setup.sh\`)\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`lorabuild: internal error: ${err && err.stack ? err.stack : String(err)}\n`);
      process.exitCode = 70;
    }
  });
}
