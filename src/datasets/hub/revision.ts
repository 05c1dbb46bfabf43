// Resolving a revision (branch, tag, refs/convert/parquet or sha) to the commit sha the build pins.
// Online the hub answers; the ref is not written into the HF cache here but once a file of that
// commit is linked (noteLinked), as the Python client does, so a status that only resolves leaves
// no ref to a snapshot that does not exist.
import { access } from 'node:fs/promises';
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';
import { hubFetch, hubJson, type HubFetchOptions } from './http.js';
import { checkRevisionName, COMMIT_SHA, RepoCache } from './cache-layout.js';
import { apiUrl, cliDownloadHint, repoLabel, type HubRepo } from './repo.js';

/** revisions this process resolved online: "kind:id@revision" -> sha (their refs are written after the first link) */
const resolvedOnline = new Map<string, string>();

function refKey(repo: HubRepo, revision: string): string {
  return `${repo.kind}:${repo.id}@${revision}`;
}

export async function resolveRevisionOnline(env: HubEnv, cache: RepoCache, revision: string, options: HubFetchOptions): Promise<string> {
  const repo = cache.repo;
  checkRevisionName(revision, repo);
  if (COMMIT_SHA.test(revision)) return revision;
  const res = await hubFetch(env, { repo, revision }, options)(apiUrl(env, repo, 'revision', revision));
  const info = await hubJson(res, env, `the revision '${revision}' of ${repoLabel(repo)}`);
  const sha = (info as { sha?: unknown } | null)?.sha;
  if (typeof sha !== 'string' || !COMMIT_SHA.test(sha)) {
    throw new HubError('bad-response', `the hub did not return a commit sha for revision '${revision}' of ${repoLabel(repo)}`, {
      hint: 'HF_ENDPOINT may point at something that is not a Hugging Face hub',
    });
  }
  resolvedOnline.set(refKey(repo, revision), sha);
  return sha;
}

/**
 * Called once files of `sha` are linked into snapshots/<sha>/: writes refs/<revision> when this
 * process resolved `revision` to `sha` online (a sha taken from the lock may be old: no ref then).
 */
export async function noteLinked(cache: RepoCache, revision: string, sha: string): Promise<void> {
  if (resolvedOnline.get(refKey(cache.repo, revision)) === sha) await cache.writeRef(revision, sha);
}

export function offlineHint(repo: HubRepo, revision: string): string {
  return `run once without HF_HUB_OFFLINE (or fill the cache with \`${cliDownloadHint(repo, revision)}\`)`;
}

/** Offline: the sha the cache's refs/<revision> names, or the revision itself when it is a cached sha. */
export async function resolveRevisionCached(cache: RepoCache, revision: string): Promise<string> {
  checkRevisionName(revision, cache.repo);
  const sha = COMMIT_SHA.test(revision) ? revision : await cache.readRef(revision);
  const present = sha !== undefined && (await access(cache.snapshot(sha)).then(() => true, () => false));
  if (!sha || !present) {
    throw new HubError(
      'offline-not-cached',
      `HF_HUB_OFFLINE=1 and ${repoLabel(cache.repo)} at revision '${revision}' is not in the Hugging Face cache (${sha ? `no snapshot ${sha}` : `no refs/${revision}`} in ${cache.dir})`,
      { hint: offlineHint(cache.repo, revision) },
    );
  }
  return sha;
}
