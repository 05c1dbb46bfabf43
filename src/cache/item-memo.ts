// Per-item memo behind ctx.item: sha256(canonical JSON of the key) -> JSON value, namespaced by
// stage kind. A value that names CAS blobs is only reused while those blobs are still present.
import { canonicalHash, SHA256_RE } from '../engine/canonical.js';
import type { Json } from '../engine/types.js';
import type { Cas } from './cas.js';
import { CacheLayout } from './layout.js';
import { readRegularFileSync, writeOwnedFileAtomic } from './safe-fs.js';
import { deepFreeze } from './parsed-json.js';

export interface ItemRecord {
  label: string;
  value: Json;
  /** blob hashes named anywhere in the value */
  refs: string[];
}

/** bounds the key-hash memo of a long-lived memo (about 1 KB per key) */
const MAX_REMEMBERED_KEYS = 200_000;

export class ItemMemo {
  readonly layout: CacheLayout;
  /**
   * records read or written, kept in memory when the memo outlives one run (`lorabuild watch`):
   * those the last run used or held in a pack, and this run's (`used`), not every record of every
   * build since the start
   */
  private remembered: Map<string, ItemRecord> | undefined;
  private used: Map<string, ItemRecord> | undefined;
  /**
   * JSON.stringify(key) -> canonical hash, for a memo that outlives one run: the same key comes
   * back on every build, and native stringify costs a fraction of canonical JSON + sha256. (Equal
   * stringify text means an equal value, so the canonical hash is the same.)
   */
  private readonly keyHashes: Map<string, string> | undefined;
  /**
   * key object -> its hash: a stage that hands the very same (never changed) key object build
   * after build, as prepare and validate do for unchanged items, skips even the stringify
   */
  private readonly keyObjects = new WeakMap<object, string>();
  /** key object -> its memo id for the stage kind it was last looked up for (ids are Map keys: made once) */
  private readonly keyIds = new WeakMap<object, { kind: string; keyHash: string; id: string }>();
  /** records whose blobs were all found present since the Cas last forgot presence (a remembering memo) */
  private verified = new WeakSet<ItemRecord>();
  private verifiedEpoch = -1;
  /** records of the previous run of a stage (its action entry's item pack), for this run only */
  private preloaded = new Map<string, ItemRecord>();
  /**
   * packs whose records a remembering memo holds (root -> its record ids): those preloaded, written
   * or asked about by the last run or this one (`packsUsed`), whose records are kept with them
   */
  private packs = new Map<string, readonly string[]>();
  private packsUsed = new Map<string, readonly string[]>();
  constructor(
    root: string,
    private readonly cas: Cas,
    options: { remember?: boolean } = {},
  ) {
    this.layout = new CacheLayout(root);
    if (options.remember) {
      this.remembered = new Map();
      this.used = new Map();
      this.keyHashes = new Map();
    }
  }

  /** at the start of each run (writer lock held): drop what gc or verify may have removed meanwhile */
  refresh(): void {
    this.cas.refreshPresence();
    if (this.cas.presenceEpoch !== this.verifiedEpoch) {
      this.verified = new WeakSet();
      this.verifiedEpoch = this.cas.presenceEpoch;
    }
    this.preloaded.clear();
  }

  /**
   * Records from an item pack ([id, label, value, refs], cache/action-cache.ts): `get` finds them
   * without reading one file per item. Malformed records are skipped (then read from their file).
   */
  preload(records: readonly Json[], packRoot: string): void {
    const target = this.remembered ?? this.preloaded;
    const ids: string[] = [];
    for (const r of records) {
      if (!Array.isArray(r) || r.length !== 4 || typeof r[0] !== 'string' || typeof r[1] !== 'string' || !Array.isArray(r[3]) || !r[3].every((s) => typeof s === 'string')) continue;
      if (!target.has(r[0])) target.set(r[0], deepFreeze({ label: r[1], value: r[2], refs: r[3] as string[] }));
      ids.push(r[0]);
    }
    this.packed(packRoot, ids);
  }

  /**
   * a pack this process wrote from records it holds, by their ids (a remembering memo needs no
   * preload of it)
   */
  packed(packRoot: string, ids: Iterable<string>): void {
    if (!this.remembered) return;
    const list = [...ids];
    this.packs.set(packRoot, list);
    this.packsUsed.set(packRoot, list);
  }

  /** true when this memo holds the pack's records (and then keeps holding them for another run) */
  hasPreloaded(packRoot: string): boolean {
    const ids = this.packs.get(packRoot);
    if (ids) this.packsUsed.set(packRoot, ids);
    return ids !== undefined;
  }

  /**
   * done with this run's preloaded records. A remembering memo keeps the records this run used
   * (and the packs it held) and lets the others go: memory follows the dataset as it is now, not
   * every record every save ever made (a record let go is read from its file if it comes back).
   */
  endRun(): void {
    this.preloaded.clear();
    if (this.remembered && this.used) {
      // the records of the packs still held stay: a pack is trusted to be in memory whole
      for (const ids of this.packsUsed.values()) {
        for (const id of ids) {
          const record = this.remembered.get(id);
          if (record && !this.used.has(id)) this.used.set(id, record);
        }
      }
      this.remembered = this.used;
      this.used = new Map();
      this.packs = this.packsUsed;
      this.packsUsed = new Map();
    }
  }

  /** a key object must not be changed once hashed (its hash is remembered by identity) */
  keyHash(key: Json): string {
    if (!this.keyHashes) return canonicalHash(key);
    const isObject = key !== null && typeof key === 'object';
    if (isObject) {
      const known = this.keyObjects.get(key);
      if (known !== undefined) return known;
    }
    const text = JSON.stringify(key);
    let hash = this.keyHashes.get(text);
    if (hash === undefined) {
      hash = canonicalHash(key);
      if (this.keyHashes.size >= MAX_REMEMBERED_KEYS) this.keyHashes.clear();
      this.keyHashes.set(text, hash);
    }
    if (isObject) this.keyObjects.set(key, hash);
    return hash;
  }

  /** keyHash and id of a key for a stage kind (kept by key object, see keyHash) */
  ref(kind: string, key: Json): { keyHash: string; id: string } {
    const kept = key !== null && typeof key === 'object' ? this.keyIds.get(key) : undefined;
    if (kept?.kind === kind) return kept;
    const keyHash = this.keyHash(key);
    const ref = { kind, keyHash, id: this.id(kind, keyHash) };
    if (this.keyHashes && key !== null && typeof key === 'object') this.keyIds.set(key, ref);
    return ref;
  }

  /** "kind/keyhash", the id an action entry records */
  id(kind: string, keyHash: string): string {
    return `${kind}/${keyHash}`;
  }

  get(kind: string, keyHash: string, id = this.id(kind, keyHash)): ItemRecord | undefined {
    let record = this.remembered?.get(id) ?? this.preloaded.get(id);
    if (!record) {
      try {
        record = JSON.parse(readRegularFileSync(this.layout.item(kind, keyHash), 'utf8')) as ItemRecord;
      } catch {
        return undefined;
      }
      if (!Array.isArray(record.refs) || !('value' in record)) return undefined;
      deepFreeze(record);
      this.remembered?.set(id, record);
    }
    // the blobs are checked every time (a gc between two runs may have removed them); a
    // remembering memo's Cas remembers presence until gc or verify moves the cache generation
    if (!this.verified.has(record)) {
      if (!record.refs.every((sha) => this.cas.has(sha))) return undefined;
      if (this.remembered && this.cas.remembersPresence) this.verified.add(record);
    }
    this.used?.set(id, record);
    return record;
  }

  put(kind: string, keyHash: string, label: string, value: Json): ItemRecord {
    const refs = blobRefs(value, (sha) => this.cas.has(sha));
    // frozen: item packs keep each record's text (cache/action-cache.ts), so a record never changes
    const record: ItemRecord = deepFreeze({ label, value, refs });
    writeOwnedFileAtomic(this.layout.root, this.layout.item(kind, keyHash), JSON.stringify(record));
    this.remembered?.set(this.id(kind, keyHash), record);
    this.used?.set(this.id(kind, keyHash), record);
    return record;
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
