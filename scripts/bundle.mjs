#!/usr/bin/env node
// Builds dist/lorabuild.cjs after tsc (`npm run build` does both): the CLI, dist/cli/main.js and
// every module of lorabuild's it imports, as one CommonJS script that bin/lorabuild.js compiles with
// a V8 code cache (Node 20 has no code cache for ES modules). Dynamically imported modules stay
// lazy (esbuild wraps each in an init function that runs on the import), npm packages stay outside
// (required where they are imported now), worker-thread scripts stay files of their own in dist/.
// Writes a temporary file and renames it, so a failed build leaves the old bundle, which is then
// older than dist/cli/main.js and not run.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const entry = join(dist, 'cli', 'main.js');
const out = join(dist, 'lorabuild.cjs');
const packageRoot = join(dist, 'package-root.js');

if (!existsSync(entry) || !existsSync(packageRoot)) {
  console.error(`bundle: ${relative(root, existsSync(entry) ? packageRoot : entry)} is missing: run \`npx tsc -p tsconfig.json\` first (\`npm run build\` runs both)`);
  process.exit(1);
}

// package-root.js is the one module that may read import.meta.url: in the bundle it is the bundle's
// URL (dist/lorabuild.cjs, beside package-root.js). Any other use is a build error (logOverride).
const packageRootUrl = {
  name: 'package-root-url',
  setup(b) {
    b.onLoad({ filter: /[\\/]dist[\\/]package-root\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8').replaceAll('import.meta.url', 'require("node:url").pathToFileURL(__filename).href');
      return { contents: text, loader: 'js' };
    });
  },
};

// npm packages stay outside the bundle, required at run time (Node 20.19 requires ES modules too).
// The bundle's modules are ES modules of a "type": "module" package, so esbuild gives a default
// import Node's meaning for a CommonJS package (module.exports); an ES module package required is
// its namespace, whose default export is `.default`. A default import of one (p-queue) goes
// through a re-export instead, which esbuild reads as an ES module should be.
const ESM_PACKAGE = 'esm-package';
function isEsModule(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs') || !file.endsWith('.js')) return false;
  for (let dir = dirname(file); dir !== dirname(dir); dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) return JSON.parse(readFileSync(pkg, 'utf8')).type === 'module';
  }
  return false;
}
const npmPackages = {
  name: 'npm-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (isBuiltin(args.path) || args.namespace === ESM_PACKAGE) return { path: args.path, external: true };
      let file;
      try {
        file = createRequire(args.importer).resolve(args.path);
      } catch {
        return { errors: [{ text: `cannot resolve the npm package '${args.path}' (imported by ${relative(root, args.importer)}): run npm ci` }] };
      }
      return isEsModule(file) ? { path: args.path, namespace: ESM_PACKAGE } : { path: args.path, external: true };
    });
    b.onLoad({ filter: /.*/, namespace: ESM_PACKAGE }, (args) => {
      const name = JSON.stringify(args.path);
      return { contents: `export * from ${name};\nexport { default } from ${name};\n`, loader: 'js' };
    });
  },
};

let result;
try {
  result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // import() of an npm package or node: module becomes require() (Node 20.19 requires ES modules):
    // vm.Script's import() needs an experimental loader option that Node 20 warns about on stderr,
    // and that a script compiled from a code cache loses
    supported: { 'dynamic-import': false },
    write: false,
    outfile: out,
    plugins: [packageRootUrl, npmPackages],
    logLevel: 'warning',
    logOverride: { 'empty-import-meta': 'error' },
    banner: { js: '// lorabuild\'s CLI in one script, made by scripts/bundle.mjs from dist/ (do not edit): bin/lorabuild.js runs it' },
  });
} catch (err) {
  const usesImportMeta = err.errors?.some((e) => /import\.meta/.test(e.text));
  if (usesImportMeta) console.error('bundle: a module reads import.meta (see above): in the bundle all modules share one file; take paths from src/package-root.ts');
  console.error(`bundle: ${relative(root, out)} not built`);
  process.exit(1);
}

// ASCII only, so that bin/code-cache.js can read it as latin1 (~0.2 ms, utf8 ~4 ms for 1 MB): esbuild
// escapes strings but leaves a few comments and regular expressions alone, where \uXXXX means the same
const text = result.outputFiles[0].text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
const tmp = `${out}.${process.pid}.tmp`;
try {
  writeFileSync(tmp, text, 'latin1');
  renameSync(tmp, out);
} catch (err) {
  rmSync(tmp, { force: true });
  console.error(`bundle: cannot write ${relative(root, out)}: ${err.message}`);
  process.exit(1);
}
