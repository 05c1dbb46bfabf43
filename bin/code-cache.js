// Runs dist/lorabuild.cjs (the CLI in one CommonJS script, scripts/bundle.mjs) through vm.Script
// with a V8 code cache: compiling from the cache skips parsing the ~1 MB script and compiling the
// functions that the command's last uncached run compiled. One cache file per command whose
// start-up matters (run, status, plan, watch, check), one for all others, each beside the bundle.
// A cache that cannot be used (missing, damaged, made for another bundle, Node or arch, or
// rejected by V8, e.g. under other V8 flags) is written anew after the command ran, so that it
// holds the lazily compiled functions: to a temporary file renamed into place, any error ignored
// (a read-only install runs without). The file: a header line (format, Node version, arch, the
// bundle's size and mtime, CRC-32 and length of the data), then V8's data. V8 checks its data only
// against the source's length and its own version and flags, hence the CRC: damaged data is never
// handed to V8.
'use strict';
const { readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');
const { crc32 } = require('node:zlib');

const OWN_CACHE = new Set(['run', 'status', 'plan', 'watch', 'check']);
const FORMAT = 'lorabuild-code-cache 1';

/** the cache file of `command` beside the bundle */
function cacheFileFor(bundle, command) {
  return join(dirname(bundle), `lorabuild.${OWN_CACHE.has(command) ? command : 'other'}.code-cache`);
}

/** { data } when `file` holds data made for this bundle by this Node, intact; else { state } saying why not */
function readCache(file, key) {
  let bytes;
  try {
    bytes = readFileSync(file);
  } catch {
    return { state: 'missing' };
  }
  const end = bytes.indexOf(10);
  const header = end < 0 ? '' : bytes.subarray(0, Math.min(end, 512)).toString('latin1');
  if (!header.startsWith(`${FORMAT} `)) return { state: 'damaged' };
  const made = `${FORMAT} ${key} `;
  if (!header.startsWith(made)) return { state: 'outdated' }; // another bundle, Node or arch
  const [crc, length] = header.slice(made.length).split(' ');
  const data = bytes.subarray(end + 1);
  if (data.length !== Number(length) || crc32(data) !== Number(crc)) return { state: 'damaged' };
  return { data };
}

function writeCache(file, key, data) {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, Buffer.concat([Buffer.from(`${FORMAT} ${key} ${crc32(data)} ${data.length}\n`, 'latin1'), data]));
    renameSync(tmp, file);
    return true;
  } catch {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing more to do: the next run tries again
    }
    return false;
  }
}

/**
 * Runs the bundle as Node runs a CommonJS module (the same wrapper, so line numbers in stack
 * traces are the bundle's). `stat`: the bundle's, `debug`: writes what happened to stderr.
 */
function runBundle(bundle, stat, command, { useCache = true, debug = false } = {}) {
  const source = readFileSync(bundle, 'latin1'); // ASCII (scripts/bundle.mjs): the same text, read 20x faster than utf8
  const file = cacheFileFor(bundle, command);
  const key = `${process.version} ${process.arch} ${stat.size} ${stat.mtimeMs}`;
  const read = useCache ? readCache(file, key) : { state: 'off' };
  const script = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, {
    filename: bundle,
    cachedData: read.data,
  });
  const state = read.data === undefined ? read.state : script.cachedDataRejected ? 'rejected' : 'accepted';
  if (debug) process.stderr.write(`lorabuild: entry bundle, code cache ${state} (${file})\n`);
  if (state !== 'off' && state !== 'accepted') {
    process.once('exit', () => {
      const written = writeCache(file, key, script.createCachedData());
      if (debug) process.stderr.write(`lorabuild: code cache ${written ? 'written' : 'not written'} (${file})\n`);
    });
  }
  const module = { exports: {} };
  script.runInThisContext().call(module.exports, module.exports, createRequire(bundle), module, bundle, dirname(bundle));
}

module.exports = { runBundle };
