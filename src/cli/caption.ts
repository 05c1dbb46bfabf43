// lorabuild caption DATASET --model PATH|owner/name [-f lorafile] [--overwrite] [--drafts]
//                   [--general 0.35] [--character 0.85] [--batch 8] [--json]
// Drafts captions with a WD14-layout tagger. Existing captions are never touched unless --overwrite:
// by default only missing captions are written; --drafts also writes a <caption>.draft next to each
// existing caption for review.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseCommandArgs, UsageError } from './args.js';
import { loadConfig } from '../config/load.js';
import { reportConfigError } from '../config/format.js';
import { didYouMean } from '../config/suggest.js';
import { listLocalDataset } from '../datasets/local/list.js';
import { resolveDatasetFolder } from '../datasets/local/folder.js';
import { withoutExtension } from '../datasets/local/draft.js';
import { writeFileAtomic } from '../cache/atomic.js';
import { findModelDir } from '../onnx/find-model.js';
import { DEFAULT_THRESHOLDS, Tagger, draftCaption } from '../onnx/tagger.js';
import { OnnxModelError } from '../onnx/signature.js';
import type { ListingEntry } from '../datasets/manifest.js';

const HELP = `usage: lorabuild caption DATASET --model PATH|owner/name [-f lorafile.yaml] [--overwrite] [--drafts]
                         [--general 0.35] [--character 0.85] [--batch 8] [--json]

Drafts captions for a local dataset with a WD14-style tagger (model.onnx + selected_tags.csv): the
dataset's trigger first, then tags by confidence. Missing captions are written; existing ones are kept
(--drafts writes <caption>.draft beside them, --overwrite replaces them).
`;

type Action = 'wrote' | 'draft' | 'overwrote' | 'kept';

export async function main(argv: string[]): Promise<number> {
  try {
    return await caption(argv);
  } catch (err) {
    if (err instanceof UsageError) return fail(err.message);
    throw err;
  }
}

async function caption(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandArgs(argv, {
      file: { type: 'string', short: 'f' },
      model: { type: 'string', short: 'm' },
      overwrite: { type: 'boolean' },
      drafts: { type: 'boolean' },
      general: { type: 'string' },
      character: { type: 'string' },
      batch: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    }, 'caption');
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(`${err.message}\n\n${HELP}`);
    throw err;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const [datasetName] = positionals;
  if (!datasetName || !values.model) return fail(`lorabuild caption: name a dataset and --model\n\n${HELP}`);
  const thresholds = {
    general: numberOption(values.general, DEFAULT_THRESHOLDS.general, '--general'),
    character: numberOption(values.character, DEFAULT_THRESHOLDS.character, '--character'),
  };
  const batch = Math.max(1, Math.floor(numberOption(values.batch, 8, '--batch')));

  let config;
  try {
    config = await loadConfig(values.file);
  } catch (err) {
    return reportConfigError(err);
  }
  const spec = config.datasets[datasetName];
  if (!spec) {
    const guess = didYouMean(datasetName, Object.keys(config.datasets));
    return fail(`lorabuild caption: no dataset '${datasetName}' in ${config.file}${guess ? `; did you mean '${guess}'?` : ''}`);
  }
  if (!spec.folder) return fail(`lorabuild caption: dataset '${datasetName}' comes from the hub; captions can be drafted for local folders only`);

  let tagger: Tagger;
  try {
    tagger = await Tagger.load(await findModelDir(values.model, [['model.onnx'], ['selected_tags.csv']], config.root));
  } catch (err) {
    if (err instanceof OnnxModelError) return fail(`lorabuild caption: ${err.message}`);
    throw err;
  }

  const root = resolveDatasetFolder(config.root, spec.folder);
  const { listing } = await listLocalDataset({ abs: root, folder: spec.folder, layout: spec.layout, captionColumn: spec.caption_column ?? 'text', hashFile: async () => '' });
  if (listing.layout === 'imagefolder' && values.overwrite) return fail('lorabuild caption: --overwrite is not supported for imagefolder datasets (captions live in metadata.jsonl); drafts go to metadata.draft.jsonl');

  const withImages = listing.entries.filter((e): e is LocalEntry => !!e.image?.abs);
  const metadataDrafts: string[] = [];
  const counts: Record<Action, number> = { wrote: 0, draft: 0, overwrote: 0, kept: 0 };
  for (let start = 0; start < withImages.length; start += batch) {
    const chunk = withImages.slice(start, start + batch);
    const scores = await tagger.score(chunk.map((e) => e.image.abs), batch);
    chunk.forEach((entry, i) => {
      const caption = draftCaption(tagger.select(scores[i], thresholds), spec.trigger);
      const { action, path } = place(entry, listing.layout, root, caption, !!values.overwrite, !!values.drafts, metadataDrafts, spec.caption_column ?? 'text');
      counts[action]++;
      const line = { item: entry.id, image: entry.image.path, action, path, caption };
      process.stdout.write(values.json ? `${JSON.stringify(line)}\n` : `${entry.image.path}: ${action === 'kept' ? 'kept the existing caption' : `${action} ${path}`}: ${caption}\n`);
    });
  }
  if (metadataDrafts.length) writeFileAtomic(join(root, 'metadata.draft.jsonl'), metadataDrafts.join('\n') + '\n');
  if (!values.json) process.stdout.write(`${withImages.length} images: ${counts.wrote} captions written, ${counts.overwrote} overwritten, ${counts.draft} drafts beside existing captions, ${counts.kept} kept\n`);
  return 0;
}

/** an entry of a local folder with an image (local listings always say where their files are) */
type LocalEntry = ListingEntry & { image: NonNullable<ListingEntry['image']> & { abs: string } };

function place(
  entry: LocalEntry,
  layout: string,
  root: string,
  caption: string,
  overwrite: boolean,
  drafts: boolean,
  metadataDrafts: string[],
  captionColumn: string,
): { action: Action; path?: string } {
  if (layout === 'imagefolder') {
    if (entry.captionText && !drafts) return { action: 'kept' };
    const fileName = entry.image.abs.slice(root.length + 1).replace(/\\/g, '/');
    metadataDrafts.push(JSON.stringify({ file_name: fileName, [captionColumn]: caption }));
    return { action: 'draft', path: 'metadata.draft.jsonl' };
  }
  const existing = entry.captionFile?.abs;
  if (existing) {
    if (overwrite) {
      writeFileAtomic(existing, caption + '\n');
      return { action: 'overwrote', path: entry.captionFile!.path };
    }
    if (!drafts) return { action: 'kept' };
    writeFileAtomic(`${existing}.draft`, caption + '\n');
    return { action: 'draft', path: `${entry.captionFile!.path}.draft` };
  }
  const rel = entry.image.abs.slice(root.length + 1);
  const target = layout === 'lab' ? join(root, 'text', `${entry.id}.txt`) : join(root, `${withoutExtension(rel)}.txt`);
  if (existsSync(target)) return { action: 'kept' }; // never clobber a file the listing did not pair
  writeFileAtomic(target, caption + '\n');
  return { action: 'wrote', path: `${entry.image.path.slice(0, entry.image.path.length - rel.length)}${target.slice(root.length + 1)}` };
}

function numberOption(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isFinite(v) || v < 0) throw new UsageError(`lorabuild caption: ${name} takes a number >= 0, got '${raw}'`);
  return v;
}

function fail(message: string): number {
  process.stderr.write(`${message}\n`);
  return 2;
}
