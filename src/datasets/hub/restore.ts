// Where the files of a hub listing are now. A listing names repo paths and sha256s, not places:
// they are looked up in the HF cache of this run (HF_HOME / HF_HUB_CACHE may have moved since
// fetch, or the cache been cleaned with huggingface-cli delete-cache). Files it no longer holds are
// fetched again for the same commit (and checked against the listing's sha256), or, offline,
// named with how to get them back.
import type { Listing } from '../manifest.js';
import { COMMIT_SHA, RepoCache } from './cache-layout.js';
import { ensureCached } from './download.js';
import { hubEnv } from './env.js';
import { HubError } from './errors.js';
import { sha256File } from './hashing.js';
import { listRepoFilesOnline } from './repo-files.js';
import { cliDownloadHint, type HubRepo } from './repo.js';

interface Needed {
  path: string;
  sha256: string;
  size: number;
}

function neededFiles(listing: Listing): Needed[] {
  if (listing.layout === 'parquet') return (listing.shards ?? []).map(({ path, sha256, size }) => ({ path, sha256, size }));
  return listing.entries.flatMap((e) => (e.image ? [{ path: e.image.path, sha256: e.image.sha256, size: e.image.size }] : []));
}

/** owner/name and commit of a hub listing (root is "owner/name@sha") */
export function listingRepo(listing: Listing): { repo: HubRepo; sha: string } {
  const repo = listing.root.slice(0, listing.root.lastIndexOf('@'));
  const sha = listing.revision ?? '';
  if (!COMMIT_SHA.test(sha) || !repo) throw new Error(`listing of ${listing.root} carries no commit sha`);
  return { repo: { kind: 'dataset', id: repo }, sha };
}

/** The cached file, if it is there with the listed content (a blob named by its sha256 is trusted as the Python client trusts it). */
async function cachedCopy(cache: RepoCache, sha: string, file: Needed): Promise<string | undefined> {
  const found = await cache.resolveSnapshotFile(sha, file.path);
  if (!found || found.size !== file.size) return undefined;
  const etag = RepoCache.etagOf(found.blob);
  if (etag !== file.sha256 && (await sha256File(found.blob)) !== file.sha256) return undefined;
  return found.pointer;
}

/**
 * Absolute paths (snapshots/<sha>/<path> in the current HF cache) of the listing's files, by repo
 * path; missing ones are downloaded again first.
 */
export async function locateListedFiles(listing: Listing, signal: AbortSignal): Promise<Map<string, string>> {
  const located = new Map<string, string>();
  if (listing.source !== 'hub') return located;
  const { repo, sha } = listingRepo(listing);
  const env = hubEnv();
  const cache = new RepoCache(env.cacheDir, repo);
  const files = neededFiles(listing);
  const gone: Needed[] = [];
  const found = await Promise.all(files.map((f) => cachedCopy(cache, sha, f)));
  files.forEach((f, i) => (found[i] ? located.set(f.path, found[i]) : gone.push(f)));
  if (gone.length === 0) return located;

  const names = gone.slice(0, 3).map((f) => f.path).join(', ') + (gone.length > 3 ? ` and ${gone.length - 3} more` : '');
  if (env.offline) {
    throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 and the Hugging Face cache (${env.cacheDir}) no longer holds ${names} of ${repo.id}@${sha}`, {
      hint: `run once without HF_HUB_OFFLINE to download them again (or \`${cliDownloadHint(repo, sha)}\`)`,
    });
  }
  const wanted = new Set(gone.map((f) => f.path));
  const listed = (await listRepoFilesOnline(env, cache, sha, { signal })).filter((f) => wanted.has(f.path));
  const restored = await ensureCached(env, cache, sha, listed, { signal });
  const expected = new Map(gone.map((f) => [f.path, f]));
  for (const file of restored) {
    if (file.sha256 !== expected.get(file.path)!.sha256) {
      throw new HubError('download-mismatch', `${repo.id}/${file.path} at ${sha} is not the file the fetch stage listed`, {
        hint: `run \`lorabuild run --update ${repo.id}\``,
      });
    }
    located.set(file.path, file.abs);
  }
  if (restored.length !== gone.length) {
    throw new HubError('http', `dataset ${repo.id} at ${sha} no longer has ${names}`, { hint: `run \`lorabuild run --update ${repo.id}\`` });
  }
  return located;
}
