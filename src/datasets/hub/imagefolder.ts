// An imagefolder repo as listing entries: images of the split, captions from metadata.jsonl / .csv
// (file_name + the caption column), exactly like a local imagefolder but inside the HF snapshot.
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { ListingEntry } from '../manifest.js';
import type { CachedFile } from './download.js';
import { HubError } from './errors.js';
import { parseCsv, CsvSyntaxError } from './csv.js';
import { unknownColumnError } from './columns.js';

const MAX_METADATA_BYTES = 512 * 1024 * 1024;

interface MetadataRow {
  line: number;
  values: Record<string, unknown>;
}

function metadataError(file: CachedFile, line: number, message: string, hint: string): HubError {
  return new HubError('bad-metadata', `${file.path}:${line}: ${message}`, { file: file.path, line, hint });
}

function readJsonl(file: CachedFile, text: string): MetadataRow[] {
  const rows: MetadataRow[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw metadataError(file, index + 1, `not valid JSON (${(err as Error).message})`, 'each line of metadata.jsonl is one JSON object like {"file_name": "0001.png", "text": "..."}');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw metadataError(file, index + 1, 'not a JSON object', 'each line of metadata.jsonl is one JSON object like {"file_name": "0001.png", "text": "..."}');
    }
    rows.push({ line: index + 1, values: value as Record<string, unknown> });
  });
  return rows;
}

function readCsv(file: CachedFile, text: string): MetadataRow[] {
  let records;
  try {
    records = parseCsv(text.replace(/^\uFEFF/, ''));
  } catch (err) {
    if (err instanceof CsvSyntaxError) throw metadataError(file, err.line, err.message, 'close the quote or escape it as ""');
    throw err;
  }
  const [header, ...body] = records;
  if (!header) return [];
  return body.map((record) => {
    if (record.fields.length !== header.fields.length) {
      throw metadataError(file, record.line, `has ${record.fields.length} fields, the header has ${header.fields.length}`, 'quote fields that contain commas');
    }
    return { line: record.line, values: Object.fromEntries(header.fields.map((name, i) => [name, record.fields[i]])) };
  });
}

async function readMetadata(file: CachedFile): Promise<MetadataRow[]> {
  if (file.size > MAX_METADATA_BYTES) throw metadataError(file, 1, `is ${file.size} bytes, more than lorabuild reads (${MAX_METADATA_BYTES})`, 'split the metadata');
  const text = await readFile(file.abs, 'utf8');
  return file.path.endsWith('.csv') ? readCsv(file, text) : readJsonl(file, text);
}

/** Entries for the split's images, captions from the metadata files that cover them. */
export async function imagefolderEntries(
  repo: string,
  images: CachedFile[],
  metadata: CachedFile[],
  captionColumn: string | undefined,
  /** every path in the repo: a row naming an image of another split is not this split's concern */
  repoPaths: ReadonlySet<string>,
): Promise<ListingEntry[]> {
  const entries = new Map<string, ListingEntry>();
  for (const image of images) {
    entries.set(image.path, { id: image.path, image: { path: image.path, abs: image.abs, sha256: image.sha256, size: image.size } });
  }
  const column = captionColumn ?? 'text';
  for (const file of metadata) {
    const rows = await readMetadata(file);
    if (rows.length === 0) continue;
    const columns = [...new Set(rows.flatMap((row) => Object.keys(row.values)))];
    if (!columns.includes(column)) throw unknownColumnError(repo, file.path, 'caption_column', column, columns);
    if (!columns.includes('file_name')) {
      throw metadataError(file, rows[0].line, 'has no file_name column', 'imagefolder metadata names each image in file_name (relative to the metadata file)');
    }
    const base = posix.dirname(file.path);
    for (const row of rows) {
      const name = row.values.file_name;
      if (typeof name !== 'string' || name === '') throw metadataError(file, row.line, 'file_name is missing or not a string', 'give every row a file_name');
      const path = posix.normalize(base === '.' ? name : `${base}/${name}`);
      if (path.startsWith('../') || path === '..' || posix.isAbsolute(name) || name.includes('\\')) {
        throw metadataError(file, row.line, `file_name ${JSON.stringify(name)} points outside the dataset`, 'file_name is relative to the metadata file, without ".."');
      }
      const text = row.values[column];
      if (text !== undefined && text !== null && typeof text !== 'string') {
        throw metadataError(file, row.line, `${column} is ${Array.isArray(text) ? 'a list' : typeof text}, not a string`, `point caption_column at a text column`);
      }
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
