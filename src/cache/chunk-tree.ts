// A long list of JSON records stored as a tree of CAS blobs (the "chunk tree"), so that a list of
// 100,000 dataset entries that changed in one record is written as one new leaf and a few small
// inner nodes, not as a new 30 MB blob. Leaf boundaries are content-defined (a record whose text
// hashes to 0 mod a number set by its length ends its leaf), so inserting or editing a record moves no boundary
// outside its own leaf and every other leaf keeps its hash. Inner nodes cut their child lists the
// same way, on the children's hashes.
//
//   leaf:  {"tree":1,"leaf":[record, record, ...]}
//   inner: {"tree":1,"level":N,"children":[{"sha":..., "count": n}, ...]}   (N >= 1; children of level 1 are leaves)
import { SHA256_RE } from '../engine/canonical.js';
import { fmix32 } from './hash32.js';
import type { Json } from '../engine/types.js';
import type { Cas } from './cas.js';
import { deepFreeze } from './parsed-json.js';
import { readRegularFileSync } from './safe-fs.js';

/** a tree as an output names it: the root blob and how many records hang below it */
export interface TreeRef {
  root: string;
  count: number;
}

/**
 * Characters of JSON per leaf on average: a record of n characters ends its leaf with chance about
 * n / TARGET_LEAF_CHARS, decided by its own hash, so leaves hold ~8 KB whatever the record size.
 */
const TARGET_LEAF_CHARS = 8 * 1024;
/**
 * Safety cuts for a run of records without a boundary. They are positional (an edit before them
 * moves them), so they sit far beyond the average: about e^-16 of leaves ever reach them.
 */
const MAX_LEAF = 4096;
const MAX_LEAF_CHARS = 16 * TARGET_LEAF_CHARS;
const AVG_FANOUT = 16;
const MAX_FANOUT = AVG_FANOUT * 8;
/** deeper than any real tree (16^8 leaves); a damaged or hostile node cannot recurse forever */
const MAX_LEVEL = 8;

/** a record's first and last this many characters decide whether it ends a leaf */
const HASHED_ENDS = 64;

/**
 * FNV-1a over the record's first and last HASHED_ENDS UTF-16 code units (its key and its tail:
 * cheap for records of kilobytes, and as deterministic as hashing all of it), then murmur3's
 * finaliser: FNV's low bits depend only on the low bits of each character.
 */
function recordHash(text: string): number {
  let h = 0x811c9dc5;
  const n = text.length;
  const head = Math.min(n, HASHED_ENDS);
  for (let i = 0; i < head; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  for (let i = Math.max(head, n - HASHED_ENDS); i < n; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/**
 * Whether the writer cuts its leaf after a record of this text, the leaf then holding `count`
 * records of `chars` characters of text in all (the writer's rule, and what a leaf read back is
 * checked against before it is kept: see keepReadLeaf).
 */
function endsLeaf(text: string, count: number, chars: number): boolean {
  const every = Math.max(1, Math.round(TARGET_LEAF_CHARS / Math.max(1, text.length)));
  return recordHash(text) % every === 0 || count >= MAX_LEAF || chars >= MAX_LEAF_CHARS;
}

/** lists longer than this are stored as chunk trees (action entries, JSON outputs) */
export const INLINE_LIST_MAX = 256;

/** a leaf written before: what its records are known by (identityOf), its blob and the blob's size */
interface KeptLeaf {
  ids: readonly unknown[];
  sha: string;
  size: number;
}

/** kept leaves by what their first record is known by: objects weakly, strings (sha lists) in a bounded map */
interface KeptLeaves {
  objects: WeakMap<object, KeptLeaf>;
  strings: Map<string, KeptLeaf>;
}

/** string-keyed kept leaves per textOf (a new list of 100,000 hashes makes ~1,000 leaves) */
const MAX_KEPT_STRING_LEAVES = 20_000;

/**
 * Leaves written before, by the record their first is known by: a writer that hands the same (never
 * changed) record objects again (`lorabuild watch` after a save) has a run of them from a leaf
 * boundary on end at the same boundary, so the leaf's blob is known without joining and hashing its
 * text again. Per textOf: the same records written as other text make other leaves.
 */
const keptLeaves = new WeakMap<(record: Json) => string, KeptLeaves>();

const stringify = (record: Json): string => JSON.stringify(record);
const itself = (record: Json): unknown => record;

function keptLeaf(leaves: KeptLeaves, id: unknown): KeptLeaf | undefined {
  if (typeof id === 'string') return leaves.strings.get(id);
  return id !== null && typeof id === 'object' ? leaves.objects.get(id) : undefined;
}

function keepLeaf(leaves: KeptLeaves, leaf: KeptLeaf): void {
  const id = leaf.ids[0];
  if (typeof id === 'string') {
    if (leaves.strings.size >= MAX_KEPT_STRING_LEAVES) leaves.strings.clear();
    leaves.strings.set(id, leaf);
  } else if (id !== null && typeof id === 'object') leaves.objects.set(id, leaf);
}

/**
 * Parsed leaves of JSON outputs' lists (writeSharedTree, readSharedTree) by blob, in a process that
 * builds again (`lorabuild watch`: keepLeavesInMemory). A tree read back by a later build (a save
 * undone: its prepare is restored from cache, and its manifest read from the store) gets the very
 * record objects of the leaves it shares with the trees this process wrote or read before. No such leaf is read or parsed again, and the stages after it
 * know those items by identity: validate hashed all 10,000 item keys again on such a save (~80 ms).
 * Records are deep-frozen; past MAX_LEAF_RECORDS the least recently used leaves go.
 */
let leafCache: Map<string, readonly Json[]> | undefined;
let leafCacheRecords = 0;
const MAX_LEAF_RECORDS = 400_000;

/** turns the leaf cache on (a watch); off drops it */
export function keepLeavesInMemory(on: boolean): void {
  leafCache = on ? (leafCache ?? new Map()) : undefined;
  if (!on) leafCacheRecords = 0;
}

function cachedLeaf(sha: string): readonly Json[] | undefined {
  const records = leafCache?.get(sha);
  if (records !== undefined) {
    leafCache!.delete(sha);
    leafCache!.set(sha, records);
  }
  return records;
}

/** `records` must be frozen (or primitives): readers get these very objects */
function cacheLeaf(sha: string, records: readonly Json[]): void {
  if (!leafCache || leafCache.has(sha)) return;
  leafCache.set(sha, records);
  leafCacheRecords += records.length;
  for (const [old, held] of leafCache) {
    if (leafCacheRecords <= MAX_LEAF_RECORDS) break;
    leafCache.delete(old);
    leafCacheRecords -= held.length;
  }
}

/** a writer's records, when readers may have them as they are: frozen */
function shareable(records: readonly Json[]): boolean {
  return records.every((r) => r === null || typeof r !== 'object' || Object.isFrozen(r));
}

/**
 * Writes the records (in the order given) as a tree; only nodes not in the CAS yet are written.
 * `textOf`: each record's JSON text, when the caller keeps it (pass the same function every time:
 * leaves are kept per textOf). `identityOf`: what a record is known by (default: the record
 * itself); records known by the same object or string must have the same text. Record objects must
 * not change once written.
 */
export function writeTree(cas: Cas, records: readonly Json[], textOf: (record: Json) => string = stringify, identityOf: (record: Json) => unknown = itself): TreeRef {
  return write(cas, records, textOf, identityOf, false);
}

/**
 * writeTree of a JSON output's list (tree-json.ts: a manifest's items, a listing's entries): in a
 * watch, its leaves' records are what readers of those leaves get (see leafCache)
 */
export function writeSharedTree(cas: Cas, records: readonly Json[]): TreeRef {
  return write(cas, records, stringify, itself, true);
}

function write(cas: Cas, records: readonly Json[], textOf: (record: Json) => string, identityOf: (record: Json) => unknown, share: boolean): TreeRef {
  const leaves = keptLeavesOf(textOf);
  /** the kept leaf that `records` continue at `start` with, if its blob is still there */
  const keptAt = (start: number): KeptLeaf | undefined => {
    const kept = keptLeaf(leaves, identityOf(records[start]));
    if (!kept || start + kept.ids.length > records.length) return undefined;
    for (let k = 1; k < kept.ids.length; k++) if (identityOf(records[start + k]) !== kept.ids[k]) return undefined;
    return cas.has(kept.sha, kept.size) ? kept : undefined;
  };
  const put = (body: Buffer) => cas.putBuffer(body).sha256;
  const shareLeaf = (sha: string, start: number, end: number) => {
    if (leafCache!.has(sha)) return void cachedLeaf(sha);
    const slice = records.slice(start, end);
    if (shareable(slice)) cacheLeaf(sha, slice);
  };
  let nodes: { sha: string; count: number }[] = [];
  let texts: string[] = [];
  let chars = 0;
  let leafStart = 0;
  const flushLeaf = (end: number, cut: boolean) => {
    chars = 0;
    const body = Buffer.from(`{"tree":1,"leaf":[${texts.join(',')}]}`, 'utf8');
    const sha = put(body);
    nodes.push({ sha, count: texts.length });
    texts = [];
    // a leaf that ends at a cut ends there again; the last one may grow when records are appended
    if (cut) keepLeaf(leaves, { ids: records.slice(leafStart, end).map(identityOf), sha, size: body.length });
    if (share && leafCache) shareLeaf(sha, leafStart, end);
    leafStart = end;
  };
  for (let i = 0; i < records.length; i++) {
    if (texts.length === 0) {
      const kept = keptAt(i);
      if (kept) {
        nodes.push({ sha: kept.sha, count: kept.ids.length });
        if (share && leafCache) shareLeaf(kept.sha, i, i + kept.ids.length);
        i += kept.ids.length - 1;
        leafStart = i + 1;
        continue;
      }
    }
    const text = textOf(records[i]);
    texts.push(text);
    chars += text.length;
    if (endsLeaf(text, texts.length, chars)) flushLeaf(i + 1, true);
  }
  if (texts.length > 0 || nodes.length === 0) flushLeaf(records.length, false);
  let level = 0;
  while (nodes.length > 1) {
    level++;
    const parents: { sha: string; count: number }[] = [];
    let group: { sha: string; count: number }[] = [];
    const flushInner = () => {
      const body = JSON.stringify({ tree: 1, level, children: group });
      parents.push({ sha: put(Buffer.from(body, 'utf8')), count: group.reduce((s, c) => s + c.count, 0) });
      group = [];
    };
    for (const node of nodes) {
      group.push(node);
      if (Number.parseInt(node.sha.slice(0, 8), 16) % AVG_FANOUT === 0 || group.length >= MAX_FANOUT) flushInner();
    }
    if (group.length > 0) flushInner();
    nodes = parents;
  }
  return { root: nodes[0].sha, count: nodes[0].count };
}

export class TreeDamage extends Error {}

interface Node {
  leaf?: Json[];
  level?: number;
  children?: { sha: string; count: number }[];
}

function readNode(cas: Cas, sha: string, expectLevel: number | undefined, text?: { chars: number; size: number; last: string }): Node {
  const damaged = (what: string) => new TreeDamage(`cached tree node ${sha} ${what}; run \`lorabuild cache verify\``);
  let node: unknown;
  try {
    const bytes = readRegularFileSync(cas.path(sha));
    const body = bytes.toString('utf8');
    node = JSON.parse(body);
    if (text) Object.assign(text, { chars: body.length, size: bytes.length, last: body.slice(-LAST_TEXT_PROBE) });
  } catch (err) {
    throw damaged((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : 'cannot be read');
  }
  if (!node || typeof node !== 'object' || (node as { tree?: unknown }).tree !== 1) throw damaged('is not a tree node');
  const n = node as Node;
  if (Array.isArray(n.leaf)) {
    if (expectLevel !== undefined && expectLevel !== 0) throw damaged('is a leaf where an inner node belongs');
    return n;
  }
  const level = n.level;
  if (typeof level !== 'number' || !Number.isInteger(level) || level < 1 || level > MAX_LEVEL || (expectLevel !== undefined && level !== expectLevel)) throw damaged('has a bad level');
  if (!Array.isArray(n.children) || n.children.length === 0 || !n.children.every((c) => c && typeof c === 'object' && typeof c.sha === 'string' && SHA256_RE.test(c.sha) && Number.isInteger(c.count) && c.count >= 0)) {
    throw damaged('has bad children');
  }
  return n;
}

/**
 * every record of the tree, in order; throws TreeDamage naming the node that is missing or bad.
 * `nodes`: collects the blob of every node read (gc and verify keep them).
 */
export function readTree(cas: Cas, ref: TreeRef, nodes?: string[]): Json[] {
  return read(cas, ref, nodes, false);
}

/** readTree of a JSON output's list (see writeSharedTree): in a watch, records come deep-frozen, shared by every reader of their leaf */
export function readSharedTree(cas: Cas, ref: TreeRef): Json[] {
  return read(cas, ref, undefined, true);
}

function read(cas: Cas, ref: TreeRef, nodes: string[] | undefined, share: boolean, leaves?: ReadLeaf[]): Json[] {
  const out: Json[] = [];
  const visit = (sha: string, expectLevel: number | undefined, expectCount: number) => {
    const cached = share && (expectLevel === undefined || expectLevel === 0) ? cachedLeaf(sha) : undefined;
    const text = leaves ? { chars: 0, size: 0, last: '' } : undefined;
    const node: Node = cached ? { leaf: cached as Json[] } : readNode(cas, sha, expectLevel, text);
    nodes?.push(sha);
    const before = out.length;
    if (node.leaf) {
      if (share && !cached && leafCache) cacheLeaf(sha, deepFreeze(node.leaf));
      for (const r of node.leaf) out.push(r);
      if (leaves && text) leaves.push({ sha, size: text.size, count: node.leaf.length, chars: text.chars, tail: text.last });
    } else {
      for (const child of node.children!) visit(child.sha, node.level! - 1, child.count);
    }
    if (out.length - before !== expectCount) throw new TreeDamage(`cached tree node ${sha} holds ${out.length - before} records, its parent says ${expectCount}; run \`lorabuild cache verify\``);
  };
  visit(ref.root, undefined, ref.count);
  return out;
}

/** a leaf as read: its blob and size in bytes, its record count, its text's length, the end of its text */
export interface ReadLeaf {
  sha: string;
  size: number;
  count: number;
  /** UTF-16 units, as the writer counts them */
  chars: number;
  /** the last LAST_TEXT_PROBE characters of the leaf's text */
  tail: string;
}

/** how much of a leaf's end is kept to check its last record's text (records longer than this are not checked whole) */
const LAST_TEXT_PROBE = 4096;
const LEAF_OPEN = '{"tree":1,"leaf":[';
const LEAF_CLOSE = ']}';

/** readTree, with each leaf as read (in order): for keepReadLeaf */
export function readTreeLeaves(cas: Cas, ref: TreeRef): { records: Json[]; leaves: ReadLeaf[] } {
  const leaves: ReadLeaf[] = [];
  return { records: read(cas, ref, undefined, false, leaves), leaves };
}

/**
 * A leaf read from a tree, kept as written (see keptLeaves) under `ids`, what a later writeTree
 * with this `textOf` knows its records by. A process that reads a tree and writes it again with a
 * change (a stage's item pack in a one-off run) then joins and hashes only the leaves that changed.
 * Only a leaf that ends where the writer cuts is kept (a tree's last leaf may end because the
 * records ran out), so the tree written is the one a write from nothing makes. `lastText`: the
 * last record's text as `textOf` gives it; a leaf whose text does not end with it is not kept.
 */
export function keepReadLeaf(textOf: (record: Json) => string, leaf: ReadLeaf, ids: readonly unknown[], lastText: string): boolean {
  if (leaf.count === 0 || ids.length !== leaf.count || lastText.length + LEAF_CLOSE.length > leaf.tail.length) return false;
  if (!leaf.tail.endsWith(lastText + LEAF_CLOSE)) return false;
  if (!endsLeaf(lastText, leaf.count, leaf.chars - LEAF_OPEN.length - LEAF_CLOSE.length - (leaf.count - 1))) return false;
  keepLeaf(keptLeavesOf(textOf), { ids, sha: leaf.sha, size: leaf.size });
  return true;
}

function keptLeavesOf(textOf: (record: Json) => string): KeptLeaves {
  let leaves = keptLeaves.get(textOf);
  if (!leaves) keptLeaves.set(textOf, (leaves = { objects: new WeakMap(), strings: new Map() }));
  return leaves;
}

/** every blob of the tree's own nodes (for gc and verify), without reading the leaves */
export function treeNodes(cas: Cas, ref: TreeRef): string[] {
  const out: string[] = [];
  const visit = (sha: string, expectLevel: number | undefined) => {
    out.push(sha);
    if (expectLevel === 0) return;
    const node = readNode(cas, sha, expectLevel);
    if (node.leaf) return;
    for (const child of node.children!) visit(child.sha, node.level! - 1);
  };
  visit(ref.root, undefined);
  return out;
}

export function isTreeRef(value: unknown): value is TreeRef {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return typeof v.root === 'string' && SHA256_RE.test(v.root) && typeof v.count === 'number' && Number.isInteger(v.count) && v.count >= 0;
}
