// A memo of the last valid parse of each lorafile, so that a no-op `lorabuild run` does not pay
// for loading the YAML parser and zod (together most of its start-up time). The memo is keyed by
// the lorafile text and by the code of the config loader itself, so editing either re-parses.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './schema.js';
import { readRegularFileSync } from '../cache/safe-fs.js';
import { CODE_DIR } from '../package-root.js';

const DEFAULT_LORAFILE = 'lorafile.yaml';
const MEMO_FORMAT = 1;

let loaderIdentity: string | undefined;

/**
 * sha256 over the config folder's modules (dist/config, or src/config under vitest): any change to
 * schema or checks invalidates the memo. The bundle (dist/lorabuild.cjs) is built from dist/ and
 * runs only while it is not older than dist/cli/main.js, so it hashes the dist/config it holds.
 */
function loaderId(): string {
  if (loaderIdentity) return loaderIdentity;
  const dir = path.join(CODE_DIR, 'config');
  const hash = createHash('sha256').update(`memo-format ${MEMO_FORMAT}\n`);
  for (const name of readdirSync(dir).filter((n) => /\.(js|ts)$/.test(n) && !n.endsWith('.d.ts')).sort()) {
    hash.update(`${name}\n`).update(readFileSync(path.join(dir, name)));
  }
  loaderIdentity = hash.digest('hex');
  return loaderIdentity;
}

interface MemoFile {
  key: string;
  spec: Omit<Config, 'file' | 'root' | 'source'>;
}

function memoPath(memoDir: string, abs: string): string {
  return path.join(memoDir, `${createHash('sha256').update(abs).digest('hex').slice(0, 32)}.json`);
}

/**
 * loadConfig with a memo in `memoDir` (e.g. <cache>/config): the same Config, the same
 * ConfigErrors (invalid lorafiles are never memoised), but an unchanged lorafile skips parsing.
 */
export async function loadConfigCached(file: string = DEFAULT_LORAFILE, memoDir: string): Promise<Config> {
  const abs = path.resolve(file);
  let source: string | undefined;
  try {
    const st = await stat(abs);
    if (st.isFile() && st.size <= 1024 * 1024) source = readRegularFileSync(abs, 'utf8').replace(/^\uFEFF/, '');
  } catch {
    // unreadable: loadConfig below reports it properly
  }
  if (source === undefined) return (await import('./load.js')).loadConfig(file);

  const key = createHash('sha256').update(loaderId()).update('\0').update(source).digest('hex');
  const memo = memoPath(memoDir, abs);
  try {
    const saved = JSON.parse(readRegularFileSync(memo, 'utf8')) as MemoFile;
    if (saved.key === key) return { ...saved.spec, file: abs, root: path.dirname(abs), source };
  } catch {
    // no memo yet, or a damaged one: parse
  }

  const { parseConfig } = await import('./load.js');
  const config = parseConfig(source, file);
  const { file: _f, root: _r, source: _s, ...spec } = config;
  try {
    await mkdir(memoDir, { recursive: true });
    const tmp = `${memo}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ key, spec } satisfies MemoFile));
    await rename(tmp, memo);
  } catch {
    // a read-only cache only costs speed
  }
  return config;
}
