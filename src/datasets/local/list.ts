// A local dataset folder as a Listing: walk it, read it in its layout, hash every file through the
// stat memo (so an unchanged folder costs stats, not reads). With a cache, the folder memo
// (folder-memo.ts) spares the readdir of unchanged subfolders and the layout reading of an
// unchanged list of paths; the result is the same as without it.
import type { ListedFile, Listing, ListingEntry } from '../manifest.js';
import type { Draft } from './draft.js';
import { displayFolder, displayPath } from './folder.js';
import { draftMemoPath, folderMemoPath, loadDraftMemo, loadFolderMemo, pathsDigest, saveDraftMemo, saveFolderMemo, type DraftMemo, type FolderMemo } from './folder-memo.js';
import { detectLayout, readImagefolderLayout, readKohyaLayout, readLabLayout, type LayoutName } from './layouts.js';
import { walkDatasetFolderSync, type FolderFile, type FolderWalk } from './walk.js';
import { loadSnapshot, saveSnapshot, settled, snapshotKey, snapshotPath, type ListingSnapshot } from './listing-snapshot.js';
import { arrayFileMap, FILES_INLINE_MAX, filesDigest, lazyFileMap } from '../../engine/file-tree.js';
import { sha256FileSync } from '../../engine/file-hash.js';
import { racy } from '../../engine/racy.js';
import { rememberBigFolders, type BigFolder } from './parallel-lstat.js';

export interface LocalDatasetSource {
  /** absolute folder */
  abs: string;
  /** the folder as written in the lorafile */
  folder: string;
  layout: 'auto' | LayoutName;
  /** imagefolder caption column */
  captionColumn: string;
  hashFile(absPath: string, stat?: { size: number; mtimeMs: number; ino: number }): Promise<string>;
  /** the stat memo's hash of an unchanged file, without reading or awaiting anything */
  knownHash?(absPath: string, stat: { size: number; mtimeMs: number; ino: number }): string | undefined;
  /** lists the folder (default: walkDatasetFolder); `lorabuild watch` passes its walk cache */
  walk?(rootAbs: string, display: string): Promise<FolderFile[]>;
  /** the cache root: the folder memo is kept there (none: every run reads everything) */
  cacheDir?: string;
}

export interface LocalListing {
  /** the layout it was read in (listing.layout, known without building the listing) */
  layout: LayoutName;
  listing: Listing;
  /** every file of the folder (entries, metadata and stray): display path -> sha256 */
  files: Record<string, string>;
}

const HASH_CONCURRENCY = 8;

function quietlyRemember(cacheDir: string, folders: readonly BigFolder[]): void {
  try {
    rememberBigFolders(cacheDir, folders);
  } catch {
    // only a hint: a read-only cache costs the next run its head start
  }
}

/**
 * hashes in the order of `files`. `last`: the last assembly of a walk of its own (the watch's walk
 * cache, whose file objects are replaced, never changed, when a notice re-stats them). With a stat
 * memo (knownHash), a file at the same place with the same object has the hash it had, by the stat
 * memo's own rule: unless it was racy when it was hashed (no lookup, ~0.5 us each: 200,000 files
 * at 100k items). Without one, every file is read every time, and so it still is.
 */
async function hashAll(files: FolderFile[], source: LocalDatasetSource, last?: Pick<Assembly, 'walked' | 'hashes' | 'hashedAt'>): Promise<string[]> {
  const result: string[] = new Array(files.length);
  const before = last !== undefined && source.knownHash !== undefined && last.walked.length === files.length ? last : undefined;
  // unchanged files first, synchronously: a thousand awaits cost more than the lookups themselves
  const unknown: number[] = [];
  for (let i = 0; i < files.length; i++) {
    if (before !== undefined && before.walked[i] === files[i] && !racy(files[i].mtimeMs, before.hashedAt)) {
      result[i] = before.hashes[i];
      continue;
    }
    const known = source.knownHash?.(files[i].abs, files[i]);
    if (known === undefined) unknown.push(i);
    else result[i] = known;
  }
  let next = 0;
  const worker = async () => {
    while (next < unknown.length) {
      const i = unknown[next++];
      const file = files[i];
      result[i] = await source.hashFile(file.abs, { size: file.size, mtimeMs: file.mtimeMs, ino: file.ino });
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_CONCURRENCY, unknown.length) }, worker));
  return result;
}

/** a layout's draft with its paths as indices into the walked files */
interface IndexedDraft {
  layout: LayoutName;
  entries: DraftMemo['entries'];
  stray: number[];
  /** imagefolder captions, by entry index */
  captionTexts?: Map<number, NonNullable<Draft['entries'][number]['captionText']>>;
}

function indexed(draft: Draft, walked: FolderFile[]): IndexedDraft {
  const index = new Map<string, number>();
  for (let i = 0; i < walked.length; i++) index.set(walked[i].rel, i);
  const at = (rel: string | undefined) => (rel === undefined ? -1 : index.get(rel)!);
  const captionTexts = new Map<number, NonNullable<Draft['entries'][number]['captionText']>>();
  const entries = draft.entries.map((e, i): DraftMemo['entries'][number] => {
    if (e.captionText) captionTexts.set(i, e.captionText);
    return [e.id, at(e.image), at(e.captionFile)];
  });
  return { layout: draft.layout, entries, stray: draft.stray.map(at), ...(captionTexts.size ? { captionTexts } : {}) };
}

async function readDraft(walked: FolderFile[], display: string, source: LocalDatasetSource): Promise<IndexedDraft> {
  const layout = source.layout === 'auto' ? detectLayout(walked, display) : source.layout;
  if (layout !== 'imagefolder') return readDraftSync(walked, display, layout);
  return indexed(await readImagefolderLayout(walked, display, source.captionColumn), walked);
}

function readDraftSync(walked: FolderFile[], display: string, layout: 'lab' | 'kohya'): IndexedDraft {
  return indexed(layout === 'lab' ? readLabLayout(walked, display) : readKohyaLayout(walked, display), walked);
}

/** the draft memo's entries if they were made for these very paths (and point at files that exist) */
function memoDraft(draftFile: string, source: LocalDatasetSource, key: string, count: number): IndexedDraft | undefined {
  const d = loadDraftMemo(draftFile, source.abs);
  if (d?.key !== key) return undefined;
  // (a draft kept in memory is checked once per count: the watch lists every save)
  if (fitted.get(d) !== count) {
    const fits = (i: number) => i < count;
    if (!d.stray.every(fits) || !d.entries.every((e) => fits(e[1]) && fits(e[2]))) return undefined;
    fitted.set(d, count);
  }
  return { layout: d.layout, entries: d.entries, stray: d.stray };
}

/** the last paths digest (the watch walks the same paths save after save) */
let lastPathsKey: { layout: string; walked: FolderFile[]; key: string } | undefined;

/** pathsDigest of the walked paths, kept while the paths are the same (the same file objects: the same paths) */
function pathsKey(layout: string, walked: FolderFile[]): string {
  const last = lastPathsKey;
  if (last && last.layout === layout && last.walked.length === walked.length && walked.every((f, i) => f === last.walked[i] || f.rel === last.walked[i].rel)) {
    lastPathsKey = { layout, walked, key: last.key };
    return last.key;
  }
  const key = pathsDigest(layout, walked.map((f) => f.rel));
  lastPathsKey = { layout, walked, key };
  return key;
}

/** drafts found to point only at files below this count */
const fitted = new WeakMap<DraftMemo, number>();

/**
 * The listing objects of the last listing that are still true (walked file object -> its listed
 * file; listed file -> its entry): `lorabuild watch` walks the same file objects save after save,
 * and unchanged entries that are the very same objects spare every later stage its per-item work.
 */
const keptFiles = new WeakMap<FolderFile, { display: string; file: ListedFile }>();
const keptEntries = new WeakMap<ListedFile, ListingEntry>();

function keptEntry(entry: ListingEntry): ListingEntry {
  const by = entry.image ?? entry.captionFile;
  if (!by) return entry;
  const kept = keptEntries.get(by);
  if (kept && kept.id === entry.id && kept.image === entry.image && kept.captionFile === entry.captionFile && !kept.captionText) return kept;
  keptEntries.set(by, entry);
  return entry;
}

export async function listLocalDataset(source: LocalDatasetSource): Promise<LocalListing> {
  const display = displayFolder(source.folder);
  const memoFile = source.cacheDir === undefined ? undefined : folderMemoPath(source.cacheDir, source.abs);
  const before: FolderMemo = memoFile ? loadFolderMemo(memoFile, source.abs) : { dirs: new Map() };
  let walkStartedAt = Date.now();
  let walk: FolderWalk | undefined;
  let walkedByWatch: FolderFile[] | undefined;
  let dirs = before.dirs;
  if (source.walk) {
    walkedByWatch = await source.walk(source.abs, display);
  } else {
    walk = walkDatasetFolderSync(source.abs, display, before.dirs);
    dirs = walk.dirs;
    // stats a prestarted job took before the walk (parallel-lstat.ts) are as old as that job
    walkStartedAt = Math.min(walkStartedAt, walk.statsFrom ?? Infinity);
    if (source.cacheDir !== undefined) quietlyRemember(source.cacheDir, walk.bigFolders);
  }
  const draftFile = source.cacheDir === undefined ? undefined : draftMemoPath(source.cacheDir, source.abs);
  const quietly = (save: () => void) => {
    try {
      save();
    } catch {
      // only a cache: a read-only cache folder costs the next run a re-read, not this run its result
    }
  };
  if (memoFile) quietly(() => saveFolderMemo(source.cacheDir!, memoFile, source.abs, before, { dirs }));

  // a big folder whose files all have the stats of its last listing (lorabuild watch has its own
  // memo of the walk, and an imagefolder's entries depend on its metadata content)
  const snapFile = walk && source.cacheDir !== undefined && source.layout !== 'imagefolder' && walk.table.rels.length > FILES_INLINE_MAX ? snapshotPath(source.cacheDir, source.abs) : undefined;
  const snapKey = snapFile ? snapshotKey(display, source.layout, walk!.table) : undefined;
  if (snapFile) {
    const snap = loadSnapshot(snapFile, source.abs);
    if (snap && snap.key === snapKey && snap.count === walk!.table.rels.length) return fromSnapshot(snap, walk!, display, source, draftFile!);
  }
  const walked = walkedByWatch ?? walk!.files;

  // an imagefolder's entries depend on its metadata file's content as well: never memoised
  const key = draftFile && source.layout !== 'imagefolder' ? pathsKey(source.layout, walked) : undefined;
  let draft = key ? memoDraft(draftFile!, source, key, walked.length) : undefined;
  if (!draft) {
    draft = await readDraft(walked, display, source);
    if (key && draft.layout !== 'imagefolder') {
      const memo: DraftMemo = { key, layout: draft.layout, entries: draft.entries, stray: draft.stray };
      quietly(() => saveDraftMemo(source.cacheDir!, draftFile!, source.abs, memo));
    }
  }
  // a walk of its own (the watch's walk cache) hands the same file objects back: kept by place
  const keep = source.walk ? `${source.abs}\0${display}` : undefined;
  const hashedAt = Date.now();
  const hashes = await hashAll(walked, source, keep === undefined ? undefined : assemblies.get(keep));
  const result = assemble(walked, display, draft, hashes, keep, hashedAt);
  if (snapFile && draft.layout !== 'imagefolder' && settled(walk!.table, walkStartedAt)) {
    const snap: ListingSnapshot = { key: snapKey!, layout: draft.layout, count: walked.length, digest: filesDigest(result.files) };
    quietly(() => saveSnapshot(source.cacheDir!, snapFile, source.abs, snap));
  }
  return result;
}

/**
 * The last assembly of each folder listed through a walk function (by folder and display path):
 * `lorabuild watch` hands the very same walked file objects, hashes and memoised draft save after
 * save, so a file at the same place with the same object and hash keeps its listed file, and an
 * entry whose files all did keeps its entry, by comparing arrays (a save changes one caption)
 * instead of a WeakMap lookup per file.
 */
interface Assembly {
  walked: FolderFile[];
  hashes: string[];
  /** when the hashing started (epoch ms): a file racy then was not known for sure */
  hashedAt: number;
  shown: string[];
  listed: (ListedFile | undefined)[];
  draftEntries: IndexedDraft['entries'];
  entries: ListingEntry[];
}
const assemblies = new Map<string, Assembly>();
const MAX_ASSEMBLIES = 8;

/** the listing and file map of a walk read in `draft`, with the files' hashes */
function assemble(walked: FolderFile[], display: string, draft: IndexedDraft, hashes: string[], keep?: string, hashedAt = Date.now()): LocalListing {
  const prev = keep === undefined ? undefined : assemblies.get(keep);
  const samePlaces = prev !== undefined && prev.walked.length === walked.length;
  // walked[i] is the file the last assembly had there, with the same hash
  const same = samePlaces ? new Uint8Array(walked.length) : undefined;
  const kept: (ListedFile | undefined)[] = new Array(walked.length);
  const shown: string[] = new Array(walked.length);
  for (let i = 0; i < walked.length; i++) {
    if (same && prev!.walked[i] === walked[i] && prev!.hashes[i] === hashes[i]) {
      same[i] = 1;
      shown[i] = prev!.shown[i];
      kept[i] = prev!.listed[i];
      continue;
    }
    const k = keptFiles.get(walked[i]);
    // the very path string of the last listing: a string made once is hashed once as a key
    if (k?.display === display) {
      shown[i] = k.file.path;
      if (k.file.sha256 === hashes[i]) kept[i] = k.file;
    } else shown[i] = displayPath(display, walked[i].rel);
  }
  const listed = (i: number): ListedFile => {
    if (kept[i]) return kept[i];
    const file = { path: shown[i], abs: walked[i].abs, sha256: hashes[i], size: walked[i].size };
    keptFiles.set(walked[i], { display, file });
    return (kept[i] = file);
  };
  // the same draft (entries by file index) and no imagefolder caption texts: entries can be kept by place
  const sameDraft = same !== undefined && prev!.draftEntries === draft.entries && draft.captionTexts === undefined;
  const entries: ListingEntry[] = new Array(draft.entries.length);
  for (let i = 0; i < draft.entries.length; i++) {
    const [id, image, caption] = draft.entries[i];
    if (sameDraft && (image < 0 || same[image] === 1) && (caption < 0 || same[caption] === 1)) {
      entries[i] = prev!.entries[i];
      continue;
    }
    const entry: ListingEntry = { id };
    if (image >= 0) entry.image = listed(image);
    if (caption >= 0) entry.captionFile = listed(caption);
    const text = draft.captionTexts?.get(i);
    if (text) entry.captionText = { text: text.text, path: displayPath(display, text.metadata), line: text.line, column: text.column };
    entries[i] = text ? entry : keptEntry(entry);
  }
  if (keep !== undefined) {
    assemblies.delete(keep);
    assemblies.set(keep, { walked, hashes, hashedAt, shown, listed: kept, draftEntries: draft.entries, entries });
    if (assemblies.size > MAX_ASSEMBLIES) assemblies.delete(assemblies.keys().next().value!);
  }
  // its paths and hashes as arrays: fingerprints, stale reasons and the lock's tree read those
  const files = arrayFileMap(shown, hashes);
  return {
    layout: draft.layout,
    listing: { source: 'folder', layout: draft.layout, root: display, entries, stray: draft.stray.map((i) => shown[i]) },
    files,
  };
}

/**
 * The listing of a folder unchanged since its snapshot: the file map by digest, and the listing
 * itself built (synchronously, from the stat memo's hashes) only when something reads it, which a
 * fresh fetch never does.
 */
function fromSnapshot(snap: ListingSnapshot, walk: FolderWalk, display: string, source: LocalDatasetSource, draftFile: string): LocalListing {
  let built: LocalListing | undefined;
  const build = (): LocalListing => {
    if (!built) {
      const walked = walk.files;
      const memoised = memoDraft(draftFile, source, pathsDigest(source.layout, walk.table.rels), walked.length);
      const draft = memoised?.layout === snap.layout ? memoised : readDraftSync(walked, display, snap.layout);
      // a hash the stat memo lost (a damaged memo) is read again, with the walk's stat
      const hashes = walked.map((f) => source.knownHash?.(f.abs, f) ?? sha256FileSync(f.abs));
      const made = assemble(walked, display, draft, hashes);
      // the listing and map must be those of the map the fingerprint hashed (the digest covers the count)
      if (filesDigest(made.files) !== snap.digest) throw new Error(`files in ${display} changed while lorabuild was running; run it again`);
      built = made;
    }
    return built;
  };
  return {
    layout: snap.layout,
    files: lazyFileMap(snap.digest, snap.count, () => build().files),
    get listing(): Listing {
      return build().listing;
    },
  };
}
