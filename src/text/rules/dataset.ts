// Rules over the whole dataset: the lab layout's 0..N-1 numbering (gaps, numbers used twice, files
// that are not numbered), files that belong to no item, and duplicate images and captions.
import type { Manifest, ManifestItem } from '../../datasets/manifest.js';
import type { Findings } from './findings.js';
import { formatFromExtension } from '../../images/formats.js';
import { captionPlace, imagePlace } from './location.js';

function stemOf(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(0, dot) : base;
}

function folderOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '' : path.slice(path.lastIndexOf('/', slash - 1) + 1, slash);
}

/** A lab-layout file that the folder reader left over because its number was taken already. */
function isLabLeftover(path: string): boolean {
  const folder = folderOf(path);
  const supported = (folder === 'image' && formatFromExtension(path) !== null) || (folder === 'text' && path.toLowerCase().endsWith('.txt'));
  return supported && /^\d+$/.test(stemOf(path));
}

/** The N of '.../image/N.ext' without building substrings; null when the stem is not all digits. */
function numberOf(path: string, slash: number): number | null {
  const dot = path.lastIndexOf('.');
  const end = dot > slash + 1 ? dot : path.length;
  if (end === slash + 1 || end - slash - 1 > 15) return null;
  let n = 0;
  for (let i = slash + 1; i < end; i++) {
    const c = path.charCodeAt(i);
    if (c < 48 || c > 57) return null;
    n = n * 10 + (c - 48);
  }
  return n;
}

/** 'image', 'text' or 'other': the folder the file is directly in */
function labFolder(path: string, slash: number): 'image' | 'text' | 'other' {
  const start = path.lastIndexOf('/', slash - 1) + 1;
  const length = slash - start;
  if (length === 5 && path.startsWith('image', start)) return 'image';
  if (length === 4 && path.startsWith('text', start)) return 'text';
  return 'other';
}

/** Lab layout: image/N.ext and text/N.txt with N = 0..count-1. */
export function checkNumbering(findings: Findings, manifest: Manifest): void {
  if (manifest.layout !== 'lab') return;
  // numbers are dense and small in practice: arrays indexed by N, not maps of strings
  const firstWithNumber: (string | undefined)[] = [];
  const slots = { image: [] as (string | undefined)[], text: [] as (string | undefined)[], other: [] as (string | undefined)[] };
  let distinct = 0;
  const visit = (file: string) => {
    const slash = file.lastIndexOf('/');
    const n = numberOf(file, slash);
    if (n === null || n > 10_000_000) {
      const stem = stemOf(file);
      findings.add('numbering', {
        file,
        message:
          n === null
            ? `'${stem}' is not a number: the lab layout names files image/0.png, image/1.png ... with captions text/0.txt, text/1.txt ...`
            : `${stem} is far beyond the number of items: the lab layout numbers files 0, 1, 2 ...`,
        hint: 'rename the file to the next free number (image and caption alike)',
      });
      return;
    }
    const folder = labFolder(file, slash);
    const taken = slots[folder];
    const earlier = taken[n];
    if (earlier !== undefined) {
      findings.add('duplicates', {
        file,
        message: `number ${n} is used twice in ${folderOf(file)}/: ${earlier} and ${file}; only one of them can be item ${n}`,
        hint: 'give one of them a free number (and its caption or image the same one), or delete it',
      });
      return;
    }
    taken[n] = file;
    if (firstWithNumber[n] === undefined) {
      firstWithNumber[n] = file;
      distinct++;
    }
  };
  for (const item of manifest.items) {
    const image = item.image?.origin ?? item.error?.origin;
    if (image) visit(image);
    if (item.caption) visit(item.caption.origin);
  }
  for (const stray of manifest.stray) if (isLabLeftover(stray)) visit(stray);
  if (distinct === 0) return;
  let gapStart = -1;
  for (let n = 0; n <= firstWithNumber.length; n++) {
    const present = firstWithNumber[n] !== undefined;
    if (!present && n < firstWithNumber.length) {
      if (gapStart === -1) gapStart = n;
      continue;
    }
    if (gapStart !== -1) {
      const to = n - 1;
      const what = gapStart === to ? `no item ${gapStart}` : `no items ${gapStart}..${to}`;
      findings.add('numbering', {
        ...(present ? { file: firstWithNumber[n] } : {}),
        message: `numbering has a gap: ${what} (items should be numbered 0..${distinct - 1} without gaps)`,
        hint: `renumber the files so that they run 0..${distinct - 1}; the lab's trainer reads image/N and text/N for N = 0, 1, 2 ...`,
      });
      gapStart = -1;
    }
  }
}

/** Files that belong to no item (numbered duplicates of the lab layout are reported by checkNumbering). */
export function checkStray(findings: Findings, manifest: Manifest): void {
  for (const stray of manifest.stray) {
    if (manifest.layout === 'lab' && isLabLeftover(stray)) continue;
    findings.add('extension', {
      file: stray,
      message: 'file is not part of the dataset: unsupported extension or place, so it is ignored',
      hint:
        manifest.layout === 'lab'
          ? 'images go in image/N.png|.jpg|.jpeg|.webp|.bmp and captions in text/N.txt; move, convert or delete the file'
          : 'images are .png .jpg .jpeg .webp .bmp and captions .txt or .caption; convert or delete the file',
    });
  }
}

/** `item`'s image is the same as `first`'s, an earlier item's */
export function duplicateImage(findings: Findings, item: ManifestItem, first: ManifestItem): void {
  findings.add('duplicate_image', {
    ...imagePlace(item),
    message: `image is identical to ${first.image!.origin}`,
    hint: 'remove one copy: a duplicate counts twice in training',
  });
}

/** `item`'s caption reads as `first`'s, an earlier item's */
export function duplicateCaption(findings: Findings, item: ManifestItem, first: ManifestItem): void {
  findings.add('duplicate_caption', {
    ...captionPlace(item),
    message: `caption is the same as ${first.caption!.origin} (as CLIP reads it)`,
    hint: 'describe what differs in this image, so the LoRA can tell them apart',
  });
}

export function checkDuplicates(findings: Findings, items: ManifestItem[], captionKeys: (string | null)[]): void {
  const images = new Map<string, ManifestItem>();
  const captions = new Map<string, ManifestItem>();
  items.forEach((item, i) => {
    if (item.image) {
      const first = images.get(item.image.sha256);
      if (first) duplicateImage(findings, item, first);
      else images.set(item.image.sha256, item);
    }
    const key = captionKeys[i];
    if (item.caption && key !== null) {
      const first = captions.get(key);
      if (first) duplicateCaption(findings, item, first);
      else captions.set(key, item);
    }
  });
}
