// Getting repo files into the HF cache: skip what is there, resume what was cut off (Range on the
// .incomplete file), stream to disk (never a whole file in memory), verify everything (sha256 for
// LFS, git sha1 otherwise) before it is linked into snapshots/<sha>/ and used. A file already in
// the cache costs no request; leftovers of a killed download whose blob another tool completed
// are cleaned up.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';
import { hubFetch, type Fetch } from './http.js';
import { RepoCache } from './cache-layout.js';
import { gitBlobSha1, sha256File } from './hashing.js';
import type { RepoFile } from './repo-files.js';
import { offlineHint } from './revision.js';
import { lockBlob } from './blob-lock.js';
import { repoLabel, resolveUrl } from './repo.js';
import { formatBytes } from './bytes.js';

export interface CachedFile {
  path: string;
  /** snapshots/<sha>/<path> */
  abs: string;
  /** the blob the snapshot entry points to */
  blob: string;
  sha256: string;
  size: number;
}

export interface DownloadOptions {
  signal: AbortSignal;
  /** sha256 of a file that is already in the cache (the engine's stat memo avoids re-reading it) */
  hashFile?: (path: string) => Promise<string>;
  /** bytes done and to do, and the file (or what the download waits for) */
  onProgress?: (doneBytes: number, totalBytes: number, message: string) => void;
  /** parallel downloads (the Python client uses 8) */
  concurrency?: number;
  /** further attempts after a dropped connection within one run, each resuming with Range */
  retries?: number;
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/** Checks a complete file against the hub's hash; returns its sha256. */
async function verify(file: RepoFile, cache: RepoCache, path: string, hashFile: (p: string) => Promise<string>): Promise<string> {
  const sha256 = await hashFile(path);
  const name = `${cache.repo.id}/${file.path}`;
  if (file.sha256 && sha256 !== file.sha256) {
    throw new HubError('download-mismatch', `${name}: sha256 ${sha256} does not match the hub's ${file.sha256}`);
  }
  if (!file.sha256 && /^[0-9a-f]{40}$/.test(file.etag)) {
    const oid = await gitBlobSha1(path);
    if (oid !== file.etag) throw new HubError('download-mismatch', `${name}: git sha1 ${oid} does not match the hub's ${file.etag}`);
  }
  return sha256;
}

/** A stalled body (no bytes for the timeout) is a dropped connection: the caller resumes with Range. */
class Stalled extends Error {}

/**
 * A killed download leaves <blob>.incomplete and <blob>.lock behind; once the blob is complete
 * (another run, or the Python client, finished it) they are removed, under the blob's lock so a
 * download in progress is never pulled from under its writer.
 */
async function cleanLeftovers(blob: string, signal: AbortSignal): Promise<void> {
  const part = `${blob}.incomplete`;
  if ((await sizeOf(part)) === undefined) return;
  const release = await lockBlob(`${blob}.lock`, signal);
  try {
    await rm(part, { force: true });
  } finally {
    await release();
  }
}

async function checkDiskSpace(cache: RepoCache, bytes: number): Promise<void> {
  if (bytes <= 0) return;
  let dir = cache.dir;
  let free: number | undefined;
  for (let i = 0; i < 8 && free === undefined; i++) {
    try {
      const fs = await statfs(dir);
      free = fs.bavail * fs.bsize;
    } catch {
      dir = dirname(dir);
    }
  }
  if (free !== undefined && bytes > free) {
    throw new HubError('no-space', `${repoLabel(cache.repo)} needs ${formatBytes(bytes)} in ${cache.dir}, but only ${formatBytes(free)} are free`, {
      hint: 'free some space (`huggingface-cli delete-cache` removes old downloads) or point HF_HUB_CACHE at a bigger disk',
    });
  }
}

class Downloader {
  private readonly fetch: Fetch;
  private readonly inFlight = new Map<string, Promise<string>>();
  private done = 0;
  private total = 0;

  constructor(
    private readonly env: HubEnv,
    private readonly cache: RepoCache,
    private readonly sha: string,
    private readonly options: DownloadOptions,
  ) {
    this.fetch = hubFetch(env, { repo: cache.repo, revision: sha }, { signal: options.signal, onWait: (message) => this.options.onProgress?.(this.done, this.total, message) });
  }

  addTotal(bytes: number): void {
    this.total += bytes;
  }

  get pendingBytes(): number {
    return this.total;
  }

  /** bytes done and to do (the engine adds the rate and the time left), and the file */
  private report(path: string): void {
    this.options.onProgress?.(this.done, this.total, path);
  }

  /** Downloads a blob once per run, even when several paths share its content; returns its sha256. */
  blob(file: RepoFile): Promise<string> {
    let pending = this.inFlight.get(file.etag);
    if (!pending) {
      pending = this.download(file);
      this.inFlight.set(file.etag, pending);
    }
    return pending;
  }

  private async download(file: RepoFile): Promise<string> {
    const blob = this.cache.blob(file.etag);
    await mkdir(dirname(blob), { recursive: true });
    const release = await lockBlob(`${blob}.lock`, this.options.signal);
    try {
      // another process may have finished it while this one waited for the lock
      if ((await sizeOf(blob)) === file.size) {
        await rm(`${blob}.incomplete`, { force: true });
        return await verify(file, this.cache, blob, sha256File);
      }
      return await this.downloadLocked(file, blob);
    } finally {
      await release();
    }
  }

  /**
   * Writes the response body to the partial file. Every byte received before a dropped or stalled
   * connection reaches the disk (the file is closed, not destroyed), so the next attempt resumes after it.
   */
  private async appendBody(body: ReadableStream<Uint8Array>, part: string, append: boolean, onBytes: (bytes: number) => void): Promise<void> {
    const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
    const closed = new Promise<void>((resolve, reject) => {
      out.once('close', resolve);
      out.once('error', reject);
    });
    const reader = body.getReader();
    const stallMs = this.env.timeoutS * 1000;
    try {
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Stalled(`no data for ${this.env.timeoutS} s`)), stallMs);
        });
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await Promise.race([reader.read(), stalled]);
        } finally {
          clearTimeout(timer);
        }
        if (chunk.done) break;
        onBytes(chunk.value.length);
        if (!out.write(chunk.value)) await once(out, 'drain');
      }
    } catch (err) {
      await reader.cancel().catch(() => undefined);
      throw err;
    } finally {
      out.end();
      await closed;
    }
  }

  private async downloadLocked(file: RepoFile, blob: string): Promise<string> {
    const { repo } = this.cache;
    const name = `${repo.id}/${file.path}`;
    const part = `${blob}.incomplete`;
    const retries = this.options.retries ?? 2;
    for (let attempt = 0; ; attempt++) {
      let have = (await sizeOf(part)) ?? 0;
      if (have > file.size) {
        await rm(part, { force: true });
        have = 0;
      }
      if (have === file.size) {
        if (file.size === 0) await writeFile(part, ''); // an empty file has nothing to download
        break;
      }
      let res: Response;
      try {
        res = await this.fetch(resolveUrl(this.env, repo, this.sha, file.path), { headers: have > 0 ? { range: `bytes=${have}-` } : {} });
      } catch (err) {
        if (err instanceof HubError && err.code === 'http' && /^416 /.test(err.summary) && have > 0) {
          // the hub has less than the partial file: it is not this file's start; begin afresh
          await rm(part, { force: true });
          if (attempt < retries) continue;
        }
        throw err;
      }
      const resumed = res.status === 206 && (res.headers.get('content-range') ?? '').startsWith(`bytes ${have}-`);
      if (!resumed) have = 0;
      const length = Number(res.headers.get('content-length') ?? NaN);
      if (!resumed && Number.isFinite(length) && length !== file.size) {
        await res.body?.cancel();
        throw new HubError('download-mismatch', `${name}: the hub's file list says ${file.size} bytes (${formatBytes(file.size)}) but the download has ${length}`, {
          hint: 'the hub (or a proxy) serves a different file than it lists; run again later, and if it persists tell the repo owner',
        });
      }
      this.done += have;
      let received = have;
      if (!res.body) throw new HubError('bad-response', `${name}: the hub sent no content`);
      try {
        await this.appendBody(res.body, part, resumed, (bytes) => {
          received += bytes;
          if (received > file.size) {
            throw new HubError('download-mismatch', `${name}: the hub sent more than the ${file.size} bytes its file list announced`);
          }
          this.done += bytes;
          this.report(file.path);
        });
      } catch (err) {
        if (this.options.signal.aborted) throw err;
        if (err instanceof HubError) {
          await rm(part, { force: true });
          throw err;
        }
        this.done -= received;
        if (attempt < retries) {
          await sleep(250 * (attempt + 1), undefined, { signal: this.options.signal });
          continue;
        }
        const kept = (await sizeOf(part)) ?? 0;
        throw new HubError('network', `download of ${name} was interrupted after ${kept} of ${file.size} bytes (${(err as Error).message})`, {
          hint: `the partial file is kept as ${part}; run again to resume from byte ${kept}`,
          cause: err,
        });
      }
      this.done -= received;
      if (received === file.size) break;
      if (attempt >= retries) {
        throw new HubError('network', `download of ${name} ended after ${received} of ${file.size} bytes`, {
          hint: `the partial file is kept as ${part}; run again to resume`,
        });
      }
    }
    let sha256: string;
    try {
      sha256 = await verify(file, this.cache, part, sha256File);
    } catch (err) {
      await rm(part, { force: true });
      throw new HubError('download-mismatch', `${(err as Error).message}; the damaged download was removed`, {
        hint: 'run again to download it afresh; if it keeps failing, the hub or a proxy is altering the file',
      });
    }
    await rename(part, blob);
    this.done += file.size;
    this.report(file.path);
    return sha256;
  }
}

/**
 * Makes every file available under snapshots/<sha>/ and returns them verified, in the order given.
 * Offline, a missing file fails with what is missing and how to fill the cache.
 */
export async function ensureCached(env: HubEnv, cache: RepoCache, sha: string, files: RepoFile[], options: DownloadOptions): Promise<CachedFile[]> {
  const hashFile = options.hashFile ?? sha256File;
  const downloader = new Downloader(env, cache, sha, options);
  const downloads = new PQueue({ concurrency: options.concurrency ?? 8 });
  const checks = new PQueue({ concurrency: 32 });

  const missingOffline = (file: RepoFile) =>
    new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 and ${cache.repo.id}/${file.path} (revision ${sha}) is not in the Hugging Face cache ${cache.dir}`, {
      hint: offlineHint(cache.repo, sha),
    });

  // what is missing, so that the disk can be checked before anything downloads
  const plan = await Promise.all(
    files.map((file) =>
      checks.add(async () => {
        const linked = await cache.resolveSnapshotFile(sha, file.path);
        const etag = linked && RepoCache.etagOf(linked.blob);
        const usable = linked && (file.etag === '' || etag === file.etag || etag === undefined) && linked.size === file.size;
        return { file, linked: usable ? linked : undefined };
      }),
    ),
  );
  if (!env.offline) {
    const blobSizes = await Promise.all(plan.map(async (p) => (p.linked || p.file.etag === '' ? p.file.size : (await sizeOf(cache.blob(p.file.etag))) === p.file.size ? p.file.size : 0)));
    const needed = plan.reduce((sum, p, i) => sum + (p.file.size - blobSizes[i]), 0);
    await checkDiskSpace(cache, needed);
  }

  const one = async ({ file, linked }: (typeof plan)[number]): Promise<CachedFile> => {
    options.signal.throwIfAborted();
    if (linked) {
      try {
        const sha256 = await verify(file, cache, linked.blob, hashFile);
        if (linked.blob !== linked.pointer) await cleanLeftovers(linked.blob, options.signal);
        return { path: file.path, abs: linked.pointer, blob: linked.blob, size: file.size, sha256 };
      } catch (err) {
        if (!(err instanceof HubError)) throw err;
        if (env.offline) {
          throw new HubError('download-mismatch', `the cached copy of ${cache.repo.id}/${file.path} is damaged: ${err.message}`, {
            hint: `${offlineHint(cache.repo, sha)} to download it again`,
          });
        }
        await rm(linked.blob, { force: true });
      }
    }
    if (env.offline || file.etag === '') throw missingOffline(file);
    const blob = cache.blob(file.etag);
    let sha256: string;
    if ((await sizeOf(blob)) === file.size) {
      sha256 = await verify(file, cache, blob, hashFile).catch(async (err: unknown) => {
        await rm(blob, { force: true });
        throw new HubError('download-mismatch', `${(err as Error).message}; the damaged cache file was removed`, { hint: 'run again to download it afresh' });
      });
      await cleanLeftovers(blob, options.signal);
    } else {
      downloader.addTotal(file.size);
      sha256 = await downloads.add(() => downloader.blob(file));
    }
    const abs = await cache.link(sha, file.path, file.etag);
    return { path: file.path, abs, blob, size: file.size, sha256 };
  };

  return Promise.all(plan.map((p) => checks.add(() => one(p))));
}
