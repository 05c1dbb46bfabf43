// Resolving a revision (branch, tag, refs/convert/parquet or sha) to the commit sha the build pins.
import { datasetInfo } from '@huggingface/hub';
import type { HubEnv } from './env.js';
import { HubError } from './errors.js';
import { hubFetch } from './http.js';
import { checkRevisionName, COMMIT_SHA, RepoCache } from './cache-layout.js';
import { access } from 'node:fs/promises';

export async function resolveRevisionOnline(env: HubEnv, cache: RepoCache, revision: string, signal: AbortSignal): Promise<string> {
  const repo = cache.repo;
  checkRevisionName(revision, repo);
  const info = await datasetInfo({
    name: repo,
    revision,
    additionalFields: ['sha'],
    hubUrl: env.endpoint,
    fetch: hubFetch(env, { repo, revision }, signal),
  });
  const sha = (info as { sha?: unknown }).sha;
  if (typeof sha !== 'string' || !COMMIT_SHA.test(sha)) {
    throw new HubError('bad-response', `the hub did not return a commit sha for revision '${revision}' of dataset ${repo}`, {
      hint: 'HF_ENDPOINT may point at something that is not a Hugging Face hub',
    });
  }
  // as the Python client does, so `huggingface-cli` and offline runs see the same ref
  if (revision !== sha) await cache.writeRef(revision, sha);
  return sha;
}

export function offlineHint(repo: string, revision: string): string {
  return `run once without HF_HUB_OFFLINE (or fill the cache with \`huggingface-cli download ${repo} --repo-type dataset --revision ${revision}\`)`;
}

/** Offline: the sha the cache's refs/<revision> names, or the revision itself when it is a cached sha. */
export async function resolveRevisionCached(cache: RepoCache, revision: string): Promise<string> {
  checkRevisionName(revision, cache.repo);
  const sha = COMMIT_SHA.test(revision) ? revision : await cache.readRef(revision);
  const present = sha !== undefined && (await access(cache.snapshot(sha)).then(() => true, () => false));
  if (!sha || !present) {
    throw new HubError(
      'offline-not-cached',
      `HF_HUB_OFFLINE=1 and dataset ${cache.repo} at revision '${revision}' is not in the Hugging Face cache (${sha ? `no snapshot ${sha}` : `no refs/${revision}`} in ${cache.dir})`,
      { hint: offlineHint(cache.repo, revision) },
    );
  }
  return sha;
}
