// lorafile.lock: one LockEntry per built stage, as deterministic YAML (sorted keys, fixed
// formatting) next to the lorafile, meant to be committed. Parsing 20,000 file hashes of YAML on
// every no-op run would cost more than the run itself, so the parsed form is memoised in the cache
// under the hash of the lock text.
import { lstatSync, rmSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../cache/atomic.js';
import { CacheLayout } from '../cache/layout.js';
import { sha256Hex, SHA256_RE } from './canonical.js';
import { checkOutputName } from './outputs.js';
import { FILES_INLINE_MAX, isFilesTree } from './file-tree.js';
import type { Json, LockEntry, Lockfile } from './types.js';
import { firstAlias } from '../config/yaml-aliases.js';
import { kindOf, NotRegularFileError, readRegularFileSync, writeOwnedFileAtomic } from '../cache/safe-fs.js';
import { yamlModule } from '../config/yaml-module.js';

export function lockPathFor(lorafile: string): string {
  const name = basename(lorafile).replace(/\.ya?ml$/i, '');
  return join(dirname(lorafile), `${name}.lock`);
}

export interface LoadedLock {
  lock: Lockfile;
  /** sha256 of the lock text as read ('' when there is none), to skip rewriting an unchanged lock */
  textHash: string;
  /** why the file was ignored, if it was */
  problem?: string;
}

/**
 * Reads the lock (synchronously). `knownHash` may give the lock text's sha256 without reading it
 * (the stat memo's `knownHash`): an unchanged lock is then one JSON.parse of its memoised parse.
 * Only a string result is used, so an async hasher is accepted but simply not waited for.
 */
export function readLockfile(file: string, cacheRoot: string, knownHash?: (abs: string) => string | undefined | Promise<string>): LoadedLock {
  const layout = new CacheLayout(cacheRoot);
  let textHash: string | undefined;
  try {
    const hash = knownHash?.(file);
    if (typeof hash === 'string') textHash = hash;
    else if (hash) hash.catch(() => {});
  } catch {
    // no such file: handled below
  }
  if (textHash && lastWritten?.file === file && lastWritten.textHash === textHash) return { lock: JSON.parse(lastWritten.json) as Lockfile, textHash };
  if (textHash) {
    try {
      return { lock: JSON.parse(readRegularFileSync(layout.parsedLock(textHash), 'utf8')) as Lockfile, textHash };
    } catch {
      // not memoised yet: parse the YAML below
    }
  }
  let text: string;
  try {
    text = readRegularFileSync(file, 'utf8');
  } catch (err) {
    // a FIFO or a folder where the lock belongs is no lock lorabuild wrote
    if (err instanceof NotRegularFileError) return { lock: emptyLock(), textHash: `not-a-file:${err.kind}`, problem: `${file} is ${err.kind}, not a lock file — the lock is ignored; move it away so that lorabuild can write the lock` };
    return { lock: emptyLock(), textHash: '' };
  }
  textHash = sha256Hex(text);
  const memo = layout.parsedLock(textHash);
  try {
    return { lock: JSON.parse(readRegularFileSync(memo, 'utf8')) as Lockfile, textHash };
  } catch {
    // not memoised yet
  }
  // yaml loads only when the lock changed since its parse was memoised (no-op runs skip it)
  const yaml = yamlModule();
  const { parseDocument, LineCounter } = yaml;
  const lines = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, lineCounter: lines });
  const ignored = ' — the lock is ignored and rewritten by the next successful run';
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const where = e.linePos ? `:${e.linePos[0].line}:${e.linePos[0].col}` : '';
    return { lock: emptyLock(), textHash, problem: `${file}${where}: ${e.message.split('\n')[0]}${ignored}` };
  }
  // the lock is written without aliases: one is a hand edit (and could be an alias bomb)
  const alias = firstAlias(yaml, doc, lines);
  if (alias) return { lock: emptyLock(), textHash, problem: `${file}${alias.line ? `:${alias.line}:${alias.col}` : ''}: ${alias.message}${ignored}` };
  const value = doc.toJS() as Partial<Lockfile> | null;
  const problem = lockShapeProblem(value);
  if (problem) return { lock: emptyLock(), textHash, problem: `${file}: ${problem} — the lock is ignored and rewritten by the next successful run` };
  const lock = value as Lockfile;
  writeOwnedFileAtomic(cacheRoot, memo, JSON.stringify(lock), { missingIsAbsent: true }); // a lost memo: the YAML is parsed again
  return { lock, textHash };
}

export async function renderLockfile(lock: Lockfile): Promise<string> {
  const header = '# lorafile.lock: written by `lorabuild run`; commit it. Do not edit by hand.\n';
  const { lockYaml } = await import('./lock-yaml.js'); // only a changed lock is written
  return header + lockYaml(lock as unknown as Record<string, Json>);
}

/**
 * The last lock this process wrote, parsed: `lorabuild watch` reads its own lock back on every
 * save, and keeps it here instead of memoising every version in the cache (a 1,000-image lock is
 * ~180 KB; with its memo, most of what a save writes).
 */
let lastWritten: { file: string; textHash: string; json: string } | undefined;

/**
 * Writes the lock atomically if its text changed; memoises the parsed form (in the cache unless
 * `memoInCache` is false: then only in this process). Returns the new text's hash, or null if unchanged.
 */
export async function writeLockfile(file: string, lock: Lockfile, previousTextHash: string, cacheRoot: string, memoInCache = true): Promise<string | null> {
  const text = await renderLockfile(lock);
  const textHash = sha256Hex(text);
  if (textHash === previousTextHash) return null;
  let existing;
  try {
    existing = lstatSync(file);
  } catch {
    existing = undefined;
  }
  if (existing && !existing.isFile() && !existing.isSymbolicLink()) throw new Error(`${file} is ${kindOf(existing)}, where lorabuild writes the lock; move it away`);
  writeFileAtomic(file, text);
  const json = JSON.stringify(lock);
  lastWritten = { file, textHash, json };
  if (memoInCache) {
    const memo = new CacheLayout(cacheRoot).parsedLock(textHash);
    writeOwnedFileAtomic(cacheRoot, memo, json, { missingIsAbsent: true }); // a lost memo: the YAML is parsed again
    pruneMemos(dirname(memo), basename(memo));
  }
  return textHash;
}

function pruneMemos(dir: string, keep: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  // keep a few: other lorafiles may share the cache
  if (names.length <= 16) return;
  for (const name of names) if (name !== keep) rmSync(join(dir, name), { force: true });
}

export function emptyLock(): Lockfile {
  return { version: 1, stages: {} };
}

/** Why a parsed value is not a lock lorabuild could have written (undefined when it is one). */
export function lockShapeProblem(input: unknown): string | undefined {
  const value = input as Partial<Lockfile> | null;
  if (!value || typeof value !== 'object') return 'not a lock file (expected a mapping with version and stages)';
  if (value.version !== 1) return `unsupported lock version ${JSON.stringify(value.version)} (expected 1)`;
  if (!value.stages || typeof value.stages !== 'object') return 'missing `stages`';
  for (const [id, entry] of Object.entries(value.stages)) {
    const e = entry as Partial<LockEntry>;
    if (typeof e?.fingerprint !== 'string' || typeof e.outputs !== 'object' || e.outputs === null) return `stage ${id}: entry lacks fingerprint or outputs`;
    // output names become paths under out/: a hand-edited lock must not point anywhere else
    for (const [name, blob] of Object.entries(e.outputs)) {
      const bad = checkOutputName(name);
      if (bad) return `stage ${id}: ${bad}`;
      if (typeof blob?.sha256 !== 'string' || !SHA256_RE.test(blob.sha256) || !Number.isSafeInteger(blob.size) || blob.size < 0) return `stage ${id}: output ${name} needs a sha256 and a size`;
    }
    if (!isMapping(e.params)) return `stage ${id}: params must be a mapping`;
    if (!isMapping(e.files) || !Object.values(e.files).every((sha) => typeof sha === 'string' && SHA256_RE.test(sha))) return `stage ${id}: files must map paths to sha256 hashes`;
    if (e.filesTree !== undefined && !isFilesTree(e.filesTree)) return `stage ${id}: filesTree must be { digest: sha256, root: sha256, count: more than ${FILES_INLINE_MAX} }`;
    if (!isMapping(e.upstream) || !Object.values(e.upstream).every((fp) => typeof fp === 'string')) return `stage ${id}: upstream must map stage ids to fingerprints`;
    if (e.implVersion !== undefined && !Number.isSafeInteger(e.implVersion)) return `stage ${id}: implVersion must be a whole number`;
    // YAML can spell .inf and .nan; JSON (and so a fingerprint) cannot, and lorabuild never writes them
    if (!finiteJson(e.params) || !finiteJson(e.meta)) return `stage ${id}: params and meta hold only finite numbers`;
  }
  return undefined;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function finiteJson(value: unknown, depth = 0): boolean {
  if (typeof value === 'number') return Number.isFinite(value);
  if (value === null || typeof value !== 'object') return true;
  if (depth > 64) return false;
  return Object.values(value).every((v) => finiteJson(v, depth + 1));
}
