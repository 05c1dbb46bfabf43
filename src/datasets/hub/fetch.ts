// The fetch stage for `hub: owner/name` datasets.
//   inputs: the commit sha the build is pinned to (from the lock; re-resolved only on --update, a
//           changed revision, or the first run). No file contents are requested here.
//   run:    list the commit's files, pick the split, bring its files into the HF cache (resume,
//           verify), and describe them as a Listing: repo paths and sha256s only, so the listing
//           (and the lock) are the same on every machine and for every HF cache location.
import { existsSync } from 'node:fs';
import type { DatasetSpec } from '../../config/schema.js';
import type { Json, StageContext, StageInputs } from '../../engine/types.js';
import type { Listing } from '../manifest.js';
import { COMMIT_SHA, RepoCache } from './cache-layout.js';
import { ensureCached } from './download.js';
import { hubEnv } from './env.js';
import { HubError } from './errors.js';
import { imagefolderEntries } from './imagefolder.js';
import { listRepoFilesCached, listRepoFilesOnline, missingShards } from './repo-files.js';
import { cliDownloadHint, type HubRepo } from './repo.js';
import { noteLinked, resolveRevisionCached, resolveRevisionOnline } from './revision.js';
import { pickSplit } from './split.js';

function hubRepo(name: string, spec: DatasetSpec): HubRepo {
  if (!spec.hub) throw new Error(`dataset ${name} has no hub: source`);
  return { kind: 'dataset', id: spec.hub };
}

/** --update owner/name (or all) asks to move the pin to what the revision names now. */
export function updateRequested(options: Record<string, Json>, repo: string): boolean {
  const raw = options.update;
  const asked = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return asked.some((value) => value === true || value === 'all' || value === repo);
}

function pinnedSha(ctx: StageContext, repo: string, revision: string): string | undefined {
  const params = ctx.previous?.params;
  if (!params || params.repo !== repo || params.revision !== revision) return undefined;
  return typeof params.sha === 'string' && COMMIT_SHA.test(params.sha) ? params.sha : undefined;
}

/** A fetch made offline from a cached snapshot without its file list may have seen only part of the split. */
const PARTIAL = 'listed_from_partial_snapshot';

export async function hubFetchInputs(ctx: StageContext, name: string, spec: DatasetSpec): Promise<StageInputs> {
  const repo = hubRepo(name, spec);
  const env = hubEnv();
  const cache = new RepoCache(env.cacheDir, repo);
  let sha = updateRequested(ctx.options, repo.id) ? undefined : pinnedSha(ctx, repo.id, spec.revision);
  if (!sha) {
    sha = env.offline
      ? await resolveRevisionCached(cache, spec.revision)
      : await resolveRevisionOnline(env, cache, spec.revision, { signal: ctx.signal, onWait: (m) => ctx.progress(0, 0, m) });
  }
  const params: Record<string, Json> = {
    source: 'hub',
    repo: repo.id,
    revision: spec.revision,
    sha,
    split: spec.split,
    image_column: spec.image_column,
    caption_column: spec.caption_column ?? null,
  };
  // offline without trees/<sha>.json only the cached snapshot is known: such a listing is made
  // again once online (unless the lock already holds one made online for this sha)
  const knownComplete = ctx.previous?.params.sha === sha && ctx.previous.params[PARTIAL] === undefined;
  if (env.offline && !knownComplete && !existsSync(cache.treeFile(sha))) params[PARTIAL] = true;
  return { params, files: {} };
}

export async function hubFetchRun(ctx: StageContext, name: string, spec: DatasetSpec, inputs: StageInputs): Promise<Listing> {
  const repo = hubRepo(name, spec);
  const sha = inputs.params.sha;
  if (typeof sha !== 'string' || !COMMIT_SHA.test(sha)) throw new Error(`fetch:${name}: inputs carry no commit sha`);
  const env = hubEnv();
  const cache = new RepoCache(env.cacheDir, repo);
  const onWait = (message: string) => ctx.progress(0, 0, message);

  let files;
  let complete = true;
  if (env.offline) {
    ({ files, complete } = await listRepoFilesCached(cache, sha));
    if (files.length === 0) {
      throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 and dataset ${repo.id} at ${sha} is not in the Hugging Face cache (${cache.snapshot(sha)} is missing or empty)`, {
        hint: `run once without HF_HUB_OFFLINE (or \`${cliDownloadHint(repo, sha)}\`)`,
      });
    }
  } else {
    files = await listRepoFilesOnline(env, cache, sha, { signal: ctx.signal, onWait });
  }
  const chosen = pickSplit(files, spec.split, repo.id);
  const wanted = chosen.layout === 'parquet' ? chosen.shards : [...chosen.images, ...chosen.metadata];
  if (!complete) {
    const missing = missingShards(wanted.map((f) => f.path));
    if (missing.length > 0) {
      const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? ` and ${missing.length - 5} more` : '');
      throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 and the Hugging Face cache holds only part of dataset ${repo.id} at ${sha}: ${shown} ${missing.length === 1 ? 'is' : 'are'} missing`, {
        hint: `run once without HF_HUB_OFFLINE to download the whole split (or \`${cliDownloadHint(repo, sha)}\`)`,
      });
    }
    ctx.log(`warning: offline, and the HF cache has no file list for ${repo.id}@${sha}: the split is what the cached snapshot holds; it is listed again once online`);
  }
  ctx.log(`${repo.id}@${sha.slice(0, 12)}: ${chosen.layout}, ${wanted.length} file(s) for split ${spec.split}`);

  const cached = await ensureCached(env, cache, sha, wanted, {
    signal: ctx.signal,
    hashFile: (path) => ctx.hashFile(path),
    onProgress: (done, total, message) => ctx.progress(done, total, message, 'B'),
  });
  await noteLinked(cache, spec.revision, sha);
  const byPath = new Map(cached.map((file) => [file.path, file]));
  const root = `${repo.id}@${sha}`;

  if (chosen.layout === 'parquet') {
    return {
      source: 'hub',
      layout: 'parquet',
      root,
      revision: sha,
      entries: [],
      shards: chosen.shards.map((shard) => {
        const file = byPath.get(shard.path)!;
        return { path: file.path, sha256: file.sha256, size: file.size };
      }),
    };
  }
  const images = chosen.images.map((f) => byPath.get(f.path)!);
  const metadata = chosen.metadata.map((f) => byPath.get(f.path)!);
  const entries = await imagefolderEntries(images, metadata, spec.caption_column, new Set(files.map((f) => f.path)));
  return { source: 'hub', layout: 'imagefolder', root, revision: sha, entries };
}
