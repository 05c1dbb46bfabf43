// Which repo files make up a split: parquet shards (data/train-*.parquet, train/*.parquet, the
// refs/convert/parquet layout default/train/0000.parquet) or an imagefolder (images + metadata).
// Pure: file list in, choice out.
import { HubError } from './errors.js';
import type { RepoFile } from './repo-files.js';

export type SplitFiles =
  | { layout: 'parquet'; shards: RepoFile[] }
  | { layout: 'imagefolder'; images: RepoFile[]; metadata: RepoFile[] };

const KNOWN_SPLITS = new Set(['train', 'test', 'validation', 'valid', 'val', 'dev', 'eval', 'evaluation']);
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.gif', '.tif', '.tiff']);
const METADATA_NAMES = new Set(['metadata.jsonl', 'metadata.csv']);

function extension(path: string): string {
  const base = path.slice(path.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot).toLowerCase() : '';
}

function dirOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

function isSplitName(name: string, wanted: string): boolean {
  return name === wanted || KNOWN_SPLITS.has(name.toLowerCase());
}

/**
 * The split a file belongs to and the folder its split starts in ('' when named by the file), or
 * undefined when nothing in its path names a split.
 */
function splitOf(path: string, wanted: string): { split: string; group: string } | undefined {
  const segments = path.split('/');
  const dirs = segments.slice(0, -1);
  for (let i = dirs.length - 1; i >= 0; i--) {
    if (isSplitName(dirs[i], wanted)) return { split: dirs[i], group: dirs.slice(0, i).join('/') };
  }
  const base = segments[segments.length - 1].replace(/\.[^.]*$/, '');
  const prefix = base.split(/[-.]/)[0].replace(/_?\d+$/, '');
  if (prefix && isSplitName(prefix, wanted)) return { split: prefix, group: dirs.join('/') };
  return undefined;
}

/** `split: train` or, where a repo has several configs, `split: config/train`. */
function parseWanted(split: string): { name: string; group: string | undefined } {
  const slash = split.lastIndexOf('/');
  return slash < 0 ? { name: split, group: undefined } : { name: split.slice(slash + 1), group: split.slice(0, slash) };
}

function selectSplit(files: RepoFile[], splitSpec: string, repo: string, kind: string): RepoFile[] | undefined {
  if (files.length === 0) return undefined;
  const wanted = parseWanted(splitSpec);
  const named = files.map((file) => ({ file, where: splitOf(file.path, wanted.name) }));
  let chosen = named.filter((n) => n.where?.split === wanted.name && (wanted.group === undefined || n.where.group === wanted.group));
  if (chosen.length === 0 && wanted.name === 'train' && wanted.group === undefined && named.every((n) => !n.where)) {
    // like the datasets library: files that name no split are the train split
    return files;
  }
  if (chosen.length === 0) {
    const available = [...new Set(named.map((n) => (n.where ? n.where.split : 'train')))].sort();
    throw new HubError('no-split', `dataset ${repo} has no ${kind} for split '${splitSpec}' (splits found: ${available.join(', ')})`, {
      hint: `set split: to one of ${available.join(', ')}`,
    });
  }
  const groups = [...new Set(chosen.map((n) => n.where!.group))];
  if (groups.length > 1) {
    const preferred = groups.find((g) => g === 'default' || g === 'data');
    if (!preferred) {
      throw new HubError('no-split', `dataset ${repo} has split '${wanted.name}' in several configs: ${groups.join(', ')}`, {
        hint: `name the config in the split, e.g. split: ${groups[0]}/${wanted.name}`,
      });
    }
    chosen = chosen.filter((n) => n.where!.group === preferred);
  }
  return chosen.map((n) => n.file);
}

export function pickSplit(files: RepoFile[], split: string, repo: string): SplitFiles {
  const parquet = files.filter((f) => extension(f.path) === '.parquet');
  const shards = selectSplit(parquet, split, repo, 'parquet shards');
  if (shards) return { layout: 'parquet', shards: [...shards].sort((a, b) => a.path.localeCompare(b.path, 'en', { numeric: true })) };

  const images = selectSplit(files.filter((f) => IMAGE_EXTENSIONS.has(extension(f.path))), split, repo, 'images');
  if (images) {
    const dirs = new Set(images.map((f) => dirOf(f.path)));
    const covers = (metaDir: string) => [...dirs].some((d) => d === metaDir || metaDir === '' || d.startsWith(`${metaDir}/`));
    const metadata = files.filter((f) => METADATA_NAMES.has(f.path.slice(f.path.lastIndexOf('/') + 1)) && covers(dirOf(f.path)));
    return { layout: 'imagefolder', images, metadata };
  }

  const shown = files.slice(0, 10).map((f) => f.path).join(', ') + (files.length > 10 ? `, ... (${files.length} files)` : '');
  throw new HubError('no-split', `dataset ${repo} has neither parquet shards nor images (files: ${shown || 'none'})`, {
    hint: 'lorabuild reads parquet datasets and imagefolder repos; the hub builds a parquet copy of most datasets: try revision: refs/convert/parquet',
  });
}
