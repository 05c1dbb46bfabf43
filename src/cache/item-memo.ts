// Per-item memo behind ctx.item: sha256(canonical JSON of the key) -> JSON value, namespaced by
// stage kind. A value that names CAS blobs is only reused while those blobs are still present.
import { readFileSync } from 'node:fs';
import { canonicalHash, SHA256_RE } from '../engine/canonical.js';
import type { Json } from '../engine/types.js';
import { writeFileAtomic } from './atomic.js';
import type { Cas } from './cas.js';
import { CacheLayout } from './layout.js';

interface ItemRecord {
  label: string;
  value: Json;
  /** blob hashes named anywhere in the value */
  refs: string[];
}

export class ItemMemo {
  readonly layout: CacheLayout;
  /** records read or written, kept in memory when the memo outlives one run (`lorabuild watch`) */
  private readonly remembered: Map<string, ItemRecord> | undefined;
  constructor(
    root: string,
    private readonly cas: Cas,
    options: { remember?: boolean } = {},
  ) {
    this.layout = new CacheLayout(root);
    if (options.remember) this.remembered = new Map();
  }

  keyHash(key: Json): string {
    return canonicalHash(key);
  }

  /** "kind/keyhash", the id an action entry records */
  id(kind: string, keyHash: string): string {
    return `${kind}/${keyHash}`;
  }

  get(kind: string, keyHash: string): { value: Json; refs: string[] } | undefined {
    const id = this.id(kind, keyHash);
    let record = this.remembered?.get(id);
    if (!record) {
      try {
        record = JSON.parse(readFileSync(this.layout.item(kind, keyHash), 'utf8')) as ItemRecord;
      } catch {
        return undefined;
      }
      if (!Array.isArray(record.refs) || !('value' in record)) return undefined;
      this.remembered?.set(id, record);
    }
    // the blobs are checked every time: a gc between two runs may have removed them
    if (!record.refs.every((sha) => this.cas.has(sha))) return undefined;
    return { value: record.value, refs: record.refs };
  }

  put(kind: string, keyHash: string, label: string, value: Json): string[] {
    const refs = blobRefs(value, (sha) => this.cas.has(sha));
    const record: ItemRecord = { label, value, refs };
    writeFileAtomic(this.layout.item(kind, keyHash), JSON.stringify(record));
    this.remembered?.set(this.id(kind, keyHash), record);
    return refs;
  }
}

/** the 64-hex strings in a JSON value that name blobs present in the CAS */
export function blobRefs(value: Json, isBlob: (sha: string) => boolean): string[] {
  const found = new Set<string>();
  const visit = (v: Json) => {
    if (typeof v === 'string') {
      if (SHA256_RE.test(v) && isBlob(v)) found.add(v);
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  visit(value);
  return [...found].sort();
}
