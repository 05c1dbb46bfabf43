// What a layout reader finds, before hashing: entries and stray files as paths inside the folder.
import { formatFromExtension } from '../../images/formats.js';

export interface DraftEntry {
  id: string;
  /** path inside the dataset folder */
  image?: string;
  captionFile?: string;
  captionText?: { text: string; metadata: string; line: number; column: string };
}

export interface Draft {
  layout: 'lab' | 'kohya' | 'imagefolder';
  entries: DraftEntry[];
  stray: string[];
}

export function isImageFile(rel: string): boolean {
  return formatFromExtension(rel) !== null;
}

export function extensionOf(rel: string): string {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot).toLowerCase();
}

/** path without its extension: 'a/b.png' -> 'a/b' */
export function withoutExtension(rel: string): string {
  const ext = extensionOf(rel);
  return ext ? rel.slice(0, rel.length - ext.length) : rel;
}

/** Orders '2' before '10' (ids are mostly numbers), then by code point, so listings are stable everywhere. */
export function naturalCompare(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const sx = x.replace(/^0+/, '');
      const sy = y.replace(/^0+/, '');
      if (sx.length !== sy.length) return sx.length - sy.length;
      if (sx !== sy) return sx < sy ? -1 : 1;
    }
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

/**
 * Pair images with caption files by key (the lab's N, kohya's path stem). The first image and the
 * first caption of a key (in the order given) pair up under that key; a further image with the
 * same key keeps its own entry under its full path, so nothing is dropped and ids stay unique.
 * Further captions of a key are returned as stray.
 */
export function pairByKey(images: string[], captions: string[], keyOf: (rel: string) => string): { entries: DraftEntry[]; stray: string[] } {
  const byId = new Map<string, DraftEntry>();
  const stray: string[] = [];
  const extraImages: DraftEntry[] = [];
  for (const image of images) {
    const id = keyOf(image);
    if (byId.has(id)) extraImages.push({ id: image, image });
    else byId.set(id, { id, image });
  }
  for (const caption of captions) {
    const id = keyOf(caption);
    const entry = byId.get(id);
    if (!entry) byId.set(id, { id, captionFile: caption });
    else if (entry.captionFile === undefined) entry.captionFile = caption;
    else stray.push(caption);
  }
  for (const extra of extraImages) {
    if (byId.has(extra.id)) stray.push(extra.image!);
    else byId.set(extra.id, extra);
  }
  const entries = [...byId.values()].sort((a, b) => naturalCompare(a.id, b.id));
  return { entries, stray };
}
