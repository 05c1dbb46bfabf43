// Content-addressed store: a blob's name is the sha256 of its bytes. Blobs are written to a temp
// file and renamed into place, so a blob that exists under its name is whole. Never write to a
// blob path directly; treat blob files as read-only.
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { sha256File } from '../engine/file-hash.js';
import { readCacheGeneration } from './generation.js';
import { dirname, join } from 'node:path';
import { SHA256_RE } from '../engine/canonical.js';
import type { OutputFile } from '../engine/types.js';
import { CacheLayout } from './layout.js';
import { inDir } from './known-dirs.js';

export class Cas {
  readonly layout: CacheLayout;
  /** blobs written by this process (they are referenced by whatever is being built) */
  readonly written = new Set<string>();

  /** with { rememberPresence }: blobs seen present -> size, trusted until the cache generation moves */
  private readonly present: Map<string, number> | undefined;
  private generation: string | undefined;

  /** names of the blobs present when listPresence listed the store (undefined: not listed) */
  private listed: Set<string> | undefined;
  private listingDecided = false;

  constructor(root: string, options: { rememberPresence?: boolean } = {}) {
    this.layout = new CacheLayout(root);
    if (options.rememberPresence) this.present = new Map();
  }

  /**
   * For a Cas that remembers presence: forget what it saw if gc or verify removed anything since
   * the last call. Call it while holding the writer lock, before trusting has() again.
   */
  refreshPresence(): void {
    if (!this.present) return;
    const now = readCacheGeneration(this.layout.root);
    if (now !== this.generation) {
      this.present.clear();
      this.presenceEpoch++;
    }
    this.generation = now;
  }

  /** moves whenever remembered presence is forgotten: what was found present before may be gone */
  presenceEpoch = 0;

  get remembersPresence(): boolean {
    return this.present !== undefined;
  }

  /** the blob's path; the hash may come from untrusted JSON (a manifest), so it is checked */
  path(sha256: string): string {
    if (typeof sha256 !== 'string' || !SHA256_RE.test(sha256)) throw new Error(`not a sha256 blob name: ${JSON.stringify(sha256).slice(0, 80)}`);
    return this.layout.blob(sha256);
  }

  /**
   * For a run about to ask has() of many blobs (a stage of 100,000 memoized items names 200,000 of
   * them, ~6 us a stat): the store's folders are listed once, and has() without a size answers a
   * listed name with no stat (a name not listed, written since, is still stat'ed). Only when that
   * is cheaper: one folder of the 256 is read to size the store, and the store is listed when it
   * holds at most ~20 blobs per check expected. Call it holding the writer lock: nothing removes a
   * blob while it is held.
   */
  listPresence(expectedChecks: number): void {
    if (this.listingDecided) return;
    this.listingDecided = true;
    let shards: string[];
    try {
      shards = readdirSync(this.layout.casDir).filter((name) => /^[0-9a-f]{2}$/.test(name));
    } catch {
      return; // no store yet: nothing to list
    }
    const namesIn = (shard: string): string[] => {
      try {
        return readdirSync(join(this.layout.casDir, shard), { withFileTypes: true })
          .filter((e) => e.isFile())
          .map((e) => e.name);
      } catch {
        return [];
      }
    };
    if (shards.length === 0) return;
    const sample = namesIn(shards[0]);
    if (sample.length * 256 > expectedChecks * 20) return;
    const listed = new Set<string>(sample);
    for (const shard of shards.slice(1)) for (const name of namesIn(shard)) listed.add(name);
    this.listed = listed;
  }

  /** true if a blob with this hash and (when given) size is present */
  has(sha256: string, size?: number): boolean {
    // only well-formed names are ever remembered present
    const known = this.present?.get(sha256);
    if (known !== undefined && (size === undefined || known === size)) return true;
    if (size === undefined && this.listed?.has(sha256)) return true;
    if (!SHA256_RE.test(sha256)) return false;
    try {
      const st = statSync(this.path(sha256));
      if (!st.isFile()) return false;
      this.present?.set(sha256, st.size);
      return size === undefined || st.size === size;
    } catch {
      return false;
    }
  }

  putBuffer(data: Buffer): OutputFile {
    const sha256 = createHash('sha256').update(data).digest('hex');
    if (!this.has(sha256, data.length)) {
      const tmp = this.tempName();
      inDir(this.layout.tmp, () => writeFileSync(tmp, data));
      this.install(tmp, sha256, data.length);
    }
    this.written.add(sha256);
    return { sha256, size: data.length };
  }

  /** hashes a file and moves it into the store (copies it when `keep` is set) */
  async putFile(file: string, keep = false): Promise<OutputFile> {
    const size = statSync(file).size;
    const sha256 = await sha256File(file, size);
    if (this.has(sha256, size)) {
      if (!keep) rmSync(file, { force: true });
    } else if (keep) {
      const tmp = this.tempFile();
      copyFileSync(file, tmp);
      this.install(tmp, sha256);
    } else {
      this.install(file, sha256);
    }
    this.written.add(sha256);
    return { sha256, size };
  }

  /** moves a temp file (from tempFile()) whose sha256 the caller has just computed into the store */
  installVerified(tmp: string, sha256: string): void {
    this.install(tmp, sha256);
    this.written.add(sha256);
  }

  /** a fresh temp path inside the cache (same file system as the store) */
  tempFile(): string {
    mkdirSync(this.layout.tmp, { recursive: true });
    return this.tempName();
  }

  private tempName(): string {
    return join(this.layout.tmp, `blob-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /** `size`: the bytes just written, when they were in memory (then remembered present, with no stat on the next has()) */
  private install(tmp: string, sha256: string, size?: number): void {
    const target = this.path(sha256);
    try {
      inDir(dirname(target), () => renameSync(tmp, target));
    } catch (err) {
      // damage at the blob's path (a folder, say): it is not a blob, so it goes and the blob takes its place
      if (existsSync(target) && !lstatSync(target).isFile()) {
        rmSync(target, { recursive: true, force: true });
        renameSync(tmp, target);
      } else {
        rmSync(tmp, { force: true });
        if (!existsSync(target)) throw err;
      }
    }
    if (size === undefined) this.present?.delete(sha256); // re-stat'ed (for its size) on the next has()
    else this.present?.set(sha256, size);
  }
}

export async function hashStream(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
