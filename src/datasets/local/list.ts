// A local dataset folder as a Listing: walk it, read it in its layout, hash every file through the
// stat memo (so an unchanged folder costs stats, not reads).
import type { ListedFile, Listing, ListingEntry } from '../manifest.js';
import { displayFolder, displayPath } from './folder.js';
import { detectLayout, readImagefolderLayout, readKohyaLayout, readLabLayout, type LayoutName } from './layouts.js';
import { walkDatasetFolder, type FolderFile } from './walk.js';

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
}

export interface LocalListing {
  listing: Listing;
  /** every file of the folder (entries, metadata and stray): display path -> sha256 */
  files: Record<string, string>;
}

const HASH_CONCURRENCY = 8;

async function hashAll(files: FolderFile[], source: LocalDatasetSource): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  // unchanged files first, synchronously: a thousand awaits cost more than the lookups themselves
  const unknown: FolderFile[] = [];
  for (const file of files) {
    const known = source.knownHash?.(file.abs, file);
    if (known === undefined) unknown.push(file);
    else result.set(file.rel, known);
  }
  let next = 0;
  const worker = async () => {
    while (next < unknown.length) {
      const file = unknown[next++];
      result.set(file.rel, await source.hashFile(file.abs, { size: file.size, mtimeMs: file.mtimeMs, ino: file.ino }));
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_CONCURRENCY, unknown.length) }, worker));
  return result;
}

export async function listLocalDataset(source: LocalDatasetSource): Promise<LocalListing> {
  const display = displayFolder(source.folder);
  const walked = await (source.walk ?? walkDatasetFolder)(source.abs, display);
  const layout = source.layout === 'auto' ? detectLayout(walked, display) : source.layout;
  const draft =
    layout === 'lab' ? readLabLayout(walked, display)
    : layout === 'kohya' ? readKohyaLayout(walked, display)
    : await readImagefolderLayout(walked, display, source.captionColumn);

  const hashes = await hashAll(walked, source);
  const byRel = new Map(walked.map((f) => [f.rel, f]));
  const listed = (rel: string): ListedFile => {
    const file = byRel.get(rel)!;
    return { path: displayPath(display, rel), abs: file.abs, sha256: hashes.get(rel)!, size: file.size };
  };

  const entries: ListingEntry[] = draft.entries.map((d) => {
    const entry: ListingEntry = { id: d.id };
    if (d.image) entry.image = listed(d.image);
    if (d.captionFile) entry.captionFile = listed(d.captionFile);
    if (d.captionText) entry.captionText = { text: d.captionText.text, path: displayPath(display, d.captionText.metadata), line: d.captionText.line, column: d.captionText.column };
    return entry;
  });
  const files: Record<string, string> = {};
  for (const f of walked) files[displayPath(display, f.rel)] = hashes.get(f.rel)!;
  return {
    listing: { source: 'folder', layout: draft.layout, root: display, entries, stray: draft.stray.map((rel) => displayPath(display, rel)) },
    files,
  };
}
