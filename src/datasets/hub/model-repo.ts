// Files of Hugging Face *model* repos, pinned in lorafile.lock and kept in the HF cache
// (models--owner--name), with the datasets' machinery (revision -> commit, tree listing, resume,
// verify, offline, gated repos). Any stage can use it:
//
//   inputs():  const pin = await hubModelFilePin(ctx, { repo, file, revision });   // put `pin` in params
//   run():     const { path, sha256, commit } = await hubModelFile(ctx, { repo, file, revision });
//
// A pin is JSON ({ hub, revision, commit, file, files }) that the stage records in its params; the
// next run finds it there (anywhere in the stage's params) and makes no request. Within one
// process every stage gets the same pin for the same (repo, revision, file); a stage new to the
// lock takes the pin another stage already recorded. `--update owner/name` (or all) resolves again.
import type { Json, LockEntry, StageContext } from '../../engine/types.js';
import { lockPathFor, readLockfile } from '../../engine/lockfile.js';
import { parseHeader, parseHeaderLength, type SafetensorsHeader } from '../../safetensors/format.js';
import { readSafetensorsHeader } from '../../safetensors/io.js';
import { COMMIT_SHA, RepoCache } from './cache-layout.js';
import { ensureCached, type CachedFile } from './download.js';
import { hubEnv, type HubEnv } from './env.js';
import { HubError } from './errors.js';
import { hubFetch } from './http.js';
import { listRepoFilesCached, listRepoFilesOnline, type RepoFile } from './repo-files.js';
import { resolveUrl, type HubRepo } from './repo.js';
import { noteLinked, resolveRevisionCached, resolveRevisionOnline } from './revision.js';
import { updateRequested } from './fetch.js';

/** What a stage records to pin files of a model repo. `file: null`: the files of a diffusers repo. */
export interface HubRepoPin {
  hub: string;
  revision: string;
  commit: string;
  file: string | null;
  /** the pinned files: path -> blob name (LFS sha256, else git sha1) and size */
  files: Record<string, { etag: string; size: number }>;
}

export interface HubModelRef {
  repo: string;
  revision?: string;
  /** one file of the repo; null or absent: the repo's diffusers model files */
  file?: string | null;
}

export interface HubModelFile {
  /** snapshots/<commit>/<file> in the HF cache */
  path: string;
  sha256: string;
  commit: string;
}

const SHA256 = /^[0-9a-f]{64}$/;
/** diffusers model files worth pinning (everything a model folder may need, not docs or other formats) */
const DIFFUSERS_PATH = /^(model_index\.json|(unet|vae|text_encoder|tokenizer)\/[^/]+)$/;

function isPin(value: unknown): value is HubRepoPin {
  const v = value as HubRepoPin;
  return !!v && typeof v === 'object' && typeof v.hub === 'string' && typeof v.revision === 'string' && typeof v.commit === 'string' && COMMIT_SHA.test(v.commit) && (v.file === null || typeof v.file === 'string') && !!v.files && typeof v.files === 'object';
}

/** A pin for (repo, revision, file) anywhere inside a stage's params. */
function findPin(value: Json | undefined, repo: string, revision: string, file: string | null): HubRepoPin | undefined {
  if (!value || typeof value !== 'object') return undefined;
  if (isPin(value) && value.hub === repo && value.revision === revision && value.file === file) return value;
  for (const child of Array.isArray(value) ? value : Object.values(value)) {
    const found = findPin(child, repo, revision, file);
    if (found) return found;
  }
  return undefined;
}

/**
 * Per run (every stage of a run shares its abort signal): the pins resolved so far, so every stage
 * uses the same commit, and the lock as it was (a stage new to the lock reuses the pins of the others).
 */
interface RunPins {
  resolved: Map<string, Promise<HubRepoPin>>;
  lock?: Record<string, LockEntry>;
}
const runs = new WeakMap<object, RunPins>();

function runPins(ctx: StageContext): RunPins {
  let run = runs.get(ctx.signal);
  if (!run) runs.set(ctx.signal, (run = { resolved: new Map() }));
  return run;
}

function pinFromLock(ctx: StageContext, run: RunPins, repo: string, revision: string, file: string | null): HubRepoPin | undefined {
  if (!run.lock) {
    run.lock = {};
    try {
      run.lock = readLockfile(lockPathFor(ctx.config.file), ctx.cacheDir).lock.stages;
    } catch {
      // no lock, or one that does not parse: nothing pinned
    }
  }
  for (const entry of Object.values(run.lock)) {
    const pin = findPin(entry.params as Json, repo, revision, file);
    if (pin) return pin;
  }
  return undefined;
}

function notFound(repo: string, commit: string, file: string, files: RepoFile[]): HubError {
  const weights = files.map((f) => f.path).filter((p) => /\.(safetensors|ckpt|bin|pt)$/.test(p));
  const shown = weights.slice(0, 8).join(', ') + (weights.length > 8 ? `, … (${weights.length})` : '');
  return new HubError('http', `model ${repo} at ${commit} has no file ${file}`, {
    hint: weights.length ? `its weight files: ${shown}; fix \`file:\`` : 'check `file:` and the repo name',
  });
}

async function resolvePin(ctx: StageContext, env: HubEnv, repo: HubRepo, revision: string, file: string | null): Promise<HubRepoPin> {
  const cache = new RepoCache(env.cacheDir, repo);
  const onWait = (message: string) => ctx.progress(0, 0, message);
  let commit: string;
  let files: RepoFile[];
  if (env.offline) {
    commit = await resolveRevisionCached(cache, revision);
    files = (await listRepoFilesCached(cache, commit)).files;
  } else {
    commit = await resolveRevisionOnline(env, cache, revision, { signal: ctx.signal, onWait });
    files = await listRepoFilesOnline(env, cache, commit, { signal: ctx.signal, onWait });
  }
  const chosen = file === null ? files.filter((f) => DIFFUSERS_PATH.test(f.path)) : files.filter((f) => f.path === file);
  if (file !== null && chosen.length === 0) throw notFound(repo.id, commit, file, files);
  if (file === null && !chosen.some((f) => f.path === 'model_index.json' || f.path.startsWith('unet/'))) {
    const singles = files.map((f) => f.path).filter((p) => p.endsWith('.safetensors'));
    throw new HubError('bad-model', `model ${repo.id} at ${commit} is not a diffusers model (no model_index.json or unet/)`, {
      hint: singles.length ? `for a single-file checkpoint set \`file:\` to one of ${singles.slice(0, 5).join(', ')}` : 'check the repo name',
    });
  }
  const pinned: HubRepoPin['files'] = {};
  for (const f of chosen) pinned[f.path] = { etag: f.etag, size: f.size };
  return { hub: repo.id, revision, commit, file, files: pinned };
}

/**
 * The pin of a model repo's file (or, with `file` null, of its diffusers files): from the stage's
 * lock entry, another stage of this run or of the lock, else resolved (online, or offline from the
 * HF cache). Cheap once pinned: no request.
 */
export async function modelRepoPin(ctx: StageContext, ref: HubModelRef): Promise<HubRepoPin> {
  const repo: HubRepo = { kind: 'model', id: ref.repo };
  const revision = ref.revision ?? 'main';
  const file = ref.file ?? null;
  const update = updateRequested(ctx.options, ref.repo);
  if (!update) {
    const own = findPin(ctx.previous?.params as Json | undefined, ref.repo, revision, file);
    if (own) return own;
  }
  const env = hubEnv();
  const run = runPins(ctx);
  const key = JSON.stringify([env.endpoint, env.cacheDir, env.offline, ref.repo, revision, file]);
  let pending = run.resolved.get(key);
  if (!pending) {
    const fromLock = update ? undefined : pinFromLock(ctx, run, ref.repo, revision, file);
    pending = fromLock ? Promise.resolve(fromLock) : resolvePin(ctx, env, repo, revision, file);
    run.resolved.set(key, pending);
    pending.catch(() => run.resolved.delete(key));
  }
  return pending;
}

/** The pin of one file (for a stage's params); no download. */
export async function hubModelFilePin(ctx: StageContext, ref: HubModelRef & { file: string }): Promise<HubRepoPin> {
  return modelRepoPin(ctx, ref);
}

/** sha256 of a pinned file when the hub gave it (LFS files), without downloading it. */
export function pinnedSha256(pin: HubRepoPin, path: string): string | undefined {
  const etag = pin.files[path]?.etag;
  return etag && SHA256.test(etag) ? etag : undefined;
}

/** Brings pinned files into the HF cache (resume, verify; offline: from the cache or a clear error). */
export async function hubPinnedFiles(ctx: StageContext, pin: HubRepoPin, paths: string[]): Promise<CachedFile[]> {
  const env = hubEnv();
  const cache = new RepoCache(env.cacheDir, { kind: 'model', id: pin.hub });
  const files: RepoFile[] = paths.map((path) => {
    const entry = pin.files[path];
    if (!entry) throw new Error(`model ${pin.hub}: ${path} is not among the pinned files`);
    return { path, size: entry.size, etag: entry.etag, ...(SHA256.test(entry.etag) ? { sha256: entry.etag } : {}) };
  });
  const cached = await ensureCached(env, cache, pin.commit, files, {
    signal: ctx.signal,
    hashFile: (path) => ctx.hashFile(path),
    onProgress: (done, total, message) => ctx.progress(done, total, message, 'B'),
  });
  await noteLinked(cache, pin.revision, pin.commit);
  return cached;
}

/** One file of a model repo, in the HF cache, pinned: the primitive renders' hub LoRAs use. */
export async function hubModelFile(ctx: StageContext, ref: HubModelRef & { file: string }): Promise<HubModelFile> {
  const pin = await modelRepoPin(ctx, ref);
  const [file] = await hubPinnedFiles(ctx, pin, [ref.file]);
  return { path: file.abs, sha256: file.sha256, commit: pin.commit };
}

/**
 * The safetensors header of a pinned file: read from the HF cache when the file is there, else two
 * Range requests (the length, then the header), so a model is known (SD1? tiny? SDXL?) before
 * gigabytes are downloaded.
 */
export async function pinnedSafetensorsHeader(ctx: StageContext, pin: HubRepoPin, path: string): Promise<SafetensorsHeader> {
  const env = hubEnv();
  const repo: HubRepo = { kind: 'model', id: pin.hub };
  const cache = new RepoCache(env.cacheDir, repo);
  const local = await cache.resolveSnapshotFile(pin.commit, path);
  const size = pin.files[path]?.size ?? 0;
  if (local && local.size === size) return readSafetensorsHeader(local.pointer);
  const label = `${pin.hub}/${path}`;
  const fetch = hubFetch(env, { repo, revision: pin.commit, path }, { signal: ctx.signal, onWait: (m) => ctx.progress(0, 0, m) });
  const range = async (from: number, to: number): Promise<Buffer> => {
    const res = await fetch(resolveUrl(env, repo, pin.commit, path), { headers: { range: `bytes=${from}-${to}` } });
    // a server that ignores Range sends the whole file: read only as far as the asked-for bytes
    const skip = res.status === 206 ? 0 : from;
    const want = to - from + 1;
    const chunks: Buffer[] = [];
    let have = 0;
    const reader = res.body!.getReader();
    while (have < skip + want) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(Buffer.from(value));
      have += value.length;
    }
    await reader.cancel().catch(() => undefined);
    return Buffer.concat(chunks).subarray(skip, skip + want);
  };
  const length = parseHeaderLength(await range(0, 7), size, label);
  return parseHeader(await range(8, 8 + length - 1), size, label);
}
