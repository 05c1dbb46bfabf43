// The Hugging Face cache layout, exactly as Python's huggingface_hub writes it, so both tools find
// each other's downloads:
//   <HF_HUB_CACHE>/datasets--owner--name/blobs/<etag>            file contents (sha256 for LFS, git sha1 otherwise)
//   <HF_HUB_CACHE>/datasets--owner--name/refs/<revision>         commit sha a branch or tag pointed to
//   <HF_HUB_CACHE>/datasets--owner--name/snapshots/<sha>/<path>  relative symlink to ../../blobs/<etag>
import { copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { HubError } from './errors.js';

export const COMMIT_SHA = /^[0-9a-f]{40}$/;
const ETAG = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** a snapshot entry being made by link() (left behind only by a killed run) */
const LINK_TEMP = /\.\d+\.[0-9a-z]+\.tmp$/;

/** Rejects repo paths that could escape the snapshot folder (a hostile repo controls them). */
export function checkRepoPath(path: string, repo: string): string {
  const segments = path.split('/');
  const bad =
    path.length === 0 ||
    path.length > 1024 ||
    path.includes('\\') ||
    path.includes('\0') ||
    /^[A-Za-z]:/.test(path) ||
    segments.some((s) => s === '' || s === '.' || s === '..');
  if (bad) {
    throw new HubError('bad-response', `dataset ${repo} lists an unsafe file name ${JSON.stringify(path)}`, {
      hint: 'lorabuild refuses names that are absolute or contain ".." or backslashes; ask the dataset owner to rename the file',
    });
  }
  return path;
}

export function checkRevisionName(revision: string, repo: string): string {
  if (revision.split('/').some((s) => s === '' || s === '.' || s === '..') || /[\\\0]/.test(revision)) {
    throw new HubError('revision-not-found', `revision ${JSON.stringify(revision)} of dataset ${repo} is not a valid branch, tag or sha`, {
      hint: 'use a name like main, v1.0, refs/convert/parquet or a 40-character commit sha',
    });
  }
  return revision;
}

export class RepoCache {
  /** absolute datasets--owner--name folder */
  readonly dir: string;

  constructor(
    cacheDir: string,
    readonly repo: string,
  ) {
    const [owner, name] = repo.split('/');
    if (!owner || !name || repo.split('/').length !== 2 || [owner, name].some((p) => p === '.' || p === '..')) {
      throw new HubError('repo-not-found', `${JSON.stringify(repo)} is not a dataset repo id`, { hint: 'hub datasets look like owner/name' });
    }
    this.dir = join(cacheDir, `datasets--${owner}--${name}`);
  }

  blob(etag: string): string {
    if (!ETAG.test(etag)) throw new HubError('bad-response', `dataset ${this.repo}: the hub sent a malformed file hash ${JSON.stringify(etag)}`);
    return join(this.dir, 'blobs', etag);
  }

  snapshot(sha: string): string {
    return join(this.dir, 'snapshots', sha);
  }

  snapshotFile(sha: string, repoPath: string): string {
    return join(this.snapshot(sha), ...checkRepoPath(repoPath, this.repo).split('/'));
  }

  async readRef(revision: string): Promise<string | undefined> {
    try {
      const sha = (await readFile(join(this.dir, 'refs', ...checkRevisionName(revision, this.repo).split('/')), 'utf8')).trim();
      return COMMIT_SHA.test(sha) ? sha : undefined;
    } catch {
      return undefined;
    }
  }

  async writeRef(revision: string, sha: string): Promise<void> {
    const file = join(this.dir, 'refs', ...checkRevisionName(revision, this.repo).split('/'));
    await mkdir(dirname(file), { recursive: true });
    const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(temp, sha);
    await rename(temp, file);
  }

  /**
   * Points snapshots/<sha>/<path> at blobs/<etag>: a relative symlink, or a copy where links are
   * not allowed (Windows without developer mode). Made under a temporary name and renamed into
   * place, so a concurrent run never sees (or writes through) a half-made entry.
   */
  async link(sha: string, repoPath: string, etag: string): Promise<string> {
    const target = this.blob(etag);
    const pointer = this.snapshotFile(sha, repoPath);
    await mkdir(dirname(pointer), { recursive: true });
    const temp = `${pointer}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      await symlink(relative(dirname(pointer), target), temp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
      await copyFile(target, temp);
    }
    try {
      await rename(temp, pointer);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return pointer;
  }

  /** The blob a snapshot entry points to, or undefined when it is missing or dangling. */
  async resolveSnapshotFile(sha: string, repoPath: string): Promise<{ pointer: string; blob: string; size: number } | undefined> {
    const pointer = this.snapshotFile(sha, repoPath);
    try {
      const info = await lstat(pointer);
      const blob = info.isSymbolicLink() ? join(dirname(pointer), await readlink(pointer)) : pointer;
      const { size } = await stat(blob);
      return { pointer, blob, size };
    } catch {
      return undefined;
    }
  }

  /** Every file of a cached snapshot, as repo paths ('/' separators). */
  async listSnapshot(sha: string): Promise<string[]> {
    const root = this.snapshot(sha);
    const found: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const path = prefix ? `${prefix}/${entry.name}` : entry.name;
        if (entry.isDirectory()) await walk(join(dir, entry.name), path);
        else if ((entry.isSymbolicLink() || entry.isFile()) && !LINK_TEMP.test(entry.name)) found.push(path);
      }
    };
    try {
      await walk(root, '');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return found.sort();
  }

  /** The etag a cached snapshot entry's blob is named by (LFS sha256 or git sha1), if it is a symlink into blobs/. */
  static etagOf(blobPath: string): string | undefined {
    const name = basename(blobPath);
    return ETAG.test(name) ? name : undefined;
  }
}
