// Getting repo files into the HF cache: skip what is there, resume what was cut off (Range on the
// .incomplete file), verify everything (sha256 for LFS, git sha1 otherwise) before it is linked into
// snapshots/<sha>/ and used. A file already in the cache costs no request.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import PQueue from 'p-queue';
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';
import { hubFetch } from './http.js';
import { RepoCache } from './cache-layout.js';
import { gitBlobSha1, sha256File } from './hashing.js';
import type { RepoFile } from './repo-files.js';
import { offlineHint } from './revision.js';
import { lockBlob } from './blob-lock.js';

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

function resolveUrl(env: HubEnv, repo: string, sha: string, path: string): string {
  return `${env.endpoint}/datasets/${repo}/resolve/${sha}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/** Checks a complete file against the hub's hash; returns its sha256. */
async function verify(file: RepoFile, repo: string, path: string, hashFile: (p: string) => Promise<string>): Promise<string> {
  const sha256 = await hashFile(path);
  if (file.sha256 && sha256 !== file.sha256) {
    throw new HubError('download-mismatch', `${repo}/${file.path}: sha256 ${sha256} does not match the hub's ${file.sha256}`);
  }
  if (!file.sha256 && /^[0-9a-f]{40}$/.test(file.etag)) {
    const oid = await gitBlobSha1(path);
    if (oid !== file.etag) throw new HubError('download-mismatch', `${repo}/${file.path}: git sha1 ${oid} does not match the hub's ${file.etag}`);
  }
  return sha256;
}

class Downloader {
  private readonly fetch;
  private readonly inFlight = new Map<string, Promise<string>>();
  private done = 0;
  private total = 0;

  constructor(
    private readonly env: HubEnv,
    private readonly cache: RepoCache,
    private readonly sha: string,
    private readonly options: DownloadOptions,
  ) {
    this.fetch = hubFetch(env, { repo: cache.repo, revision: sha }, options.signal);
  }

  addTotal(bytes: number): void {
    this.total += bytes;
  }

  private report(message: string): void {
    this.options.onProgress?.(this.done, this.total, message);
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
      if ((await sizeOf(blob)) === file.size) return await verify(file, this.cache.repo, blob, sha256File);
      return await this.downloadLocked(file, blob);
    } finally {
      await release();
    }
  }

  /**
   * Writes the response body to the partial file. Every byte received before a dropped connection
   * reaches the disk (the file is closed, not destroyed), so the next attempt resumes after it.
   */
  private async appendBody(body: WebReadableStream, part: string, append: boolean, onBytes: (bytes: number) => void): Promise<void> {
    const out = createWriteStream(part, { flags: append ? 'a' : 'w' });
    const closed = new Promise<void>((resolve, reject) => {
      out.once('close', resolve);
      out.once('error', reject);
    });
    try {
      for await (const chunk of Readable.fromWeb(body)) {
        onBytes((chunk as Buffer).length);
        if (!out.write(chunk)) await once(out, 'drain');
      }
    } finally {
      out.end();
      await closed;
    }
  }

  private async downloadLocked(file: RepoFile, blob: string): Promise<string> {
    const { repo } = this.cache;
    const part = `${blob}.incomplete`;
    const retries = this.options.retries ?? 2;
    for (let attempt = 0; ; attempt++) {
      let have = (await sizeOf(part)) ?? 0;
      if (have > file.size) {
        await rm(part, { force: true });
        have = 0;
      }
      if (have === file.size) break;
      const res = await this.fetch(resolveUrl(this.env, repo, this.sha, file.path), {
        headers: have > 0 ? { range: `bytes=${have}-` } : {},
      });
      const resumed = res.status === 206 && (res.headers.get('content-range') ?? '').startsWith(`bytes ${have}-`);
      if (!resumed) have = 0;
      this.done += have;
      let received = have;
      if (!res.body) throw new HubError('bad-response', `${repo}/${file.path}: the hub sent no content`);
      try {
        await this.appendBody(res.body as WebReadableStream, part, resumed, (bytes) => {
          received += bytes;
          if (received > file.size) {
            throw new HubError('download-mismatch', `${repo}/${file.path}: the hub sent more than the ${file.size} bytes its file list announced`);
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
        throw new HubError(
          'network',
          `download of ${repo}/${file.path} was interrupted after ${kept} of ${file.size} bytes (${(err as Error).message})`,
          { hint: `the partial file is kept as ${part}; run again to resume from byte ${kept}`, cause: err },
        );
      }
      this.done -= received;
      if (received === file.size) break;
      if (attempt >= retries) {
        throw new HubError('network', `download of ${repo}/${file.path} ended after ${received} of ${file.size} bytes`, {
          hint: `the partial file is kept as ${part}; run again to resume`,
        });
      }
    }
    let sha256: string;
    try {
      sha256 = await verify(file, repo, part, sha256File);
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

  const one = async (file: RepoFile): Promise<CachedFile> => {
    options.signal.throwIfAborted();
    const linked = await cache.resolveSnapshotFile(sha, file.path);
    const etagMatches = linked && (file.etag === '' || RepoCache.etagOf(linked.blob) === file.etag || RepoCache.etagOf(linked.blob) === undefined);
    if (linked && etagMatches && linked.size === file.size) {
      try {
        return { path: file.path, abs: linked.pointer, blob: linked.blob, size: file.size, sha256: await verify(file, cache.repo, linked.blob, hashFile) };
      } catch (err) {
        if (env.offline) {
          throw new HubError('download-mismatch', `the cached copy of ${cache.repo}/${file.path} is damaged: ${(err as Error).message}`, {
            hint: `${offlineHint(cache.repo, sha)} to download it again`,
          });
        }
        await rm(linked.blob, { force: true });
      }
    }
    if (env.offline || file.etag === '') {
      throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 and ${cache.repo}/${file.path} (revision ${sha}) is not in the Hugging Face cache ${cache.dir}`, {
        hint: offlineHint(cache.repo, sha),
      });
    }
    const blob = cache.blob(file.etag);
    let sha256: string;
    if ((await sizeOf(blob)) === file.size) {
      sha256 = await verify(file, cache.repo, blob, hashFile).catch(async (err: unknown) => {
        await rm(blob, { force: true });
        throw new HubError('download-mismatch', `${(err as Error).message}; the damaged cache file was removed`, { hint: 'run again to download it afresh' });
      });
    } else {
      downloader.addTotal(file.size);
      sha256 = await downloads.add(() => downloader.blob(file));
    }
    const abs = await cache.link(sha, file.path, file.etag);
    return { path: file.path, abs, blob, size: file.size, sha256 };
  };

  return Promise.all(files.map((file) => checks.add(() => one(file))));
}
