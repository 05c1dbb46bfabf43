// The three local dataset layouts, and telling them apart:
//   lab          root/image/N.ext + root/text/N.txt (the lab's use_custom_dataset folders)
//   kohya        img.png + img.txt or img.caption side by side, possibly in subfolders (10_name/)
//   imagefolder  Hugging Face: images + metadata.jsonl or metadata.csv (file_name + caption column)
import path from 'node:path';
import { DatasetError } from './errors.js';
import { displayPath } from './folder.js';
import { readMetadata } from './metadata.js';
import type { FolderFile } from './walk.js';
import { extensionOf, isImageFile, pairByKey, sortNatural, withoutExtension, type Draft, type DraftEntry } from './draft.js';

export type LayoutName = Draft['layout'];
const METADATA_FILES = ['metadata.jsonl', 'metadata.csv'];
const KOHYA_CAPTION_EXTENSIONS = ['.txt', '.caption'];

function baseName(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1);
}

export function detectLayout(files: FolderFile[], display: string): LayoutName {
  if (files.some((f) => METADATA_FILES.includes(f.rel))) return 'imagefolder';
  // Hub-style split folders (train/metadata.jsonl) would otherwise be read as kohya, captions lost.
  const nested = files.find((f) => METADATA_FILES.includes(baseName(f.rel)));
  if (nested) {
    const sub = nested.rel.slice(0, nested.rel.lastIndexOf('/'));
    throw new DatasetError({
      code: 'layout-nested-metadata',
      file: displayPath(display, nested.rel),
      message: `imagefolder metadata lies in the subfolder ${sub}/, not in the dataset folder itself`,
      hint: `set \`folder: ${display}/${sub}\` (or \`layout:\` to read the folder another way)`,
    });
  }
  if (files.some((f) => f.rel.startsWith('image/') || f.rel.startsWith('text/'))) return 'lab';
  if (files.some((f) => isImageFile(f.rel))) return 'kohya';
  throw new DatasetError({
    code: 'layout-unknown',
    file: display,
    message: files.length === 0 ? 'dataset folder is empty' : 'holds no images (png, jpg, jpeg, webp, bmp), so its layout cannot be told',
    hint: 'use one of: image/N.png + text/N.txt (lab), img.png + img.txt side by side (kohya), or images + metadata.jsonl (imagefolder); `layout:` forces one',
  });
}

export function readLabLayout(files: FolderFile[], display: string): Draft {
  const images: string[] = [];
  const captions: string[] = [];
  const stray: string[] = [];
  for (const { rel } of files) {
    const [dir, name, ...deeper] = rel.split('/');
    if (deeper.length === 0 && name !== undefined && dir === 'image' && isImageFile(rel)) images.push(rel);
    else if (deeper.length === 0 && name !== undefined && dir === 'text' && extensionOf(rel) === '.txt') captions.push(rel);
    else stray.push(rel);
  }
  if (images.length === 0 && captions.length === 0) {
    throw new DatasetError({
      code: 'layout-mismatch',
      file: display,
      message: 'has no image/ or text/ folder, which the lab layout needs',
      hint: 'put images in image/0.png, image/1.png ... and captions in text/0.txt, text/1.txt ..., or change `layout:`',
    });
  }
  const stem = (rel: string) => withoutExtension(baseName(rel));
  const paired = pairByKey(images, captions, stem);
  return { layout: 'lab', entries: paired.entries, stray: [...stray, ...paired.stray].sort() };
}

export function readKohyaLayout(files: FolderFile[], display: string): Draft {
  const images: string[] = [];
  const captions: string[] = [];
  const stray: string[] = [];
  for (const { rel } of files) {
    if (isImageFile(rel)) images.push(rel);
    else if (KOHYA_CAPTION_EXTENSIONS.includes(extensionOf(rel))) captions.push(rel);
    else stray.push(rel);
  }
  if (images.length === 0) {
    throw new DatasetError({ code: 'layout-mismatch', file: display, message: 'has no images for the kohya layout', hint: 'put img.png next to img.txt (or img.caption), or change `layout:`' });
  }
  // .txt before .caption for the same stem, so .txt is the caption and .caption is reported as stray
  const ordered = sortNatural(captions, (c) => `${withoutExtension(c)}\u0000${KOHYA_CAPTION_EXTENSIONS.indexOf(extensionOf(c))}`);
  const paired = pairByKey(images, ordered, withoutExtension);
  return { layout: 'kohya', entries: paired.entries, stray: [...stray, ...paired.stray].sort() };
}

/** A metadata file_name as a path inside the folder, or a reason it is not one. */
function checkFileName(fileName: string): { rel: string } | { problem: string } {
  // Metadata written on Windows uses backslashes; file names with a backslash are not portable anyway.
  const slashed = fileName.replace(/\\/g, '/');
  if (slashed.startsWith('/') || /^[A-Za-z]:\//.test(slashed)) return { problem: 'is an absolute path' };
  if (slashed.includes('\0')) return { problem: 'contains a NUL character' };
  const rel = path.posix.normalize(slashed);
  if (rel === '..' || rel.startsWith('../')) return { problem: 'points outside the dataset folder' };
  if (rel === '.' || rel.endsWith('/')) return { problem: 'names a folder, not a file' };
  return { rel };
}

export async function readImagefolderLayout(files: FolderFile[], display: string, captionColumn: string): Promise<Draft> {
  const metadataFiles = files.filter((f) => METADATA_FILES.includes(f.rel));
  if (metadataFiles.length === 0) {
    throw new DatasetError({ code: 'layout-mismatch', file: display, message: 'has no metadata.jsonl or metadata.csv, which the imagefolder layout needs', hint: 'add metadata.jsonl with lines like {"file_name": "0.png", "text": "a cat"}, or change `layout:`' });
  }
  if (metadataFiles.length > 1) {
    throw new DatasetError({ code: 'metadata-twice', file: display, message: 'has both metadata.jsonl and metadata.csv', hint: 'keep one of them' });
  }
  const metadata = metadataFiles[0];
  const metadataDisplay = displayPath(display, metadata.rel);
  const rows = await readMetadata(metadata.abs, metadataDisplay, captionColumn);
  const present = new Set(files.map((f) => f.rel));
  const seen = new Map<string, number>();
  const entries: DraftEntry[] = [];
  for (const row of rows) {
    const checked = checkFileName(row.fileName);
    if ('problem' in checked) {
      throw new DatasetError({
        code: 'path-escape',
        file: metadataDisplay,
        line: row.line,
        col: 1,
        message: `file_name ${JSON.stringify(row.fileName)} ${checked.problem}`,
        hint: 'file_name is a path relative to the metadata file, inside the dataset folder, e.g. "images/0.png"',
      });
    }
    const earlier = seen.get(checked.rel);
    if (earlier !== undefined) {
      throw new DatasetError({ code: 'metadata-duplicate', file: metadataDisplay, line: row.line, col: 1, message: `file_name ${JSON.stringify(row.fileName)} is already listed on line ${earlier}`, hint: 'give each image one row' });
    }
    seen.set(checked.rel, row.line);
    const entry: DraftEntry = { id: checked.rel };
    // A row whose image is missing stays as a caption without an image, for validation to report.
    if (present.has(checked.rel)) entry.image = checked.rel;
    if (row.caption !== null) entry.captionText = { text: row.caption, metadata: metadata.rel, line: row.line, column: captionColumn };
    entries.push(entry);
  }
  const stray: string[] = [];
  for (const { rel } of files) {
    if (rel === metadata.rel || seen.has(rel)) continue;
    if (isImageFile(rel)) entries.push({ id: rel, image: rel });
    else stray.push(rel);
  }
  // metadata order first (as datasets.load_dataset keeps it), then unlisted images by name
  return { layout: 'imagefolder', entries, stray };
}
