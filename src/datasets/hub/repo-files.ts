// What a repo holds at a commit: from the hub's tree API (paginated) when online, remembered in the
// HF cache as trees/<sha>.json (the Python client's format) so that offline builds know the whole
// file list too; without that file, offline falls back to the cached snapshot and says so. Every
// entry is checked before anything trusts it.
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';
import { hubFetch, hubJson, type HubFetchOptions } from './http.js';
import { checkRepoPath, RepoCache, type TreeEntry } from './cache-layout.js';
import { apiUrl, repoLabel } from './repo.js';

export interface RepoFile {
  path: string;
  size: number;
  /** the name of its blob in the HF cache: the LFS sha256, else the git blob sha1 */
  etag: string;
  /** LFS files: the sha256 of the content, verified after download */
  sha256?: string;
}

/** A commit's files, and whether the list is known to be complete (hub or trees/<sha>.json) or only what the cached snapshot holds. */
export interface RepoListing {
  files: RepoFile[];
  complete: boolean;
}

const SHA1 = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** Larger than any file a hub stores (its limit is 50 GB per file): a listing saying more is refused. */
export const MAX_FILE_BYTES = 2 ** 40;

function badEntry(cache: RepoCache, path: unknown, what: string): HubError {
  return new HubError('bad-response', `${repoLabel(cache.repo)}: the hub's file list has ${what} for ${JSON.stringify(path)}`, {
    hint: 'HF_ENDPOINT may point at something that is not a Hugging Face hub',
  });
}

function checkSize(cache: RepoCache, path: string, size: unknown): number {
  if (!Number.isSafeInteger(size) || (size as number) < 0) throw badEntry(cache, path, 'a malformed size');
  if ((size as number) > MAX_FILE_BYTES) {
    throw new HubError('bad-response', `${repoLabel(cache.repo)}: the hub's file list says ${path} has ${size} bytes, more than any hub file can have`, {
      hint: 'HF_ENDPOINT may point at something that is not a Hugging Face hub, or its listing is damaged',
    });
  }
  return size as number;
}

function fromTree(entry: TreeEntry, cache: RepoCache): RepoFile {
  const path = typeof entry.path === 'string' ? checkRepoPath(entry.path, cache.repo) : '';
  if (!path) throw badEntry(cache, entry.path, 'no path');
  if (entry.lfs_sha256 !== undefined) {
    if (typeof entry.lfs_sha256 !== 'string' || !SHA256.test(entry.lfs_sha256)) throw badEntry(cache, path, 'a malformed LFS sha256');
    const size = checkSize(cache, path, entry.lfs_size ?? entry.size);
    return { path, size, etag: entry.lfs_sha256, sha256: entry.lfs_sha256 };
  }
  if (typeof entry.blob_id !== 'string' || !SHA1.test(entry.blob_id)) throw badEntry(cache, path, 'a malformed git oid');
  return { path, size: checkSize(cache, path, entry.size), etag: entry.blob_id };
}

/** An entry of the tree API ({type, path, size, oid, lfs?: {oid, size}}) in the tree cache's form. */
function treeEntryOf(raw: unknown): TreeEntry | undefined {
  const entry = raw as { type?: unknown; path?: unknown; size?: unknown; oid?: unknown; lfs?: { oid?: unknown; size?: unknown } | null };
  if (!entry || typeof entry !== 'object' || entry.type !== 'file') return undefined;
  return {
    path: entry.path as string,
    size: entry.size as number,
    blob_id: entry.oid as string,
    ...(entry.lfs ? { lfs_sha256: entry.lfs.oid as string, lfs_size: entry.lfs.size as number } : {}),
  };
}

function nextPage(link: string | null): string | undefined {
  return link ? /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] : undefined;
}

function sortByPath(files: RepoFile[]): RepoFile[] {
  return files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export async function listRepoFilesOnline(env: HubEnv, cache: RepoCache, sha: string, options: HubFetchOptions): Promise<RepoFile[]> {
  const repo = cache.repo;
  const fetch = hubFetch(env, { repo, revision: sha }, options);
  const entries: TreeEntry[] = [];
  let url: string | undefined = `${apiUrl(env, repo, 'tree', sha)}?recursive=true&expand=false`;
  try {
    for (let page = 0; url; page++) {
      if (page > 100_000) throw new HubError('bad-response', `${repoLabel(repo)}: the hub's file list does not end`);
      const res = await fetch(url);
      const body = await hubJson(res, env, `the file list of ${repoLabel(repo)}`);
      if (!Array.isArray(body)) throw badEntry(cache, '(the list itself)', 'no array');
      for (const raw of body) {
        const entry = treeEntryOf(raw);
        if (entry) entries.push(entry);
      }
      const next = nextPage(res.headers.get('link'));
      url = next && new URL(next, env.endpoint).origin === new URL(env.endpoint).origin ? next : undefined;
    }
  } catch (err) {
    if (err instanceof HubError && err.code === 'revision-not-found') {
      throw new HubError('revision-not-found', `${repoLabel(repo)} has no commit ${sha}`, {
        hint: `the history was rewritten on the hub, or the sha is mistyped; run \`lorabuild run --update ${repo.id}\` to pin what the revision names now`,
      });
    }
    throw err;
  }
  const files = sortByPath(entries.map((e) => fromTree(e, cache)));
  await cache.writeTree(sha, entries).catch(() => undefined); // a read-only cache still builds
  return files;
}

/**
 * Offline: the commit's files from trees/<sha>.json (complete), else those of the cached snapshot
 * (maybe partial). Blob names give the hashes back (sha256 for LFS files, git sha1 otherwise) so
 * cached files stay verifiable without the network.
 */
export async function listRepoFilesCached(cache: RepoCache, sha: string): Promise<RepoListing> {
  const tree = await cache.readTree(sha);
  if (tree) return { files: sortByPath(tree.map((e) => fromTree(e, cache))), complete: true };
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
  return { files, complete: false };
}

/**
 * Shards named `<prefix>-NNNNN-of-MMMMM.<ext>` that a partial file list lacks: a split read from
 * half a snapshot must not silently train on half the rows.
 */
export function missingShards(paths: string[]): string[] {
  const groups = new Map<string, { total: number; width: number; ext: string; seen: Set<number> }>();
  for (const path of paths) {
    const m = /^(.*)-(\d{5})-of-(\d{5})(\.[^/]*)$/.exec(path);
    if (!m) continue;
    const key = `${m[1]}|${m[3]}|${m[4]}`;
    const group = groups.get(key) ?? { total: Number(m[3]), width: m[2].length, ext: m[4], seen: new Set<number>() };
    group.seen.add(Number(m[2]));
    groups.set(key, group);
  }
  const missing: string[] = [];
  for (const [key, group] of groups) {
    const prefix = key.slice(0, key.indexOf('|'));
    for (let i = 0; i < group.total; i++) {
      if (!group.seen.has(i)) missing.push(`${prefix}-${String(i).padStart(group.width, '0')}-of-${String(group.total).padStart(group.width, '0')}${group.ext}`);
    }
  }
  return missing.sort();
}
