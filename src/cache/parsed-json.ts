// Parsed JSON outputs shared between the stages of one process, keyed by the blob's sha256: a
// stage that writes manifest.json hands the very object to the stages that read it, instead of
// each of them reading and parsing a file of a thousand items again (`lorabuild watch` does that
// on every caption save). Content-addressed, so an entry can never be out of date; values are
// deep-frozen, so no stage can change what another one reads.
import type { Json } from '../engine/types.js';

/**
 * About this many characters of JSON text, in at most MAX_ENTRIES values, are kept (least recently
 * used go first). The point is handing an output to the stages right after it; a `lorabuild watch`
 * session makes a new listing and manifest on every save, and keeping them all would grow the heap,
 * and with it every garbage collection, save after save. Big enough for the listing and manifest
 * of a 100,000-item dataset (~26 M each, by treeChars' estimate): one not kept is read and parsed
 * again by the next stage, into new objects, and then no item is known by identity (a save at 100k
 * took 5-8 s, most of it hashing 200,000 item keys again).
 */
const MAX_CHARS = 128 * 1024 * 1024;
const MAX_ENTRIES = 32;

/**
 * `{ ...source, ...extra }` (the same keys in the same order, so the same JSON text), built by adding
 * the keys one by one. For copies that deepFreeze will freeze by the thousand (listing entries): in
 * V8, each object that object spread made from an unfrozen one gets a hidden class of its own once
 * frozen, so every property read over them is megamorphic (a 100,000-item watch held ~60 MB more
 * after its warm-up). Copies made this way share one class per list of keys.
 */
export function withKeys<T extends object, E extends object>(source: T, extra?: E): T & E {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(source)) out[key] = (source as Record<string, unknown>)[key];
  if (extra) for (const key of Object.keys(extra)) out[key] = (extra as Record<string, unknown>)[key];
  return out as T & E;
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

class ParsedJsonCache {
  private readonly entries = new Map<string, { value: Json; chars: number }>();
  private chars = 0;

  get(sha256: string): Json | undefined {
    const entry = this.entries.get(sha256);
    if (!entry) return undefined;
    // most recently used last
    this.entries.delete(sha256);
    this.entries.set(sha256, entry);
    return entry.value;
  }

  /** `value` is frozen; `chars`: the length of its JSON text */
  set(sha256: string, value: Json, chars: number): void {
    if (chars > MAX_CHARS / 2 || this.entries.has(sha256)) return;
    this.entries.set(sha256, { value: deepFreeze(value), chars });
    this.chars += chars;
    for (const [key, entry] of this.entries) {
      if (this.chars <= MAX_CHARS && this.entries.size <= MAX_ENTRIES) break;
      this.entries.delete(key);
      this.chars -= entry.chars;
    }
  }
}

export const parsedJson = new ParsedJsonCache();
