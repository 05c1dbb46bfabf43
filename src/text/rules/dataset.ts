// Rules over the whole dataset: the lab layout's 0..N-1 numbering (gaps, numbers used twice, files
// that are not numbered), files that belong to no item, and duplicate images and captions.
import type { Manifest, ManifestItem } from '../../datasets/manifest.js';
import type { Findings } from './findings.js';
import { formatFromExtension } from '../../images/decode.js';
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

/** N of a lab file name N.ext, or null when the stem is not all digits. */
function numberOf(stem: string): number | null {
  if (stem.length === 0 || stem.length > 15) return null;
  for (let i = 0; i < stem.length; i++) {
    const c = stem.charCodeAt(i);
    if (c < 48 || c > 57) return null;
  }
  return Number(stem);
}

/** Lab layout: image/N.ext and text/N.txt with N = 0..count-1. */
export function checkNumbering(findings: Findings, manifest: Manifest): void {
  if (manifest.layout !== 'lab') return;
  const numbers = new Map<number, string>();
  const taken = { image: new Map<number, string>(), text: new Map<number, string>(), other: new Map<number, string>() };
  const visit = (file: string) => {
    const stem = stemOf(file);
    const n = numberOf(stem);
    if (n === null) {
      findings.add('numbering', {
        file,
        message: `'${stem}' is not a number: the lab layout names files image/0.png, image/1.png ... with captions text/0.txt, text/1.txt ...`,
        hint: 'rename the file to the next free number (image and caption alike)',
      });
      return;
    }
    const folder = folderOf(file);
    const slots = folder === 'image' ? taken.image : folder === 'text' ? taken.text : taken.other;
    const earlier = slots.get(n);
    if (earlier !== undefined) {
      findings.add('duplicates', {
        file,
        message: `number ${n} is used twice in ${folder}/: ${earlier} and ${file}; only one of them can be item ${n}`,
        hint: 'give one of them a free number (and its caption or image the same one), or delete it',
      });
      return;
    }
    slots.set(n, file);
    if (!numbers.has(n)) numbers.set(n, file);
  };
  for (const item of manifest.items) {
    const image = item.image?.origin ?? item.error?.origin;
    if (image) visit(image);
    if (item.caption) visit(item.caption.origin);
  }
  for (const stray of manifest.stray) if (isLabLeftover(stray)) visit(stray);
  if (numbers.size === 0) return;
  const sorted = [...numbers.keys()].sort((a, b) => a - b);
  const gaps: [number, number][] = [];
  let previous = -1;
  for (const n of sorted) {
    if (n > previous + 1) gaps.push([previous + 1, n - 1]);
    previous = n;
  }
  for (const [from, to] of gaps) {
    const next = numbers.get(to + 1);
    const what = from === to ? `no item ${from}` : `no items ${from}..${to}`;
    findings.add('numbering', {
      ...(next ? { file: next } : {}),
      message: `numbering has a gap: ${what} (items should be numbered 0..${numbers.size - 1} without gaps)`,
      hint: `renumber the files so that they run 0..${numbers.size - 1}; the lab's trainer reads image/N and text/N for N = 0, 1, 2 ...`,
    });
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

export function checkDuplicates(findings: Findings, items: ManifestItem[], captionKeys: (string | null)[]): void {
  const images = new Map<string, ManifestItem>();
  const captions = new Map<string, ManifestItem>();
  items.forEach((item, i) => {
    if (item.image) {
      const first = images.get(item.image.sha256);
      if (first) {
        findings.add('duplicate_image', {
          ...imagePlace(item),
          message: `image is identical to ${first.image!.origin}`,
          hint: 'remove one copy: a duplicate counts twice in training',
        });
      } else images.set(item.image.sha256, item);
    }
    const key = captionKeys[i];
    if (item.caption && key !== null) {
      const first = captions.get(key);
      if (first) {
        findings.add('duplicate_caption', {
          ...captionPlace(item),
          message: `caption is the same as ${first.caption!.origin} (as CLIP reads it)`,
          hint: 'describe what differs in this image, so the LoRA can tell them apart',
        });
      } else captions.set(key, item);
    }
  });
}
