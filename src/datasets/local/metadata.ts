// Hugging Face imagefolder metadata: metadata.jsonl (one JSON object per line) or metadata.csv
// (header row), each row naming an image by `file_name` and holding its caption in a column.
import { readFile } from 'node:fs/promises';
import { DatasetError } from './errors.js';
import { parseCsv, CsvSyntaxError } from './csv.js';
import { suggestColumn } from '../suggest-column.js';

export interface MetadataRow {
  /** as written in the metadata file */
  fileName: string;
  /** null when the caption is JSON null */
  caption: string | null;
  /** 1-based line in the metadata file */
  line: number;
}

const MAX_METADATA_BYTES = 256 * 1024 * 1024;

function columnHint(column: string, available: string[]): string {
  const guess = suggestColumn(column, available.filter((c) => c !== 'file_name'));
  const list = available.map((c) => `'${c}'`).join(', ');
  return guess
    ? `did you mean \`caption_column: ${guess}\`? columns: ${list}`
    : `set \`caption_column:\` in the lorafile to one of: ${list}`;
}

async function readText(abs: string, display: string): Promise<string> {
  const bytes = await readFile(abs);
  if (bytes.length > MAX_METADATA_BYTES) {
    throw new DatasetError({ code: 'metadata-too-big', file: display, message: `is ${bytes.length} bytes, more than ${MAX_METADATA_BYTES}`, hint: 'split the dataset' });
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new DatasetError({ code: 'metadata-encoding', file: display, message: 'is not valid UTF-8', hint: 'save the file as UTF-8' });
  }
}

function readJsonl(text: string, display: string, captionColumn: string): MetadataRow[] {
  const rows: MetadataRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].replace(/\r$/, '');
    if (raw.trim() === '') continue;
    const line = i + 1;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new DatasetError({
        code: 'metadata-syntax',
        file: display,
        line,
        col: 1,
        message: `is not valid JSON: ${(err as Error).message}`,
        hint: 'metadata.jsonl holds one JSON object per line, e.g. {"file_name": "0.png", "text": "a cat"}',
      });
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new DatasetError({ code: 'metadata-syntax', file: display, line, col: 1, message: 'is not a JSON object', hint: 'each line must look like {"file_name": "0.png", "text": "a cat"}' });
    }
    const obj = value as Record<string, unknown>;
    const fileName = obj.file_name;
    if (typeof fileName !== 'string' || fileName === '') {
      throw new DatasetError({ code: 'metadata-file-name', file: display, line, col: 1, message: 'has no "file_name" string', hint: 'every row names its image with "file_name", relative to the metadata file' });
    }
    if (!(captionColumn in obj)) {
      throw new DatasetError({
        code: 'caption-column',
        file: display,
        line,
        col: 1,
        message: `has no caption column '${captionColumn}'`,
        hint: columnHint(captionColumn, Object.keys(obj)),
      });
    }
    const caption = obj[captionColumn];
    if (caption !== null && typeof caption !== 'string') {
      throw new DatasetError({
        code: 'caption-type',
        file: display,
        line,
        col: 1,
        message: `caption column '${captionColumn}' holds ${Array.isArray(caption) ? 'a list' : `a ${typeof caption}`}, not a string`,
        hint: 'write the caption as a JSON string',
      });
    }
    rows.push({ fileName, caption, line });
  }
  return rows;
}

function readCsv(text: string, display: string, captionColumn: string): MetadataRow[] {
  let records;
  try {
    records = parseCsv(text);
  } catch (err) {
    if (err instanceof CsvSyntaxError) {
      throw new DatasetError({ code: 'metadata-syntax', file: display, line: err.line, col: err.col, message: err.message });
    }
    throw err;
  }
  const [header, ...body] = records;
  if (!header) throw new DatasetError({ code: 'metadata-empty', file: display, message: 'is empty', hint: 'the first line names the columns: file_name,text' });
  const columns = header.fields.map((c) => c.trim());
  const nameAt = columns.indexOf('file_name');
  if (nameAt < 0) {
    throw new DatasetError({ code: 'metadata-file-name', file: display, line: header.line, col: 1, message: `has no 'file_name' column (columns: ${columns.join(', ')})`, hint: 'the header row must name a file_name column' });
  }
  const captionAt = columns.indexOf(captionColumn);
  if (captionAt < 0) {
    throw new DatasetError({ code: 'caption-column', file: display, line: header.line, col: 1, message: `has no caption column '${captionColumn}'`, hint: columnHint(captionColumn, columns) });
  }
  return body.map((record) => {
    if (record.fields.length !== columns.length) {
      throw new DatasetError({
        code: 'metadata-syntax',
        file: display,
        line: record.line,
        col: 1,
        message: `has ${record.fields.length} fields, the header has ${columns.length}`,
        hint: 'quote fields that contain commas: "a cat, sitting"',
      });
    }
    const fileName = record.fields[nameAt];
    if (fileName === '') throw new DatasetError({ code: 'metadata-file-name', file: display, line: record.line, col: 1, message: 'has an empty file_name' });
    const caption = record.fields[captionAt];
    return { fileName, caption, line: record.line };
  });
}

export async function readMetadata(abs: string, display: string, captionColumn: string): Promise<MetadataRow[]> {
  const text = await readText(abs, display);
  return abs.toLowerCase().endsWith('.csv') ? readCsv(text, display, captionColumn) : readJsonl(text.replace(/^\uFEFF/, ''), display, captionColumn);
}
