// The Hugging Face cache layout, exactly as Python's huggingface_hub writes it, so both tools find
// each other's downloads (models--owner--name for models):
//   <HF_HUB_CACHE>/datasets--owner--name/blobs/<etag>            file contents (sha256 for LFS, git sha1 otherwise)
//   <HF_HUB_CACHE>/datasets--owner--name/refs/<revision>         commit sha a branch or tag pointed to
//   <HF_HUB_CACHE>/datasets--owner--name/snapshots/<sha>/<path>  relative symlink to ../../blobs/<etag>
//   <HF_HUB_CACHE>/datasets--owner--name/trees/<sha>.json        every file of the commit (format_version 1)
import { copyFile, lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { HubError } from './errors.js';
import { repoLabel, type HubRepo } from './repo.js';

export const COMMIT_SHA = /^[0-9a-f]{40}$/;
const ETAG = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
/** a snapshot entry being made by link() (left behind only by a killed run) */
const LINK_TEMP = /\.\d+\.[0-9a-z]+\.tmp$/;

/** Rejects repo paths that could escape the snapshot folder (a hostile repo controls them). */
export function checkRepoPath(path: string, repo: HubRepo): string {
  const segments = path.split('/');
  const bad =
    path.length === 0 ||
    path.length > 1024 ||
    path.includes('\\') ||
    path.includes('\0') ||
    /^[A-Za-z]:/.test(path) ||
    segments.some((s) => s === '' || s === '.' || s === '..');
  if (bad) {
    throw new HubError('bad-response', `${repoLabel(repo)} lists an unsafe file name ${JSON.stringify(path)}`, {
      hint: `lorabuild refuses names that are absolute or contain ".." or backslashes; ask the ${repo.kind} owner to rename the file`,
    });
  }
  return path;
}

export function checkRevisionName(revision: string, repo: HubRepo): string {
  if (revision.split('/').some((s) => s === '' || s === '.' || s === '..') || /[\\\0]/.test(revision)) {
    throw new HubError('revision-not-found', `revision ${JSON.stringify(revision)} of ${repoLabel(repo)} is not a valid branch, tag or sha`, {
      hint: 'use a name like main, v1.0, refs/convert/parquet or a 40-character commit sha',
    });
  }
  return revision;
}

/** One file of trees/<sha>.json: the tree API's fields, as huggingface_hub's tree cache stores them. */
export interface TreeEntry {
  path: string;
  size: number;
  /** git blob sha1 (of the LFS pointer for LFS files) */
  blob_id: string;
  lfs_sha256?: string;
  lfs_size?: number;
}

const TREE_FORMAT = 1;

async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(temp, text);
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

export class RepoCache {
  /** absolute datasets--owner--name (models--owner--name) folder */
  readonly dir: string;

  constructor(
    cacheDir: string,
    readonly repo: HubRepo,
  ) {
    const [owner, name] = repo.id.split('/');
    if (!owner || !name || repo.id.split('/').length !== 2 || [owner, name].some((p) => p === '.' || p === '..')) {
      throw new HubError('repo-not-found', `${JSON.stringify(repo.id)} is not a ${repo.kind} repo id`, { hint: `hub ${repo.kind}s look like owner/name` });
    }
    this.dir = join(cacheDir, `${repo.kind}s--${owner}--${name}`);
  }

  blob(etag: string): string {
    if (!ETAG.test(etag)) throw new HubError('bad-response', `${repoLabel(this.repo)}: the hub sent a malformed file hash ${JSON.stringify(etag)}`);
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

  /**
   * refs/<revision> -> sha. Only once snapshots/<sha>/ holds a link: a ref to a missing snapshot makes
   * the Python client's cache scan call the repo corrupted.
   */
  async writeRef(revision: string, sha: string): Promise<void> {
    if (revision === sha) return;
    const file = join(this.dir, 'refs', ...checkRevisionName(revision, this.repo).split('/'));
    if ((await readFile(file, 'utf8').catch(() => '')) === sha) return;
    await mkdir(dirname(file), { recursive: true });
    await writeAtomically(file, sha);
  }

  treeFile(sha: string): string {
    return join(this.dir, 'trees', `${sha}.json`);
  }

  /** The commit's whole file list as the Python client caches it (trees/<sha>.json), if cached. */
  async readTree(sha: string): Promise<TreeEntry[] | undefined> {
    let data: unknown;
    try {
      data = JSON.parse(await readFile(this.treeFile(sha), 'utf8'));
    } catch {
      return undefined;
    }
    const files = (data as { format_version?: unknown; files?: unknown }).files;
    if ((data as { format_version?: unknown }).format_version !== TREE_FORMAT || !files || typeof files !== 'object') return undefined;
    return Object.entries(files as Record<string, unknown>).map(([path, info]) => ({ path, ...(info as Omit<TreeEntry, 'path'>) }));
  }

  async writeTree(sha: string, entries: TreeEntry[]): Promise<void> {
    const files: Record<string, Omit<TreeEntry, 'path'>> = {};
    for (const { path, ...info } of [...entries].sort((a, b) => (a.path < b.path ? -1 : 1))) files[path] = info;
    const file = this.treeFile(sha);
    await mkdir(dirname(file), { recursive: true });
    await writeAtomically(file, JSON.stringify({ format_version: TREE_FORMAT, files }, null, 1));
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
      // resolve, not join: a link may hold an absolute target (copied caches, other tools)
      const blob = info.isSymbolicLink() ? resolve(dirname(pointer), await readlink(pointer)) : pointer;
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
