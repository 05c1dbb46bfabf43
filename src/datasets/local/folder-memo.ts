// What a walk and a layout reader learnt about a dataset folder, kept in the cache for the next run:
// the names of each subfolder (dir-names.ts) in folders/<key>.memo, and the layout's entries for
// the exact list of paths walked in folders/<key>.draft (apart: a no-op run over an unchanged big
// folder reads only the names). Each file is written atomically and led by a checksum of its body:
// a damaged, truncated or foreign one is discarded (the folder is read again), never trusted.
// Everything in them is checked again before use (stats, the paths' digest), so a memo written by
// another process, or an older one, can only cost a re-read.
import { createHash } from 'node:crypto';
import { folderKey, framed, unframed } from './folder-cache-file.js';
import { lstatSync } from 'node:fs';
import { CacheLayout } from '../../cache/layout.js';
import { readRegularFileSync, writeOwnedFileAtomic } from '../../cache/safe-fs.js';
import { sameDirNames, type DirNames, type DirRecord } from './dir-names.js';
import type { LayoutName } from './layouts.js';
import { isSnapshotText, parseSnapshot } from './listing-snapshot.js';
import { parseStatHint, STAT_HINT_MAGIC } from './stat-hint.js';

/** entries of a layout as indices into the walked files (-1: none), for one list of paths */
export interface DraftMemo {
  /** pathsDigest() of the walk and the layout asked for */
  key: string;
  layout: LayoutName;
  entries: [id: string, image: number, caption: number][];
  stray: number[];
}

export interface FolderMemo {
  dirs: DirNames;
}

const MAGIC = 'lorabuild-folder-memo 2';
const DRAFT_MAGIC = 'lorabuild-folder-draft 1';
const LAYOUTS: readonly string[] = ['lab', 'kohya', 'imagefolder'];

export function folderMemoPath(cacheDir: string, rootAbs: string): string {
  return new CacheLayout(cacheDir).folderMemo(folderKey(rootAbs));
}

export function draftMemoPath(cacheDir: string, rootAbs: string): string {
  return new CacheLayout(cacheDir).folderDraft(folderKey(rootAbs));
}

/** the key of a draft: the layout asked for and every walked path, in order */
export function pathsDigest(layout: string, rels: readonly string[]): string {
  const hash = createHash('sha256').update(layout).update('\n');
  // one update per 4,096 paths: an update per path costs more than the hashing
  for (let i = 0; i < rels.length; i += 4096) hash.update(rels.slice(i, i + 4096).join('\n') + '\n');
  return hash.digest('hex');
}

type Signature = { ino: number; size: number; mtimeMs: number; ctimeMs: number };
/** memos parsed or written by this process, by file, with the file's stat then (watch lists every build) */
const kept = new Map<string, { sig: Signature; memo: FolderMemo; root: string }>();

function signatureOf(file: string): Signature | undefined {
  const st = lstatSync(file, { throwIfNoEntry: false });
  return st?.isFile() ? { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs } : undefined;
}

function sameSignature(a: Signature | undefined, b: Signature | undefined): boolean {
  return !!a && !!b && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/** the memo of the folder `rootAbs`, or an empty one (none yet, damaged, another folder's) */
export function loadFolderMemo(file: string, rootAbs: string): FolderMemo {
  const sig = signatureOf(file);
  const cached = kept.get(file);
  if (cached && cached.root === rootAbs && sameSignature(cached.sig, sig)) return cached.memo;
  let memo: FolderMemo;
  try {
    memo = parseFolderMemo(readRegularFileSync(file, 'utf8'), rootAbs) ?? { dirs: new Map() };
  } catch {
    memo = { dirs: new Map() };
  }
  if (sig) kept.set(file, { sig, memo, root: rootAbs });
  return memo;
}

/** writes `next` unless it says nothing `before` did not */
export function saveFolderMemo(cacheDir: string, file: string, rootAbs: string, before: FolderMemo, next: FolderMemo): void {
  if (sameDirNames(before.dirs, next.dirs)) return;
  writeOwnedFileAtomic(cacheDir, file, formatFolderMemo(rootAbs, next));
  const sig = signatureOf(file);
  if (sig) kept.set(file, { sig, memo: next, root: rootAbs });
}

/**
 * drafts parsed or written by this process, by file, with the file's stat then: `lorabuild watch`
 * lists every save, and reading and checksumming a 10,000-entry draft cost more than the stat
 */
const keptDrafts = new Map<string, { sig: Signature; draft: DraftMemo; root: string }>();

/** the draft of the folder `rootAbs`, if there is a whole one */
export function loadDraftMemo(file: string, rootAbs: string): DraftMemo | undefined {
  const sig = signatureOf(file);
  const cached = keptDrafts.get(file);
  if (cached && cached.root === rootAbs && sameSignature(cached.sig, sig)) return cached.draft;
  keptDrafts.delete(file);
  let draft: DraftMemo | undefined;
  try {
    draft = parseDraftMemo(readRegularFileSync(file, 'utf8'), rootAbs);
  } catch {
    return undefined;
  }
  if (draft && sig) keptDrafts.set(file, { sig, draft, root: rootAbs });
  return draft;
}

/** `draft` must not change afterwards (it is kept as the file's parse) */
export function saveDraftMemo(cacheDir: string, file: string, rootAbs: string, draft: DraftMemo): void {
  keptDrafts.delete(file);
  writeOwnedFileAtomic(cacheDir, file, formatDraftMemo(rootAbs, draft));
  const sig = signatureOf(file);
  if (sig) keptDrafts.set(file, { sig, draft, root: rootAbs });
}

// A folder's names are kept joined by '\n' (one JSON string per folder parses many times faster
// than 100,000 small ones); a name never holds a '\n': the walk refuses control characters.
export function formatFolderMemo(rootAbs: string, memo: FolderMemo): string {
  const dirs = [...memo.dirs].map(([rel, r]) => [rel, r.dev, r.ino, r.mtimeMs, r.ctimeMs, r.names.join('\n')]);
  return framed(MAGIC, { root: rootAbs, dirs });
}

export function formatDraftMemo(rootAbs: string, draft: DraftMemo): string {
  return framed(DRAFT_MAGIC, { root: rootAbs, key: draft.key, layout: draft.layout, entries: draft.entries, stray: draft.stray });
}

const isIndex = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= -1;
/** joined names hold a name that is not one: empty, hidden, or with '/' or NUL in it */
const BAD_NAMES = /(?:^|\n)(?:\.|\n|$)|[/\0]/;

/** the memo in `text` if it is whole, ours and about `rootAbs`; undefined otherwise */
export function parseFolderMemo(text: string, rootAbs: string): FolderMemo | undefined {
  const seen = unframed(text, MAGIC);
  if ('problem' in seen || seen.body.root !== rootAbs || !Array.isArray(seen.body.dirs)) return undefined;
  const parsed = seen.body;
  const dirs: DirNames = new Map();
  for (const d of parsed.dirs as unknown[]) {
    if (!Array.isArray(d) || d.length !== 6) return undefined;
    const [rel, dev, ino, mtimeMs, ctimeMs, joined] = d as [unknown, unknown, unknown, unknown, unknown, unknown];
    if (typeof rel !== 'string' || ![dev, ino, mtimeMs, ctimeMs].every((n) => typeof n === 'number' && Number.isFinite(n))) return undefined;
    if (typeof joined !== 'string' || (joined !== '' && BAD_NAMES.test(joined))) return undefined;
    dirs.set(rel, { dev, ino, mtimeMs, ctimeMs, names: joined === '' ? [] : joined.split('\n') } as DirRecord);
  }
  return { dirs };
}

/** the draft in `text` if it is whole, ours and about `rootAbs`; undefined otherwise */
export function parseDraftMemo(text: string, rootAbs: string): DraftMemo | undefined {
  const seen = unframed(text, DRAFT_MAGIC);
  if ('problem' in seen || seen.body.root !== rootAbs) return undefined;
  const { key, layout, entries, stray } = seen.body;
  if (typeof key !== 'string' || typeof layout !== 'string' || !LAYOUTS.includes(layout)) return undefined;
  if (!Array.isArray(entries) || !Array.isArray(stray) || !stray.every((i) => isIndex(i) && i >= 0)) return undefined;
  for (const e of entries as unknown[]) {
    if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || !isIndex(e[1]) || !isIndex(e[2])) return undefined;
  }
  return { key, layout: layout as LayoutName, entries: entries as DraftMemo['entries'], stray: stray as number[] };
}

/** the folder a file of folders/ is about, or why it is not one this code wrote whole (cache verify and gc) */
export function inspectFolderMemo(text: string): { root: string } | { problem: string } {
  if (text.startsWith(`${STAT_HINT_MAGIC} `)) {
    const seen = parseStatHint(text);
    if ('problem' in seen) return seen;
    // about the folders it names: gone once the first of them is
    const first = seen.folders[0]?.prefix;
    return first ? { root: first.length > 1 ? first.replace(/[\\/]$/, '') : first } : { problem: 'it is malformed' };
  }
  if (isSnapshotText(text)) {
    const seen = parseSnapshot(text);
    return 'problem' in seen ? seen : { root: seen.root };
  }
  if (text.startsWith('lorabuild-folder-memo 1 ')) return { problem: 'an older format' };
  const magic = text.startsWith(`${DRAFT_MAGIC} `) ? DRAFT_MAGIC : MAGIC;
  const seen = unframed(text, magic);
  if ('problem' in seen) return seen;
  const root = seen.body.root;
  if (typeof root !== 'string') return { problem: 'it is malformed' };
  const whole = magic === DRAFT_MAGIC ? parseDraftMemo(text, root) : parseFolderMemo(text, root);
  if (whole === undefined) return { problem: 'it is malformed' };
  return { root };
}
