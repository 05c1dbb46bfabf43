// fetch:DATASET — what the dataset source holds, as listing.json (src/datasets/manifest.ts).
// Folder datasets: every file of the folder enters the fingerprint by content hash (through the
// stat memo). Hub datasets are delegated to datasets/hub/fetch.ts, loaded only when one is used.
import type { DatasetSpec } from '../config/schema.js';
import type { Listing } from '../datasets/manifest.js';
import { resolveUserPath } from '../config/paths.js';
import { portableListing } from '../datasets/listing-paths.js';
import { listLocalDataset, type LocalListing } from '../datasets/local/list.js';
import type { Json, StageContext, StageImpl, StageInputs } from '../engine/types.js';

// Loaded on first use, so that folder datasets never load the hub client.
async function loadHub(name: string): Promise<typeof import('../datasets/hub/fetch.js')> {
  try {
    return await import('../datasets/hub/fetch.js');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error(`dataset '${name}': Hugging Face hub datasets are not available in this build (src/datasets/hub/fetch.ts is missing)`);
    }
    throw err;
  }
}

export function datasetSpec(ctx: StageContext): { name: string; spec: DatasetSpec } {
  const name = ctx.node.target;
  const spec = ctx.config.datasets[name];
  if (!spec) throw new Error(`${ctx.node.id}: the lorafile has no dataset '${name}'`);
  return { name, spec };
}

/** Listings found by inputs(), handed to run() so the folder is walked once per build. */
const listed = new WeakMap<StageInputs, LocalListing>();

function folderParams(spec: DatasetSpec, found: LocalListing): Record<string, Json> {
  const params: Record<string, Json> = { source: 'folder', folder: spec.folder!, layout: spec.layout };
  // Only an imagefolder reads a caption column; other layouts ignore the setting.
  if (found.layout === 'imagefolder') params.caption_column = spec.caption_column ?? 'text';
  return params;
}

async function listFolder(ctx: StageContext, spec: DatasetSpec): Promise<LocalListing> {
  return listLocalDataset({
    abs: resolveUserPath(ctx.config, spec.folder!), // a Windows drive path on POSIX: a positioned lorafile error
    folder: spec.folder!,
    layout: spec.layout,
    captionColumn: spec.caption_column ?? 'text',
    hashFile: (abs, stat) => ctx.hashFile(abs, stat),
    ...(ctx.knownHash ? { knownHash: ctx.knownHash } : {}),
    ...(ctx.walkFolder ? { walk: ctx.walkFolder } : {}),
    cacheDir: ctx.cacheDir,
  });
}

function sameFiles(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

function countsOf(listing: Listing): Json {
  const entries = listing.entries;
  // one pass (a watch counts 10,000 entries every save)
  let images = 0;
  let captions = 0;
  for (const e of entries) {
    if (e.image) images++;
    if (e.captionFile || e.captionText) captions++;
  }
  return {
    source: listing.source,
    layout: listing.layout,
    ...(listing.revision ? { revision: listing.revision } : {}),
    entries: entries.length,
    images,
    captions,
    shards: listing.shards?.length ?? 0,
    stray: listing.stray?.length ?? 0,
  };
}

export const stage: StageImpl = {
  kind: 'fetch',
  // 2: listings hold no absolute paths (hub: repo paths and sha256s; folders: relative, listing-paths.ts)
  version: 2,
  materializeTo: () => null,

  async inputs(ctx) {
    const { name, spec } = datasetSpec(ctx);
    if (spec.hub) return (await loadHub(name)).hubFetchInputs(ctx, name, spec);
    if (!spec.folder) throw new Error(`dataset '${name}' names no source: set \`folder:\` or \`hub:\``);
    const found = await listFolder(ctx, spec);
    const inputs: StageInputs = { params: folderParams(spec, found), files: found.files };
    listed.set(inputs, found);
    return inputs;
  },

  async run(ctx, inputs) {
    const { name, spec } = datasetSpec(ctx);
    let listing: Listing;
    if (spec.hub) {
      listing = await (await loadHub(name)).hubFetchRun(ctx, name, spec, inputs);
    } else {
      let found = listed.get(inputs)?.listing;
      if (!found) {
        const again = await listFolder(ctx, spec);
        if (!sameFiles(again.files, inputs.files)) {
          throw new Error(`dataset '${name}': files in ${spec.folder} changed while lorabuild was running; run it again`);
        }
        found = again.listing;
      }
      listing = found;
    }
    ctx.writeJson('listing.json', portableListing(ctx.config, listing) as unknown as Json, { trees: ['entries', 'stray'] });
    return { meta: countsOf(listing) };
  },
};
