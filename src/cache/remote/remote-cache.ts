// A Bazel-protocol HTTP remote cache (https://bazel.build/remote/caching#http-caching): action
// entries at {url}/ac/{fingerprint}, blobs at {url}/cas/{sha256}. Any server that stores what is
// PUT and serves it back works (nginx WebDAV, bazel-remote with AC validation off, S3 behind a proxy).
//
// Nothing from the server is trusted: an action entry is checked field by field against the stage
// that asked for it, and every blob is verified by sha256 and size before it enters the local CAS.
// A bad entry or blob is skipped with a warning (the stage is rebuilt locally and its upload
// replaces the bad copy). A server that cannot be reached turns the remote cache off for the rest of
// the command with one warning: it never fails a build.
import { rmSync } from 'node:fs';
import { SHA256_RE } from '../../engine/canonical.js';
import { checkOutputName } from '../../engine/outputs.js';
import type { StageNode, StageOutputs } from '../../engine/types.js';
import { withoutLocalLists, type ActionCache, type ActionEntry } from '../action-cache.js';
import type { Cas } from '../cas.js';
import type { RemoteHttpError, RequestOptions } from './http.js';
import { remoteCredentials, remoteSettings, type RemoteSettings } from './settings.js';

/** action entries are small JSON; anything bigger is not ours */
const MAX_ACTION_BYTES = 16 * 1024 * 1024;

/** the HTTP client (node:http and node:https) loads only when a remote cache is used */
const http = () => import('./http.js');

export interface RemoteStats {
  hits: number;
  misses: number;
  downloadedBytes: number;
  uploadedBytes: number;
  uploadedBlobs: number;
  rejected: number;
}

export interface RemoteCacheOptions {
  env?: NodeJS.ProcessEnv;
  /** warnings for the user (never contain credentials) */
  warn: (line: string) => void;
  signal?: AbortSignal;
  idleMs?: number;
}

export class RemoteCache {
  readonly url: string;
  readonly readOnly: boolean;
  readonly stats: RemoteStats = { hits: 0, misses: 0, downloadedBytes: 0, uploadedBytes: 0, uploadedBlobs: 0, rejected: 0 };
  private readonly auth: string | undefined;
  /** why the cache is off for the rest of this command */
  private off: string | undefined;
  private uploadsOff = false;
  /** blobs the server served wrongly: uploaded again even when HEAD says they are there */
  private readonly suspect = new Set<string>();

  constructor(
    settings: RemoteSettings,
    private readonly options: RemoteCacheOptions,
  ) {
    this.url = settings.url;
    this.readOnly = settings.readOnly;
    this.auth = remoteCredentials(settings.url, options.env ?? process.env).header;
  }

  get available(): boolean {
    return this.off === undefined;
  }

  private request(): RequestOptions {
    const headers: Record<string, string> = this.auth ? { authorization: this.auth } : {};
    return { headers, signal: this.options.signal, idleMs: this.options.idleMs };
  }

  /** a failure to talk to the server: off for the rest of the command, one warning */
  private down(err: unknown, doing: string): void {
    if (this.off !== undefined || this.options.signal?.aborted) return;
    const why = (err as Error).message;
    this.off = why;
    this.options.warn(`warning: remote cache ${this.url} unreachable while ${doing} (${why}); building locally without it`);
  }

  private refused(status: number, doing: string): void {
    if (this.off !== undefined) return;
    this.off = `HTTP ${status}`;
    const hint = status === 401 || status === 403 ? ': check LORABUILD_REMOTE_TOKEN or the netrc entry for its host' : '';
    this.options.warn(`warning: remote cache ${this.url} answered ${status} while ${doing}${hint}; building locally without it`);
  }

  private reject(node: StageNode, what: string): undefined {
    this.stats.rejected++;
    this.options.warn(`warning: remote cache entry for ${node.id} ignored: ${what}; rebuilding it locally`);
    return undefined;
  }

  /**
   * The stage's outputs from the remote cache, with every blob verified and put into the local CAS
   * and the entry recorded in the local action cache; undefined on a miss or a bad entry.
   */
  async fetch(node: StageNode, fingerprint: string, cas: Cas, actions: ActionCache): Promise<StageOutputs | undefined> {
    if (this.off !== undefined) return undefined;
    let answer;
    try {
      answer = await (await http()).getBuffer(`${this.url}/ac/${fingerprint}`, MAX_ACTION_BYTES, this.request());
    } catch (err) {
      if ((err as RemoteHttpError).code === 'E2BIG') return this.reject(node, `its action entry is larger than ${MAX_ACTION_BYTES} bytes`);
      this.down(err, `looking up ${node.id}`);
      return undefined;
    }
    if (answer.status === 404) {
      this.stats.misses++;
      return undefined;
    }
    if (answer.status !== 200 || !answer.body) {
      this.refused(answer.status, `looking up ${node.id}`);
      return undefined;
    }
    const entry = parseEntry(answer.body, node, fingerprint);
    if (typeof entry === 'string') return this.reject(node, entry);

    for (const [name, blob] of Object.entries(entry.outputs.files)) {
      if (cas.has(blob.sha256, blob.size)) continue;
      const ok = await this.download(name, blob.sha256, blob.size, cas);
      if (ok !== true) return ok === false ? undefined : this.reject(node, ok);
    }
    this.stats.hits++;
    actions.put({ ...withoutLocalLists(entry), createdAt: new Date().toISOString() });
    return entry.outputs;
  }

  /**
   * One blob by hash into the local CAS (check uses it for artifacts that are neither in out/ nor in
   * the cache); a bad copy on the server is warned about. True when the blob is now in the CAS.
   */
  async fetchBlob(label: string, sha256: string, size: number, cas: Cas): Promise<boolean> {
    if (this.off !== undefined) return false;
    const got = await this.download(label, sha256, size, cas);
    if (typeof got === 'string') {
      this.stats.rejected++;
      this.options.warn(`warning: remote cache copy of ${label} ignored: ${got.replace(/^its blob \S+ /, '')}`);
    }
    return got === true;
  }

  /** true: in the CAS; false: the server went away; string: what was wrong with the blob */
  private async download(label: string, sha256: string, size: number, cas: Cas): Promise<true | false | string> {
    const tmp = cas.tempFile();
    try {
      let got;
      try {
        got = await (await http()).getToFile(`${this.url}/cas/${sha256}`, tmp, size, this.request());
      } catch (err) {
        this.down(err, `downloading ${label}`);
        return false;
      }
      if (got.status === 404) return `its blob ${label} (${sha256.slice(0, 12)}…) is not on the server`;
      if (got.status !== 200) {
        this.refused(got.status, `downloading ${label}`);
        return false;
      }
      if (got.size !== size || got.sha256 !== sha256) {
        this.suspect.add(sha256);
        const what = got.size !== size ? `${got.size} bytes instead of ${size} (truncated or replaced)` : `sha256 ${got.sha256.slice(0, 12)}… instead of ${sha256.slice(0, 12)}…`;
        return `its blob ${label} is corrupted on the server: ${what}`;
      }
      cas.installVerified(tmp, sha256);
      this.stats.downloadedBytes += size;
      return true;
    } finally {
      rmSync(tmp, { force: true });
    }
  }

  /** Uploads a stage's outputs, then its action entry (so a reader never sees an entry without its blobs). */
  async upload(entry: ActionEntry, cas: Cas): Promise<void> {
    if (this.readOnly || this.uploadsOff || this.off !== undefined) return;
    for (const [name, blob] of Object.entries(entry.outputs.files)) {
      if (!(await this.uploadBlob(entry.stage, name, blob.sha256, blob.size, cas))) return;
    }
    const body = Buffer.from(JSON.stringify(withoutLocalLists(entry)));
    await this.putChecked(`${this.url}/ac/${entry.fingerprint}`, body, `uploading the action entry of ${entry.stage}`);
  }

  private async uploadBlob(stage: string, name: string, sha256: string, size: number, cas: Cas): Promise<boolean> {
    const url = `${this.url}/cas/${sha256}`;
    if (!this.suspect.has(sha256)) {
      try {
        const there = await (await http()).head(url, this.request());
        if (there.status === 200 && there.size === size) return true;
      } catch (err) {
        this.down(err, `uploading ${name} of ${stage}`);
        return false;
      }
    }
    const ok = await this.putChecked(url, { file: cas.path(sha256), size }, `uploading ${name} of ${stage}`);
    if (ok) {
      this.suspect.delete(sha256);
      this.stats.uploadedBytes += size;
      this.stats.uploadedBlobs++;
    }
    return ok;
  }

  private async putChecked(url: string, body: Buffer | { file: string; size: number }, doing: string): Promise<boolean> {
    let status;
    try {
      status = await (await http()).put(url, { ...this.request(), body });
    } catch (err) {
      this.down(err, doing);
      return false;
    }
    if (status >= 200 && status < 300) return true;
    if (status === 401 || status === 403 || status === 405) {
      this.uploadsOff = true;
      this.options.warn(`warning: remote cache ${this.url} refused an upload (HTTP ${status}) while ${doing}; reading from it only (use --remote-read-only to say so)`);
    } else {
      this.refused(status, doing);
    }
    return false;
  }
}

/** An action entry from the server, checked against the stage that wants it; a string says what is wrong. */
export function parseEntry(body: Buffer, node: StageNode, fingerprint: string): ActionEntry | string {
  let entry: ActionEntry;
  try {
    entry = JSON.parse(body.toString('utf8')) as ActionEntry;
  } catch {
    return 'its action entry is not JSON (truncated or not written by lorabuild)';
  }
  if (typeof entry !== 'object' || entry === null || entry.version !== 1) return 'its action entry is not a lorabuild v1 entry';
  if (entry.fingerprint !== fingerprint) return `its action entry is for fingerprint ${String(entry.fingerprint).slice(0, 12)}…, not ${fingerprint.slice(0, 12)}…`;
  if (entry.kind !== node.kind || entry.stage !== node.id) return `its action entry is for ${String(entry.stage)}, not ${node.id}`;
  const files = entry.outputs?.files;
  if (typeof files !== 'object' || files === null || Array.isArray(files)) return 'its action entry lists no outputs';
  for (const [name, blob] of Object.entries(files)) {
    const problem = checkOutputName(name);
    if (problem) return `its action entry has a bad output name: ${problem}`;
    if (typeof blob?.sha256 !== 'string' || !SHA256_RE.test(blob.sha256) || !Number.isSafeInteger(blob.size) || blob.size < 0) return `its output ${name} has no valid sha256 and size`;
  }
  return { ...entry, outputs: { files, meta: entry.outputs.meta ?? null } };
}

/** The remote cache a command should use (flags, env, user config), or undefined; throws ConfigError on a bad setting. */
export function openRemoteCache(flags: { url?: string; readOnly?: boolean }, options: RemoteCacheOptions): RemoteCache | undefined {
  const settings = remoteSettings(flags, options.env ?? process.env);
  return settings ? new RemoteCache(settings, options) : undefined;
}

/** `--remote-cache URL` and `--remote-read-only`, for the commands that read or write the remote cache */
export const remoteOptions = {
  'remote-cache': { type: 'string' },
  'remote-read-only': { type: 'boolean' },
} as const;

export const REMOTE_HELP = `  --remote-cache URL  a Bazel-protocol HTTP cache (…/ac/, …/cas/) shared with others: compute stages
                      are looked up there before they run and uploaded after
                      (also LORABUILD_REMOTE_CACHE or cache.remote in ~/.config/lorabuild/config.yaml;
                      '' turns it off; credentials: LORABUILD_REMOTE_TOKEN or ~/.netrc)
  --remote-read-only  only read from the remote cache (students reading the TA's cache)
`;
