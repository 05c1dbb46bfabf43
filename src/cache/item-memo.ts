// Per-item memo behind ctx.item: sha256(canonical JSON of the key) -> JSON value, namespaced by
// stage kind. A value that names CAS blobs is only reused while those blobs are still present.
import { canonicalHash, SHA256_RE } from '../engine/canonical.js';
import type { Json } from '../engine/types.js';
import type { Cas } from './cas.js';
import { ItemJournal } from './item-journal.js';
import { CacheLayout } from './layout.js';
import { deepFreeze } from './parsed-json.js';

export interface ItemRecord {
  label: string;
  value: Json;
  /** blob hashes named anywhere in the value */
  refs: string[];
}

/** unused records are let go once they are this share (1/n) of a remembering memo */
const STALE_SHARE = 64;

/** a pack of this many records or more makes a one-off run ask the Cas to list the store (Cas.listPresence) */
const LIST_PRESENCE_MIN = 2_000;

/** bounds the key-hash memo of a long-lived memo (about 1 KB per key) */
const MAX_REMEMBERED_KEYS = 200_000;

/**
 * A record a remembering memo holds, stamped with the last run that used it (or whose held pack
 * holds it): a watch build uses 20,000 records, and a property write each is what keeps them, not
 * a new 20,000-entry Map per build.
 */
interface Held {
  readonly id: string;
  record: ItemRecord;
  run: number;
  /** the Cas presence epoch in which every blob of the record was found present (-1: none yet) */
  verified: number;
}

/** the ids of a pack's records, and the run that wrote it from the records it used (-1: preloaded) */
interface HeldPack {
  ids: readonly string[];
  run: number;
}

/** a key's memo id for a stage kind; a remembering memo also keeps the record it found for it */
export interface ItemRef {
  readonly kind: string;
  readonly keyHash: string;
  readonly id: string;
  /** @internal the remembering memo's record for the id when last found */
  held?: Held;
}

export class ItemMemo {
  readonly layout: CacheLayout;
  /** where records are appended and looked up (cache/item-journal.ts) */
  readonly journal: ItemJournal;
  /**
   * records read or written, kept in memory when the memo outlives one run (`lorabuild watch`):
   * those the last run used or held in a pack, and this run's, not every record of every build
   * since the start (up to a 64th more: see endRun). Those this run used have run === this.run;
   * every record with run >= this.run - 1 is in the map (a ref's record is looked up again otherwise).
   */
  private remembered: Map<string, Held> | undefined;
  private run = 0;
  /** distinct records stamped with this run: when it is the whole map, endRun drops nothing */
  private stamped = 0;
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
  /** key object -> its memo ref for the stage kind it was last looked up for (ids are Map keys: made once) */
  private readonly keyIds = new WeakMap<object, ItemRef>();
  /** records put with `journal: false` that no settleUnfiled has dropped or appended yet */
  private readonly unfiled = new Map<string, { kind: string; keyHash: string; record: ItemRecord }>();
  /** records of the previous run of a stage (its action entry's item pack), for this run only (a memo that does not remember) */
  private preloaded = new Map<string, ItemRecord>();
  /**
   * packs whose records a remembering memo holds (root -> its record ids): those preloaded, written
   * or asked about by the last run or this one (`packsUsed`), whose records are kept with them
   */
  private packs = new Map<string, HeldPack>();
  private packsUsed = new Map<string, HeldPack>();
  constructor(
    root: string,
    private readonly cas: Cas,
    options: { remember?: boolean } = {},
  ) {
    this.layout = new CacheLayout(root);
    this.journal = new ItemJournal(root);
    if (options.remember) {
      this.remembered = new Map();
      this.keyHashes = new Map();
    }
  }

  /** whether the memo outlives a run (`lorabuild watch`) */
  get remembers(): boolean {
    return this.remembered !== undefined;
  }

  /** at the start of each run (writer lock held): drop what gc or verify may have removed meanwhile */
  refresh(): void {
    // a record verified in an older presence epoch is checked again (held.verified)
    this.cas.refreshPresence();
    this.preloaded.clear();
  }

  /**
   * Records from an item pack ([id, label, value, refs], cache/action-cache.ts): `get` finds them
   * without reading one file per item. Malformed records are skipped (then looked up in the journal).
   */
  preload(records: readonly Json[], packRoot: string): (ItemRecord | undefined)[] {
    // a one-off run checks each record's blobs (get): many records, one listing of the store
    if (!this.remembered && records.length >= LIST_PRESENCE_MIN) this.cas.listPresence(2 * records.length);
    const ids: string[] = [];
    /** the record object each pack record is held as (undefined: malformed) */
    const held: (ItemRecord | undefined)[] = [];
    for (const r of records) {
      if (!Array.isArray(r) || r.length !== 4 || typeof r[0] !== 'string' || typeof r[1] !== 'string' || !Array.isArray(r[3]) || !r[3].every((s) => typeof s === 'string')) {
        held.push(undefined);
        continue;
      }
      const id = r[0];
      if (this.remembered) {
        if (!this.remembered.has(id)) this.remembered.set(id, { id, record: deepFreeze({ label: r[1], value: r[2], refs: r[3] as string[] }), run: this.run - 1, verified: -1 });
        held.push(this.remembered.get(id)!.record);
      } else {
        if (!this.preloaded.has(id)) this.preloaded.set(id, deepFreeze({ label: r[1], value: r[2], refs: r[3] as string[] }));
        held.push(this.preloaded.get(id));
      }
      ids.push(id);
    }
    if (this.remembered) {
      const pack = { ids, run: -1 };
      this.packs.set(packRoot, pack);
      this.packsUsed.set(packRoot, pack);
    }
    return held;
  }

  /**
   * a pack this process wrote from records it holds, by their ids (a remembering memo needs no
   * preload of it)
   */
  packed(packRoot: string, ids: Iterable<string>): void {
    if (!this.remembered) return;
    // written from this run's records: all stamped already (get and put stamp)
    const pack = { ids: [...ids], run: this.run };
    this.packs.set(packRoot, pack);
    this.packsUsed.set(packRoot, pack);
  }

  /**
   * A stage restored from the action cache, or fresh, in a build of a remembering memo: the
   * records of its entry's pack are this build's as much as those a running stage looked up (the
   * next save's run of the stage looks them up), so a pack this memo holds stays held with its
   * records. Without this, an undo back to a state built before (restored, nothing looked up) let
   * them all go, and the next save read and parsed them again into new objects (~350 ms at 10k).
   * Nothing is read: a pack not held stays so.
   */
  keepPack(packRoot: string): void {
    if (!this.remembered) return;
    const pack = this.packsUsed.get(packRoot) ?? this.packs.get(packRoot);
    if (!pack) return;
    this.packsUsed.set(packRoot, pack);
    for (const id of pack.ids) {
      const held = this.remembered.get(id);
      if (held) this.stamp(held);
    }
  }

  /**
   * The records of a stage's run put with `journal: false`, once the stage is done: dropped when the
   * run's item pack holds them and is recorded, appended to the journal otherwise (an item list short
   * enough to be kept inline in the action entry, a failed run, a warm-up that records nothing).
   * `ids`: the item ids the stage's run recorded (other stages' records are theirs to settle).
   */
  settleUnfiled(ids: ReadonlyMap<string, unknown>, packed: boolean): void {
    for (const [id, u] of this.unfiled) {
      if (!ids.has(id)) continue;
      this.unfiled.delete(id);
      if (!packed) this.journal.append(u.kind, u.keyHash, JSON.stringify(u.record));
    }
  }

  /** true when this memo holds the pack's records (and then keeps holding them for another run) */
  hasPreloaded(packRoot: string): boolean {
    const pack = this.packs.get(packRoot);
    if (pack) this.packsUsed.set(packRoot, pack);
    return pack !== undefined;
  }

  /**
   * done with this run's preloaded records. A remembering memo keeps the records this run used
   * (and the packs it held) and lets the others go: memory follows the dataset as it is now, not
   * every record every save ever made (a record let go is read from the journal if it comes back).
   */
  endRun(): void {
    this.preloaded.clear();
    // an interrupted stage's: computed again when asked for (only cheap values are put unfiled)
    this.unfiled.clear();
    const remembered = this.remembered;
    if (remembered) {
      // what lookups read from the journals is this run's, not the session's
      this.journal.forget();
      // A save leaves a record or two unused: they are let go once they are a 64th of the whole,
      // not by a walk over 20,000 records per save. A record kept meanwhile is still a true one.
      const unused = remembered.size - this.stamped;
      if (unused > 0 && unused * STALE_SHARE >= remembered.size) {
        // the records of the packs still held stay: a pack is trusted to be in memory whole
        for (const pack of this.packsUsed.values()) {
          if (pack.run === this.run) continue; // written from this run's records: stamped
          for (const id of pack.ids) {
            const held = remembered.get(id);
            if (held) this.stamp(held);
          }
        }
        for (const held of remembered.values()) if (held.run !== this.run) remembered.delete(held.id);
      }
      this.run++;
      this.stamped = 0;
      this.packs = this.packsUsed;
      this.packsUsed = new Map();
    }
  }

  private stamp(held: Held): void {
    if (held.run !== this.run) {
      held.run = this.run;
      this.stamped++;
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
  ref(kind: string, key: Json): ItemRef {
    const kept = key !== null && typeof key === 'object' ? this.keyIds.get(key) : undefined;
    if (kept?.kind === kind) return kept;
    const keyHash = this.keyHash(key);
    const ref: ItemRef = { kind, keyHash, id: this.id(kind, keyHash) };
    if (this.keyHashes && key !== null && typeof key === 'object') this.keyIds.set(key, ref);
    return ref;
  }

  /** "kind/keyhash", the id an action entry records */
  id(kind: string, keyHash: string): string {
    return `${kind}/${keyHash}`;
  }

  get(kind: string, keyHash: string, id = this.id(kind, keyHash)): ItemRecord | undefined {
    if (!this.remembered) {
      const record = this.preloaded.get(id) ?? this.readItem(kind, keyHash);
      // the blobs are checked every time (a gc between two runs may have removed them)
      return record && record.refs.every((sha) => this.cas.has(sha)) ? record : undefined;
    }
    return this.use(this.hold(kind, keyHash, id));
  }

  /** get by a ref: a remembering memo finds an unchanged key's record through the ref, with no lookup */
  find(ref: ItemRef): ItemRecord | undefined {
    if (!this.remembered) return this.get(ref.kind, ref.keyHash, ref.id);
    let held = ref.held;
    // a record maybe let go by an endRun (or never found) is looked up again
    if (held === undefined || held.run < this.run - 1) held = ref.held = this.hold(ref.kind, ref.keyHash, ref.id);
    return this.use(held);
  }

  private hold(kind: string, keyHash: string, id: string): Held | undefined {
    let held = this.remembered!.get(id);
    if (held === undefined) {
      const record = this.readItem(kind, keyHash);
      if (!record) return undefined;
      held = { id, record, run: this.run - 1, verified: -1 };
      this.remembered!.set(id, held);
    }
    return held;
  }

  /** the held record if its blobs are present, stamped as used by this run */
  private use(held: Held | undefined): ItemRecord | undefined {
    if (held === undefined) return undefined;
    // a remembering memo's Cas remembers presence until gc or verify moves the cache generation
    if (held.verified !== this.cas.presenceEpoch || !this.cas.remembersPresence) {
      if (!held.record.refs.every((sha) => this.cas.has(sha))) return undefined;
      held.verified = this.cas.presenceEpoch;
    }
    this.stamp(held);
    return held.record;
  }

  private readItem(kind: string, keyHash: string): ItemRecord | undefined {
    const json = this.journal.read(kind, keyHash);
    if (json === undefined) return undefined;
    let record: ItemRecord;
    try {
      record = JSON.parse(json) as ItemRecord;
    } catch {
      return undefined;
    }
    if (record === null || typeof record !== 'object' || !Array.isArray(record.refs) || !('value' in record)) return undefined;
    return deepFreeze(record);
  }

  /**
   * `ref`: the key's ref, which then holds the new record (its next find needs no lookup).
   * `journal: false`: the record is kept in memory and in the run's item pack only (ctx.item packOnly).
   */
  put(kind: string, keyHash: string, label: string, value: Json, ref?: ItemRef, options: { journal?: boolean } = {}): ItemRecord {
    const refs = blobRefs(value, (sha) => this.cas.has(sha));
    // frozen: item packs keep each record's text (cache/action-cache.ts), so a record never changes
    const record: ItemRecord = deepFreeze({ label, value, refs });
    if (options.journal !== false) this.journal.append(kind, keyHash, JSON.stringify(record));
    else this.unfiled.set(this.id(kind, keyHash), { kind, keyHash, record });
    if (this.remembered) {
      const id = this.id(kind, keyHash);
      const held = this.remembered.get(id);
      // its refs are the blobs blobRefs just found present
      const verified = this.cas.remembersPresence ? this.cas.presenceEpoch : -1;
      // changed in place: a ref that holds it sees the new record
      if (held) Object.assign(held, { record, verified });
      else this.remembered.set(id, { id, record, run: this.run - 1, verified });
      const now = held ?? this.remembered.get(id)!;
      this.stamp(now);
      if (ref?.id === id) ref.held = now;
    }
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
