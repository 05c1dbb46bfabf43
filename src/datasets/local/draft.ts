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

/**
 * One string whose code-point order is the natural order of `id`: each run of digits becomes NUL,
 * a character for its length (without leading zeros) and the digits, so numbers compare by value
 * and sort before text at the same place. File names never contain NUL.
 */
function sortKey(id: string): string {
  return id.replace(/\d+/g, (digits) => {
    const value = digits.replace(/^0+(?=\d)/, '');
    return `\u0000${String.fromCharCode(0x20 + value.length)}${value}`;
  });
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders '2' before '10' (ids are mostly numbers), then by code point, so listings are stable everywhere. */
export function naturalCompare(a: string, b: string): number {
  return compareStrings(sortKey(a), sortKey(b)) || compareStrings(a, b);
}

/** Sorts by natural order of `idOf`, computing each key once. */
export function sortNatural<T>(items: T[], idOf: (item: T) => string): T[] {
  const keyed = items.map((item) => ({ item, id: idOf(item), key: sortKey(idOf(item)) }));
  keyed.sort((a, b) => compareStrings(a.key, b.key) || compareStrings(a.id, b.id));
  return keyed.map((k) => k.item);
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
  const entries = sortNatural([...byId.values()], (e) => e.id);
  return { entries, stray };
}
