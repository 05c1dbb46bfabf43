// What a dataset repo holds at a commit: from the hub's tree API (paginated) when online, from the
// cached snapshot when offline. Every entry is checked before anything trusts it.
import { listFiles } from '@huggingface/hub';
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';
import { hubFetch } from './http.js';
import { checkRepoPath, RepoCache } from './cache-layout.js';

export interface RepoFile {
  path: string;
  size: number;
  /** the name of its blob in the HF cache: the LFS sha256, else the git blob sha1 */
  etag: string;
  /** LFS files: the sha256 of the content, verified after download */
  sha256?: string;
}

const SHA1 = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;

function checkEntry(entry: { path: unknown; size: unknown; oid?: unknown; lfs?: { oid?: unknown; size?: unknown } }, repo: string): RepoFile {
  const path = typeof entry.path === 'string' ? checkRepoPath(entry.path, repo) : '';
  const bad = (what: string) =>
    new HubError('bad-response', `dataset ${repo}: the hub's file list has ${what} for ${JSON.stringify(entry.path)}`, {
      hint: 'HF_ENDPOINT may point at something that is not a Hugging Face hub',
    });
  if (!path) throw bad('no path');
  if (entry.lfs) {
    const { oid, size } = entry.lfs;
    if (typeof oid !== 'string' || !SHA256.test(oid)) throw bad('a malformed LFS sha256');
    if (!Number.isSafeInteger(size) || (size as number) < 0) throw bad('a malformed LFS size');
    return { path, size: size as number, etag: oid, sha256: oid };
  }
  if (typeof entry.oid !== 'string' || !SHA1.test(entry.oid)) throw bad('a malformed git oid');
  if (!Number.isSafeInteger(entry.size) || (entry.size as number) < 0) throw bad('a malformed size');
  return { path, size: entry.size as number, etag: entry.oid };
}

export async function listRepoFilesOnline(env: HubEnv, repo: string, sha: string, signal: AbortSignal): Promise<RepoFile[]> {
  const files: RepoFile[] = [];
  const entries = listFiles({
    repo: { type: 'dataset', name: repo },
    revision: sha,
    recursive: true,
    hubUrl: env.endpoint,
    fetch: hubFetch(env, { repo, revision: sha }, signal),
  });
  try {
    for await (const entry of entries) {
      if (entry.type === 'file') files.push(checkEntry(entry, repo));
    }
  } catch (err) {
    if (err instanceof HubError && err.code === 'revision-not-found') {
      throw new HubError('revision-not-found', `dataset ${repo} no longer has commit ${sha}, which lorafile.lock pins`, {
        hint: `the history was rewritten on the hub; run \`lorabuild run --update ${repo}\` to pin what the revision names now`,
      });
    }
    throw err;
  }
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Offline: the files of the cached snapshot. Blob names give the hashes back (sha256 for LFS files,
 * git sha1 otherwise) so downloads stay verifiable without the network.
 */
export async function listRepoFilesCached(cache: RepoCache, sha: string): Promise<RepoFile[]> {
  const files: RepoFile[] = [];
  for (const path of await cache.listSnapshot(sha)) {
    const found = await cache.resolveSnapshotFile(sha, path);
    if (!found) continue;
    const etag = RepoCache.etagOf(found.blob);
    if (!etag) {
      // a copied snapshot (no symlinks): its content is trusted as the Python client trusts it
      files.push({ path, size: found.size, etag: '' });
      continue;
    }
    files.push({ path, size: found.size, etag, ...(SHA256.test(etag) ? { sha256: etag } : {}) });
  }
  return files;
}
