// The HF cache is shared and can be cleaned (huggingface-cli delete-cache) after fetch ran; the
// lorabuild cache then still says fetch is fresh. Before prepare reads a listing, files missing
// from the HF cache are fetched again for the same commit (and checked against the listing's
// sha256), or, offline, named with how to get them back.
import { access } from 'node:fs/promises';
import type { Listing } from '../manifest.js';
import { COMMIT_SHA, RepoCache } from './cache-layout.js';
import { ensureCached } from './download.js';
import { hubEnv } from './env.js';
import { HubError } from './errors.js';
import { listRepoFilesOnline } from './repo-files.js';

interface Needed {
  path: string;
  abs: string;
  sha256: string;
}

function neededFiles(listing: Listing): Needed[] {
  if (listing.layout === 'parquet') return (listing.shards ?? []).map(({ path, abs, sha256 }) => ({ path, abs, sha256 }));
  return listing.entries.flatMap((e) => (e.image ? [{ path: e.image.path, abs: e.image.abs, sha256: e.image.sha256 }] : []));
}

async function missing(files: Needed[]): Promise<Needed[]> {
  const found = await Promise.all(files.map((f) => access(f.abs).then(() => true, () => false)));
  return files.filter((_, i) => !found[i]);
}

export async function restoreMissingFiles(listing: Listing, signal: AbortSignal): Promise<void> {
  if (listing.source !== 'hub') return;
  const gone = await missing(neededFiles(listing));
  if (gone.length === 0) return;
  const repo = listing.root.slice(0, listing.root.lastIndexOf('@'));
  const sha = listing.revision ?? '';
  const env = hubEnv();
  const names = gone.slice(0, 3).map((f) => f.path).join(', ') + (gone.length > 3 ? ` and ${gone.length - 3} more` : '');
  if (!COMMIT_SHA.test(sha)) throw new Error(`listing of ${listing.root} carries no commit sha`);
  if (env.offline) {
    throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 and the Hugging Face cache no longer holds ${names} of ${repo}@${sha}`, {
      hint: `run once without HF_HUB_OFFLINE to download them again (or \`huggingface-cli download ${repo} --repo-type dataset --revision ${sha}\`)`,
    });
  }
  const cache = new RepoCache(env.cacheDir, repo);
  const wanted = new Set(gone.map((f) => f.path));
  const files = (await listRepoFilesOnline(env, repo, sha, signal)).filter((f) => wanted.has(f.path));
  const restored = await ensureCached(env, cache, sha, files, { signal });
  const expected = new Map(gone.map((f) => [f.path, f]));
  for (const file of restored) {
    const want = expected.get(file.path)!;
    if (file.sha256 !== want.sha256 || file.abs !== want.abs) {
      throw new HubError('download-mismatch', `${repo}/${file.path} at ${sha} is not the file the fetch stage listed`, {
        hint: `run \`lorabuild run --update ${repo}\``,
      });
    }
  }
  if (restored.length !== gone.length) {
    throw new HubError('http', `dataset ${repo} at ${sha} no longer has ${names}`, { hint: `run \`lorabuild run --update ${repo}\`` });
  }
}
