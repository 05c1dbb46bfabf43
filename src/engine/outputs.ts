// A stage's outputs on disk: the CAS blobs, and the copies under out/ for stages that
// materialize. Checking goes through the stat memo, so unchanged outputs are not re-read.
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { copyFileAtomic } from '../cache/atomic.js';
import type { Cas } from '../cache/cas.js';
import type { StatMemo } from './stat-memo.js';
import type { OutputFile } from './types.js';

/** Output names are relative paths with '/' separators, inside the stage's folder. */
export function checkOutputName(name: string): string | undefined {
  if (name === '' || name.startsWith('/') || /^[A-Za-z]:/.test(name) || name.includes('\\')) return `output name '${name}' must be a relative path with '/' separators`;
  if (name.split('/').some((part) => part === '' || part === '.' || part === '..')) return `output name '${name}' must not contain empty, '.' or '..' parts`;
  return undefined;
}

export interface OutputProblem {
  name: string;
  /** 'out/loras/x/x.safetensors deleted', 'cached blob of manifest.json is missing' */
  message: string;
  /** the CAS copy is bad too: the stage cannot be restored, only rebuilt */
  blobBad: boolean;
}

export async function checkOutputs(
  files: Record<string, OutputFile>,
  materializedDir: string | null,
  displayRoot: string,
  cas: Cas,
  memo: StatMemo,
): Promise<OutputProblem[]> {
  const problems: OutputProblem[] = [];
  for (const [name, blob] of Object.entries(files)) {
    const blobPath = cas.path(blob.sha256);
    let blobOk = false;
    try {
      blobOk = (await memo.hashFile(blobPath, { ownWrite: true })) === blob.sha256;
    } catch {
      blobOk = false;
    }
    if (!blobOk) problems.push({ name, message: `cached blob of ${name} is missing or corrupted`, blobBad: true });
    if (!materializedDir) continue;
    const copy = join(materializedDir, ...name.split('/'));
    const shown = displayPath(displayRoot, copy);
    let sha: string;
    try {
      sha = await memo.hashFile(copy);
    } catch {
      problems.push({ name, message: `${shown} deleted`, blobBad: !blobOk });
      continue;
    }
    if (sha !== blob.sha256) problems.push({ name, message: `${shown} changed after lorabuild wrote it`, blobBad: !blobOk });
  }
  return problems;
}

/** Copies outputs out of the CAS into the materialized folder (each copy atomic). */
export function materialize(
  files: Record<string, OutputFile>,
  previousNames: string[],
  materializedDir: string,
  cas: Cas,
  memo: StatMemo,
): void {
  for (const [name, blob] of Object.entries(files)) {
    const target = join(materializedDir, ...name.split('/'));
    try {
      if (memo.lookup(target, statSync(target)) === blob.sha256) continue;
    } catch {
      // missing: copy it
    }
    copyFileAtomic(cas.path(blob.sha256), target);
    memo.record(target, statSync(target), blob.sha256, true);
  }
  // outputs of the previous build that this one no longer has (only files we wrote ourselves)
  for (const name of previousNames) {
    if (name in files || checkOutputName(name)) continue;
    rmSync(join(materializedDir, ...name.split('/')), { force: true });
  }
}

/** Every file under a staging folder as 'a/b.txt' -> absolute path. */
export function listStaged(dir: string): Map<string, string> {
  const found = new Map<string, string>();
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const abs = join(folder, entry.name);
      if (entry.isDirectory()) walk(abs);
      else if (entry.isFile()) found.set(relative(dir, abs).split(sep).join('/'), abs);
      else throw new Error(`stage output ${relative(dir, abs)} is not a regular file (links are not allowed in outputs)`);
    }
  };
  walk(dir);
  return found;
}

export function displayPath(root: string, abs: string): string {
  const rel = relative(root, abs);
  return (rel.startsWith('..') ? abs : rel).split(sep).join('/');
}
