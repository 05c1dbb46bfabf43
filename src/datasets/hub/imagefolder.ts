// An imagefolder repo as listing entries: images of the split, captions from metadata.jsonl / .csv
// (file_name + the caption column), exactly like a local imagefolder but inside the HF snapshot.
import { posix } from 'node:path';
import type { ListingEntry } from '../manifest.js';
import type { CachedFile } from './download.js';
import { HubError } from './errors.js';
import { DatasetError } from '../local/errors.js';
import { readMetadata, type MetadataRow } from '../local/metadata.js';

function metadataError(file: CachedFile, line: number, message: string, hint: string): HubError {
  return new HubError('bad-metadata', `${file.path}:${line}: ${message}`, { file: file.path, line, hint });
}

/** The local imagefolder reader (same rules and messages), its errors as hub errors. */
async function readRows(file: CachedFile, column: string): Promise<MetadataRow[]> {
  try {
    return await readMetadata(file.abs, file.path, column);
  } catch (err) {
    if (!(err instanceof DatasetError)) throw err;
    const d = err.diagnostic;
    throw new HubError(d.code === 'caption-column' ? 'unknown-column' : 'bad-metadata', `${d.file}${d.line ? `:${d.line}` : ''}: ${d.message}`, { file: d.file, line: d.line, hint: d.hint });
  }
}

/** Entries for the split's images, captions from the metadata files that cover them. */
export async function imagefolderEntries(
  images: CachedFile[],
  metadata: CachedFile[],
  captionColumn: string | undefined,
  /** every path in the repo: a row naming an image of another split is not this split's concern */
  repoPaths: ReadonlySet<string>,
): Promise<ListingEntry[]> {
  const entries = new Map<string, ListingEntry>();
  for (const image of images) {
    entries.set(image.path, { id: image.path, image: { path: image.path, sha256: image.sha256, size: image.size } });
  }
  const column = captionColumn ?? 'text';
  for (const file of metadata) {
    const rows = await readRows(file, column);
    const base = posix.dirname(file.path);
    for (const row of rows) {
      const name = row.fileName;
      const path = posix.normalize(base === '.' ? name : `${base}/${name}`);
      if (path.startsWith('../') || path === '..' || posix.isAbsolute(name) || name.includes('\\')) {
        throw metadataError(file, row.line, `file_name ${JSON.stringify(name)} points outside the dataset`, 'file_name is relative to the metadata file, without ".."');
      }
      const text = row.caption;
      const entry = entries.get(path);
      const captionText = typeof text === 'string' ? { text, path: file.path, line: row.line, column } : undefined;
      if (entry) {
        if (captionText) entry.captionText = captionText;
      } else if (captionText && !repoPaths.has(path)) {
        // a caption whose image the repo lacks: prepare/validate report it as missing_image
        entries.set(path, { id: path, captionText });
      }
    }
  }
  return [...entries.values()].sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
}
