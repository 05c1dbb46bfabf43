// What a walk and a layout reader learnt about a dataset folder, kept in the cache for the next run
// (folders/<key>.memo): the names of each subfolder (dir-names.ts) and the layout's entries for the
// exact list of paths walked. One file per dataset folder, written atomically, led by a checksum of
// its body: a damaged, truncated or foreign memo is discarded (the folder is read again), never
// trusted. Everything in it is checked again before use (stats, the paths' digest), so a memo
// written by another process, or an older one, can only cost a re-read.
import { createHash } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { CacheLayout } from '../../cache/layout.js';
import { readRegularFileSync, writeOwnedFileAtomic } from '../../cache/safe-fs.js';
import { sameDirNames, type DirNames, type DirRecord } from './dir-names.js';
import type { LayoutName } from './layouts.js';

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
  draft?: DraftMemo;
}

const MAGIC = 'lorabuild-folder-memo 1';
const LAYOUTS: readonly string[] = ['lab', 'kohya', 'imagefolder'];

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function folderMemoPath(cacheDir: string, rootAbs: string): string {
  return new CacheLayout(cacheDir).folderMemo(sha256(rootAbs).slice(0, 32));
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
  if (sameDirNames(before.dirs, next.dirs) && before.draft?.key === next.draft?.key) return;
  writeOwnedFileAtomic(cacheDir, file, formatFolderMemo(rootAbs, next));
  const sig = signatureOf(file);
  if (sig) kept.set(file, { sig, memo: next, root: rootAbs });
}

export function formatFolderMemo(rootAbs: string, memo: FolderMemo): string {
  const dirs = [...memo.dirs].map(([rel, r]) => [rel, r.dev, r.ino, r.mtimeMs, r.ctimeMs, r.names]);
  const draft = memo.draft ? [memo.draft.key, memo.draft.layout, memo.draft.entries, memo.draft.stray] : null;
  const body = JSON.stringify({ root: rootAbs, dirs, draft });
  return `${MAGIC} ${sha256(body)}\n${body}`;
}

const isIndex = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= -1;
const isName = (v: unknown): v is string => typeof v === 'string' && v !== '' && !v.startsWith('.') && !v.includes('/') && !v.includes('\0');

/** the memo in `text` if it is whole, ours and about `rootAbs`; undefined otherwise */
export function parseFolderMemo(text: string, rootAbs: string): FolderMemo | undefined {
  const eol = text.indexOf('\n');
  if (eol < 0 || text.slice(0, eol) !== `${MAGIC} ${sha256(text.slice(eol + 1))}`) return undefined;
  let parsed: { root?: unknown; dirs?: unknown; draft?: unknown };
  try {
    parsed = JSON.parse(text.slice(eol + 1)) as typeof parsed;
  } catch {
    return undefined;
  }
  if (parsed.root !== rootAbs || !Array.isArray(parsed.dirs)) return undefined;
  const dirs: DirNames = new Map();
  for (const d of parsed.dirs as unknown[]) {
    if (!Array.isArray(d) || d.length !== 6) return undefined;
    const [rel, dev, ino, mtimeMs, ctimeMs, names] = d as [unknown, unknown, unknown, unknown, unknown, unknown];
    if (typeof rel !== 'string' || ![dev, ino, mtimeMs, ctimeMs].every((n) => typeof n === 'number' && Number.isFinite(n))) return undefined;
    if (!Array.isArray(names) || !names.every(isName)) return undefined;
    dirs.set(rel, { dev, ino, mtimeMs, ctimeMs, names } as DirRecord);
  }
  const memo: FolderMemo = { dirs };
  if (parsed.draft !== null) {
    const d = parsed.draft;
    if (!Array.isArray(d) || d.length !== 4) return undefined;
    const [key, layout, entries, stray] = d as [unknown, unknown, unknown, unknown];
    if (typeof key !== 'string' || typeof layout !== 'string' || !LAYOUTS.includes(layout)) return undefined;
    if (!Array.isArray(entries) || !Array.isArray(stray) || !stray.every((i) => isIndex(i) && i >= 0)) return undefined;
    for (const e of entries as unknown[]) {
      if (!Array.isArray(e) || e.length !== 3 || typeof e[0] !== 'string' || !isIndex(e[1]) || !isIndex(e[2])) return undefined;
    }
    memo.draft = { key, layout: layout as LayoutName, entries: entries as DraftMemo['entries'], stray: stray as number[] };
  }
  return memo;
}

/** the folder a memo file is about, or why it is not a memo this code wrote whole (cache verify and gc) */
export function inspectFolderMemo(text: string): { root: string } | { problem: string } {
  const eol = text.indexOf('\n');
  if (eol < 0 || text.slice(0, eol) !== `${MAGIC} ${sha256(text.slice(eol + 1))}`) return { problem: 'its checksum does not match its contents' };
  let root: unknown;
  try {
    root = (JSON.parse(text.slice(eol + 1)) as { root?: unknown }).root;
  } catch {
    return { problem: 'it is not valid JSON' };
  }
  if (typeof root !== 'string' || parseFolderMemo(text, root) === undefined) return { problem: 'it is malformed' };
  return { root };
}
