// The fetch stage for `hub: owner/name` datasets.
//   inputs: the commit sha the build is pinned to (from the lock; re-resolved only on --update, a
//           changed revision, or the first run). No file contents are requested here.
//   run:    list the commit's files, pick the split, bring its files into the HF cache (resume,
//           verify), and describe them as a Listing.
import type { DatasetSpec } from '../../config/schema.js';
import type { Json, StageContext, StageInputs } from '../../engine/types.js';
import type { Listing } from '../manifest.js';
import { COMMIT_SHA, RepoCache } from './cache-layout.js';
import { ensureCached } from './download.js';
import { hubEnv } from './env.js';
import { HubError } from './errors.js';
import { imagefolderEntries } from './imagefolder.js';
import { listRepoFilesCached, listRepoFilesOnline } from './repo-files.js';
import { resolveRevisionCached, resolveRevisionOnline } from './revision.js';
import { pickSplit } from './split.js';

function hubRepo(name: string, spec: DatasetSpec): string {
  if (!spec.hub) throw new Error(`dataset ${name} has no hub: source`);
  return spec.hub;
}

/** --update owner/name (or all) asks to move the pin to what the revision names now. */
function updateRequested(options: Record<string, Json>, repo: string): boolean {
  const raw = options.update;
  const asked = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return asked.some((value) => value === true || value === 'all' || value === repo);
}

function pinnedSha(ctx: StageContext, repo: string, revision: string): string | undefined {
  const params = ctx.previous?.params;
  if (!params || params.repo !== repo || params.revision !== revision) return undefined;
  return typeof params.sha === 'string' && COMMIT_SHA.test(params.sha) ? params.sha : undefined;
}

export async function hubFetchInputs(ctx: StageContext, name: string, spec: DatasetSpec): Promise<StageInputs> {
  const repo = hubRepo(name, spec);
  const env = hubEnv();
  const cache = new RepoCache(env.cacheDir, repo);
  let sha = updateRequested(ctx.options, repo) ? undefined : pinnedSha(ctx, repo, spec.revision);
  if (!sha) {
    sha = env.offline ? await resolveRevisionCached(cache, spec.revision) : await resolveRevisionOnline(env, cache, spec.revision, ctx.signal);
  }
  return {
    params: {
      source: 'hub',
      repo,
      revision: spec.revision,
      sha,
      split: spec.split,
      image_column: spec.image_column,
      caption_column: spec.caption_column ?? null,
    },
    files: {},
  };
}

export async function hubFetchRun(ctx: StageContext, name: string, spec: DatasetSpec, inputs: StageInputs): Promise<Listing> {
  const repo = hubRepo(name, spec);
  const sha = inputs.params.sha;
  if (typeof sha !== 'string' || !COMMIT_SHA.test(sha)) throw new Error(`fetch:${name}: inputs carry no commit sha`);
  const env = hubEnv();
  const cache = new RepoCache(env.cacheDir, repo);

  let files;
  if (env.offline) {
    files = await listRepoFilesCached(cache, sha);
    if (files.length === 0) {
      throw new HubError('offline-not-cached', `HF_HUB_OFFLINE=1 and dataset ${repo} at ${sha} is not in the Hugging Face cache (${cache.snapshot(sha)} is missing or empty)`, {
        hint: `run once without HF_HUB_OFFLINE (or \`huggingface-cli download ${repo} --repo-type dataset --revision ${sha}\`)`,
      });
    }
  } else {
    files = await listRepoFilesOnline(env, repo, sha, ctx.signal);
  }
  const chosen = pickSplit(files, spec.split, repo);
  const wanted = chosen.layout === 'parquet' ? chosen.shards : [...chosen.images, ...chosen.metadata];
  ctx.log(`${repo}@${sha.slice(0, 12)}: ${chosen.layout}, ${wanted.length} file(s) for split ${spec.split}`);

  const cached = await ensureCached(env, cache, sha, wanted, {
    signal: ctx.signal,
    hashFile: (path) => ctx.hashFile(path),
    onProgress: (done, total, message) => ctx.progress(done, total, message, 'B'),
  });
  const byPath = new Map(cached.map((file) => [file.path, file]));
  const root = `${repo}@${sha}`;

  if (chosen.layout === 'parquet') {
    return {
      source: 'hub',
      layout: 'parquet',
      root,
      revision: sha,
      entries: [],
      shards: chosen.shards.map((shard) => {
        const file = byPath.get(shard.path)!;
        return { path: file.path, abs: file.abs, sha256: file.sha256, size: file.size };
      }),
    };
  }
  const images = chosen.images.map((f) => byPath.get(f.path)!);
  const metadata = chosen.metadata.map((f) => byPath.get(f.path)!);
  const entries = await imagefolderEntries(images, metadata, spec.caption_column, new Set(files.map((f) => f.path)));
  return { source: 'hub', layout: 'imagefolder', root, revision: sha, entries };
}
