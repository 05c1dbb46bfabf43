// Why a stage is stale, in words a person can act on: "datasets/x/text/3.txt changed",
// "learning_rate 0.0001 -> 0.0002", "upstream prepare:ds changed", "never built".
import { canonicalJson } from './canonical.js';
import { fileCount, longFilesDigest, sortedPairs } from './file-tree.js';
import type { Json, LockEntry } from './types.js';

const MAX_LISTED = 5;

export interface CurrentInputs {
  implVersion: number;
  params: Record<string, Json>;
  files: Record<string, string>;
  /** upstream stage id -> its fingerprint now */
  upstream: Record<string, string>;
}

export function staleReasons(previous: LockEntry | undefined, current: CurrentInputs): string[] {
  if (!previous) return ['never built'];
  const reasons: string[] = [];
  if (previous.implVersion !== undefined && previous.implVersion !== current.implVersion) {
    reasons.push(`stage implementation version ${previous.implVersion} -> ${current.implVersion}`);
  }
  reasons.push(...paramChanges(previous.params ?? {}, current.params));
  // (counted, not listed: a long map is built only when its keys are read, file-tree.ts arrayFileMap)
  const unread = previous.filesTree && fileCount(previous.files ?? {}) === 0 ? previous.filesTree : undefined;
  if (unread) {
    // the lock holds only the digest of a long file list, and this cache lacks its tree
    if (longFilesDigest(current.files) !== unread.digest) reasons.push(`input files changed (${unread.count} -> ${fileCount(current.files)} files; this cache does not hold the previous list to say which)`);
  } else reasons.push(...fileChanges(previous.files ?? {}, current.files));
  for (const id of Object.keys({ ...previous.upstream, ...current.upstream }).sort()) {
    const before = previous.upstream?.[id];
    const now = current.upstream[id];
    if (before === undefined) reasons.push(`now depends on ${id}`);
    else if (now === undefined) reasons.push(`no longer depends on ${id}`);
    else if (before !== now) reasons.push(`upstream ${id} changed`);
  }
  return reasons;
}

function paramChanges(before: Record<string, Json>, now: Record<string, Json>): string[] {
  const out: string[] = [];
  for (const key of Object.keys({ ...before, ...now }).sort()) {
    const a = before[key];
    const b = now[key];
    if (canonicalJson(a) === canonicalJson(b)) continue;
    if (a === undefined) out.push(`${key} added (${show(b)})`);
    else if (b === undefined) out.push(`${key} removed (was ${show(a)})`);
    else out.push(`${key} ${show(a)} -> ${show(b)}`);
  }
  return out;
}

function show(v: Json | undefined): string {
  const text = typeof v === 'string' ? v : canonicalJson(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** one walk over both maps' sorted paths (a 10,000-key object is slow to look keys up in) */
function fileChanges(before: Record<string, string>, now: Record<string, string>): string[] {
  const changed: string[] = [];
  const added: string[] = [];
  const removed: string[] = [];
  const a = sortedPairs(before);
  const b = sortedPairs(now);
  let i = 0;
  let j = 0;
  while (i < a.paths.length || j < b.paths.length) {
    const p = a.paths[i];
    const q = b.paths[j];
    if (j >= b.paths.length || (i < a.paths.length && p < q)) {
      removed.push(p);
      i++;
    } else if (i >= a.paths.length || q < p) {
      added.push(q);
      j++;
    } else {
      if (a.shas[i] !== b.shas[j]) changed.push(q);
      i++;
      j++;
    }
  }
  return [...listed(changed, 'changed'), ...listed(added, 'added'), ...listed(removed, 'removed')];
}

function listed(paths: string[], verb: string): string[] {
  const shown = paths.slice(0, MAX_LISTED).map((p) => `${p} ${verb}`);
  if (paths.length > MAX_LISTED) shown.push(`${paths.length - MAX_LISTED} more files ${verb}`);
  return shown;
}

/** One line for the user: the first reasons, then a count. */
export function summarize(reasons: string[], max = 3): string {
  if (reasons.length <= max) return reasons.join('; ');
  return `${reasons.slice(0, max).join('; ')}; and ${reasons.length - max} more`;
}
