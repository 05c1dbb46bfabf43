// Input file maps of big datasets (more than FILES_INLINE_MAX files). A fingerprint hashes a flat
// digest of the sorted (path, sha256) pairs: one sha256 over ~1.5 MB at 20,000 files, cheap enough
// for every no-op run. The lock records that digest instead of 20,000 lines, plus the root of a
// chunk tree (cache/chunk-tree.ts) of the pairs, written to the cache when the entry changes, from
// which stale reasons name the edited files. Small maps (every lab dataset) stay inline and readable.
import { createHash } from 'node:crypto';
import type { Cas } from '../cache/cas.js';
import { readTree, writeTree } from '../cache/chunk-tree.js';
import { SHA256_RE } from './canonical.js';
import type { Json, LockEntry } from './types.js';

/** maps with more files than this are fingerprinted by digest and locked as a tree */
export const FILES_INLINE_MAX = 4096;

/** how the lock records a long file map */
export interface FilesTree {
  /** sha256 over "path\0sha256\n" of every pair, sorted by path: what the fingerprint hashes */
  digest: string;
  count: number;
  /** root of the chunk tree of [path, sha256] pairs (in the cache that built it) */
  root: string;
}

/** what one pass over a file map finds (a 200,000-key object is slow to walk: it is walked once) */
interface FileMapFacts {
  count: number;
  /** the paths, sorted (a lazy map's: only once it is loaded) */
  paths?: string[];
  /** a path whose value is not a sha256, if any */
  badPath?: string;
  digest?: string;
  /** files[paths[i]], when the map's maker handed them over (registerFileMap) */
  shas?: string[];
}

const facts = new WeakMap<Record<string, string>, FileMapFacts>();

function factsOf(files: Record<string, string>): FileMapFacts {
  let found = facts.get(files);
  if (found) return found;
  const paths = sortedPaths(files);
  let badPath: string | undefined;
  for (const path of paths) {
    const sha = files[path];
    if (typeof sha !== 'string' || !SHA256_RE.test(sha)) {
      badPath = path;
      break;
    }
  }
  found = { count: paths.length, paths, ...(badPath !== undefined ? { badPath } : {}) };
  facts.set(files, found);
  return found;
}

/** the paths and hashes of the map registered last: order and form already checked, known by identity */
let lastRegistered: { paths: string[]; shas: string[] } | undefined;

/**
 * Registers a map its maker built from parallel arrays (files[paths[i]] = shas[i], nothing else in
 * it): the one pass over the map is done here on the arrays, with no lookup of 10,000 keys. The
 * order and the hashes are still checked, but a path or hash that is the very string the last
 * registered map had at the same place (a watch save changes one file) needs no comparison.
 * Neither the map nor the arrays may change afterwards.
 */
export function registerFileMap(files: Record<string, string>, paths: string[], shas: string[]): void {
  if (facts.has(files) || paths.length !== shas.length) return;
  const last = lastRegistered;
  const same = (i: number) => last !== undefined && last.paths[i] === paths[i];
  let sorted = true;
  for (let i = 1; i < paths.length && sorted; i++) {
    if (same(i) && same(i - 1)) continue;
    if (paths[i - 1] >= paths[i]) sorted = false;
  }
  if (!sorted) return; // the general pass sorts them
  let badPath: string | undefined;
  for (let i = 0; i < paths.length; i++) {
    const sha = shas[i];
    if (last !== undefined && last.shas[i] === sha) continue;
    if (typeof sha !== 'string' || !SHA256_RE.test(sha)) {
      badPath = paths[i];
      break;
    }
  }
  facts.set(files, { count: paths.length, paths, shas, ...(badPath !== undefined ? { badPath } : {}) });
  if (badPath === undefined) lastRegistered = { paths, shas };
}

/** the map's sorted paths and their hashes (the hashes looked up unless the map was registered) */
export function sortedPairs(files: Record<string, string>): { paths: string[]; shas: string[] } {
  const f = factsOf(files);
  const paths = (f.paths ??= sortedPaths(files));
  return { paths, shas: (f.shas ??= paths.map((path) => files[path])) };
}

function sortedPaths(files: Record<string, string>): string[] {
  const paths = Object.keys(files);
  // the walk hands the map over in path order already: check before sorting
  for (let i = 1; i < paths.length; i++) {
    if (paths[i - 1] > paths[i]) return paths.sort();
  }
  return paths;
}

/** a path of the map whose value is not a sha256 (undefined: all are) */
export function badFileHash(files: Record<string, string>): string | undefined {
  return factsOf(files).badPath;
}

export function fileCount(files: Record<string, string>): number {
  return factsOf(files).count;
}

export function isLong(files: Record<string, string>): boolean {
  return factsOf(files).count > FILES_INLINE_MAX;
}

/** the digest a lock would record for the map: undefined for a map short enough to be inline */
export function longFilesDigest(files: Record<string, string>): string | undefined {
  return isLong(files) ? filesDigest(files) : undefined;
}

/** the flat digest of a map (memoised per map object) */
export function filesDigest(files: Record<string, string>): string {
  const f = factsOf(files);
  if (f.digest === undefined) {
    const hash = createHash('sha256');
    // in slices: one string of a 100,000-file map would be ~10 MB
    let text = '';
    const { paths, shas } = sortedPairs(files);
    for (let i = 0; i < paths.length; i++) {
      text += `${paths[i]}\0${shas[i]}\n`;
      if (text.length > 1 << 16) {
        hash.update(text);
        text = '';
      }
    }
    f.digest = hash.update(text).digest('hex');
  }
  return f.digest;
}

/**
 * A file map known by its digest and count (a folder whose every file has the stat it had when the
 * map was made: datasets/local/listing-snapshot.ts), built only if something reads its paths: a
 * no-op run fingerprints and locks it by digest alone. `load` must give the map with that digest
 * and count, or throw (the caller checks it: a file changed since the walk is an error, not a
 * silently different map).
 */
export function lazyFileMap(digest: string, count: number, load: () => Record<string, string>): Record<string, string> {
  const proxy = lazyMap(load);
  // a snapshot is saved only for a map of sha256s (the run that made it checked them all)
  facts.set(proxy, { count, digest });
  return proxy;
}

/**
 * A long file map made from parallel arrays (files[paths[i]] = shas[i], see registerFileMap): its
 * fingerprint, checks, stale reasons and tree read the arrays, so the 10,000-key object is built
 * only if something reads the map itself. A short map is a plain object (the lock holds it inline).
 */
export function arrayFileMap(paths: string[], shas: string[]): Record<string, string> {
  const build = (): Record<string, string> => {
    const files: Record<string, string> = {};
    for (let i = 0; i < paths.length; i++) files[paths[i]] = shas[i];
    return files;
  };
  const files = paths.length > FILES_INLINE_MAX ? lazyMap(build) : build();
  // (paths out of order or repeated are not registered: the general pass then reads the built map)
  registerFileMap(files, paths, shas);
  return files;
}

/** lazy maps not built yet: their files may have changed since the walk (see lazyFileMap) */
const unbuilt = new WeakSet<Record<string, string>>();

/** an object built by `load` the first time anything reads or changes it */
function lazyMap(load: () => Record<string, string>): Record<string, string> {
  const target: Record<string, string> = {};
  let loaded = false;
  const ensure = (): Record<string, string> => {
    if (!loaded) {
      Object.assign(target, load());
      loaded = true;
      unbuilt.delete(proxy);
    }
    return target;
  };
  const proxy = new Proxy(target, {
    get: (_t, key) => Reflect.get(ensure(), key),
    has: (_t, key) => Reflect.has(ensure(), key),
    ownKeys: () => Reflect.ownKeys(ensure()),
    getOwnPropertyDescriptor: (_t, key) => Reflect.getOwnPropertyDescriptor(ensure(), key),
    set: (_t, key, value) => Reflect.set(ensure(), key, value),
    defineProperty: (_t, key, attributes) => Reflect.defineProperty(ensure(), key, attributes),
    deleteProperty: (_t, key) => Reflect.deleteProperty(ensure(), key),
    // freezing the map (Object.freeze) builds it first: a frozen empty target could not be filled
    preventExtensions: () => Reflect.preventExtensions(ensure()),
    isExtensible: () => Reflect.isExtensible(ensure()),
  });
  unbuilt.add(proxy);
  return proxy;
}

/**
 * The last maps this process wrote or read as trees, by digest: `lorabuild watch` names the edited
 * file of a save from the map of the save before, without reading its tree back.
 */
const recent = new Map<string, Record<string, string>>();
const RECENT_MAPS = 2;

function remember(digest: string, files: Record<string, string>): void {
  recent.delete(digest);
  recent.set(digest, files);
  while (recent.size > RECENT_MAPS) recent.delete(recent.keys().next().value!);
}

/**
 * Keeps at hand the map a lock entry records by `tree` when the entry was kept, not written (its
 * files did not change): the next build of a watch compares its files with it instead of reading
 * the tree back (~50 ms at 10,000 files, which the first save after the warm-up paid). A lazy map
 * still unbuilt is built first only when `build` (a warm-up, before any save): built after a save
 * it would find the saved file changed, and throw.
 */
export function keepAtHand(tree: FilesTree, files: Record<string, string>, build: boolean): void {
  if (recent.has(tree.digest) || (unbuilt.has(files) && !build)) return;
  try {
    if (unbuilt.has(files)) Reflect.ownKeys(files);
  } catch {
    return; // a file changed since the walk: nothing kept, the next build reads the tree
  }
  if (factsOf(files).count === tree.count && filesDigest(files) === tree.digest) remember(tree.digest, files);
}

/** the lock's record of a long map, its tree written to the cache; undefined for a short map */
export function writeFilesTree(files: Record<string, string>, cas: Cas): FilesTree | undefined {
  if (!isLong(files)) return undefined;
  const digest = filesDigest(files);
  remember(digest, files);
  const { paths, shas } = sortedPairs(files);
  const ref = writeTree(cas, pairsOf(paths, shas));
  return { digest, count: paths.length, root: ref.root };
}

/** the pairs of the map written last, with its arrays: a pair at the same place with the same strings is that one */
let lastPairs: { paths: string[]; shas: string[]; pairs: Json[] } | undefined;

function pairsOf(paths: string[], shas: string[]): Json[] {
  const last = lastPairs;
  const pairs = new Array<Json>(paths.length);
  for (let i = 0; i < paths.length; i++) {
    // (compared as strings: the very same ones, as a watch save hands over, compare at once)
    pairs[i] = last !== undefined && last.paths[i] === paths[i] && last.shas[i] === shas[i] ? last.pairs[i] : pairOf(paths[i], shas[i]);
  }
  lastPairs = { paths, shas, pairs };
  return pairs;
}

/**
 * The [path, sha256] record of each path, the same array while the file's hash stays the same: the
 * chunk tree knows records by identity, so the leaves of the unchanged files of a watch save are
 * reused instead of serialised and hashed again. Cleared when it holds many more paths than the
 * maps written lately (files deleted, other datasets).
 */
const pairs = new Map<string, [string, string]>();

function pairOf(path: string, sha: string): Json {
  let pair = pairs.get(path);
  if (pair === undefined || pair[1] !== sha) {
    if (pair === undefined && pairs.size >= MAX_PAIRS) pairs.clear();
    pair = [path, sha];
    pairs.set(path, pair);
  }
  return pair;
}

const MAX_PAIRS = 400_000;

/** the map a tree records, read back from the cache; undefined when its nodes are not there (a fresh clone) */
export function readFilesTree(cas: Cas, tree: FilesTree): Record<string, string> | undefined {
  const known = recent.get(tree.digest);
  if (known) return known;
  try {
    const out: Record<string, string> = {};
    for (const pair of readTree(cas, tree)) {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return undefined;
      out[pair[0]] = pair[1];
    }
    if (filesDigest(out) !== tree.digest) return undefined;
    remember(tree.digest, out);
    return out;
  } catch {
    return undefined;
  }
}

/** the entry with a tree-recorded file map read back into `files` when this cache holds it */
export function withFilesRead(entry: LockEntry, cas: Cas): LockEntry {
  if (!entry.filesTree || Object.keys(entry.files ?? {}).length > 0) return entry;
  const files = readFilesTree(cas, entry.filesTree);
  return files ? { ...entry, files } : entry;
}

export function isFilesTree(value: unknown): value is FilesTree {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.digest === 'string' && SHA256_RE.test(v.digest) && typeof v.root === 'string' && SHA256_RE.test(v.root) && Number.isSafeInteger(v.count) && (v.count as number) > FILES_INLINE_MAX;
}
