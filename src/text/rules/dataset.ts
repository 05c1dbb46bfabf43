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
  const parts = path.split('/');
  return parts.length >= 2 ? parts[parts.length - 2] : '';
}

/** A lab-layout file that the folder reader left over because its number was taken already. */
function isLabLeftover(path: string): boolean {
  const folder = folderOf(path);
  const supported = (folder === 'image' && formatFromExtension(path) !== null) || (folder === 'text' && path.toLowerCase().endsWith('.txt'));
  return supported && /^\d+$/.test(stemOf(path));
}

function ranges(missing: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const n of missing) {
    const last = out[out.length - 1];
    if (last && last[1] === n - 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}

/** Lab layout: image/N.ext and text/N.txt with N = 0..count-1. */
export function checkNumbering(findings: Findings, manifest: Manifest): void {
  if (manifest.layout !== 'lab') return;
  const numbers = new Map<number, string>();
  const firstFileOf = new Map<string, string>();
  const files: string[] = [];
  for (const item of manifest.items) {
    const image = item.image?.origin ?? item.error?.origin;
    if (image) files.push(image);
    if (item.caption) files.push(item.caption.origin);
  }
  files.push(...manifest.stray.filter(isLabLeftover));
  for (const file of files) {
    const stem = stemOf(file);
    if (!/^\d+$/.test(stem)) {
      findings.add('numbering', {
        file,
        message: `'${stem}' is not a number: the lab layout names files image/0.png, image/1.png ... with captions text/0.txt, text/1.txt ...`,
        hint: 'rename the file to the next free number (image and caption alike)',
      });
      continue;
    }
    const n = Number(stem);
    const slot = `${folderOf(file)}/${n}`;
    const earlier = firstFileOf.get(slot);
    if (earlier !== undefined) {
      findings.add('duplicates', {
        file,
        message: `number ${n} is used twice in ${folderOf(file)}/: ${earlier} and ${file}; only one of them can be item ${n}`,
        hint: 'give one of them a free number (and its caption or image the same one), or delete it',
      });
      continue;
    }
    firstFileOf.set(slot, file);
    if (!numbers.has(n)) numbers.set(n, file);
  }
  if (numbers.size === 0) return;
  const max = Math.max(...numbers.keys());
  const missing: number[] = [];
  for (let n = 0; n <= max; n++) if (!numbers.has(n)) missing.push(n);
  for (const [from, to] of ranges(missing)) {
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
