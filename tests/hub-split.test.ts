// Which files make up a split, and how HF_* settings are read: pure functions, no network.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hubEnv } from '../src/datasets/hub/env.js';
import { HubError } from '../src/datasets/hub/errors.js';
import type { RepoFile } from '../src/datasets/hub/repo-files.js';
import { pickSplit } from '../src/datasets/hub/split.js';
import { suggestColumn } from '../src/datasets/suggest-column.js';

function files(...paths: string[]): RepoFile[] {
  return paths.map((path) => ({ path, size: 1, etag: 'a'.repeat(40) }));
}

function shardsOf(paths: string[], split: string): string[] {
  const picked = pickSplit(files(...paths), split, 'o/n');
  if (picked.layout !== 'parquet') throw new Error('expected parquet');
  return picked.shards.map((s) => s.path);
}

function failure(run: () => unknown): HubError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(HubError);
    return err as HubError;
  }
  throw new Error('expected a HubError');
}

describe('pickSplit', () => {
  it('reads the datasets-library shard names, in numeric order', () => {
    const paths = ['README.md', 'data/train-00010-of-00011.parquet', 'data/train-00002-of-00011.parquet', 'data/test-00000-of-00001.parquet'];
    expect(shardsOf(paths, 'train')).toEqual(['data/train-00002-of-00011.parquet', 'data/train-00010-of-00011.parquet']);
    expect(shardsOf(paths, 'test')).toEqual(['data/test-00000-of-00001.parquet']);
  });

  it('reads split folders and the refs/convert/parquet layout, preferring the default config', () => {
    expect(shardsOf(['train/a.parquet', 'train/b.parquet', 'validation/a.parquet'], 'validation')).toEqual(['validation/a.parquet']);
    expect(shardsOf(['default/train/0000.parquet', 'default/train/0001.parquet', 'other/train/0000.parquet'], 'train')).toEqual([
      'default/train/0000.parquet',
      'default/train/0001.parquet',
    ]);
    expect(shardsOf(['default/train/0000.parquet', 'other/train/0000.parquet'], 'other/train')).toEqual(['other/train/0000.parquet']);
    const ambiguous = failure(() => pickSplit(files('a/train/0.parquet', 'b/train/0.parquet'), 'train', 'o/n'));
    expect(ambiguous.message).toContain('several configs: a, b');
    expect(ambiguous.hint).toContain('split: a/train');
  });

  it('files that name no split are the train split', () => {
    expect(shardsOf(['pokemon.parquet', 'more/part-1.parquet'], 'train')).toEqual(['more/part-1.parquet', 'pokemon.parquet']);
    const err = failure(() => pickSplit(files('pokemon.parquet'), 'test', 'o/n'));
    expect(err.code).toBe('no-split');
    expect(err.hint).toBe('set split: to one of train');
  });

  it('imagefolder: images of the split and the metadata that covers them', () => {
    const picked = pickSplit(files('train/a.png', 'train/b.JPG', 'train/metadata.jsonl', 'test/c.png', 'test/metadata.jsonl', 'README.md'), 'train', 'o/n');
    expect(picked).toMatchObject({ layout: 'imagefolder' });
    if (picked.layout !== 'imagefolder') return;
    expect(picked.images.map((f) => f.path)).toEqual(['train/a.png', 'train/b.JPG']);
    expect(picked.metadata.map((f) => f.path)).toEqual(['train/metadata.jsonl']);
    const flat = pickSplit(files('0.png', '1.webp', 'metadata.csv'), 'train', 'o/n');
    expect(flat.layout === 'imagefolder' && flat.metadata.map((f) => f.path)).toEqual(['metadata.csv']);
  });

  it('a repo without parquet or images says what it has and where to look', () => {
    const err = failure(() => pickSplit(files('README.md', 'data.tar'), 'train', 'o/n'));
    expect(err.message).toContain('README.md, data.tar');
    expect(err.hint).toContain('refs/convert/parquet');
  });
});

describe('suggestColumn', () => {
  it('suggests typos and prefixed variants', () => {
    expect(suggestColumn('text', ['image', 'en_text', 'zh_text'])).toBe('en_text');
    expect(suggestColumn('imgae', ['image', 'en_text'])).toBe('image');
    expect(suggestColumn('label', ['image', 'en_text'])).toBeUndefined();
  });
});

describe('hubEnv', () => {
  it('defaults like huggingface_hub', () => {
    const env = hubEnv({});
    expect(env.endpoint).toBe('https://huggingface.co');
    expect(env.home).toBe(join(homedir(), '.cache', 'huggingface'));
    expect(env.cacheDir).toBe(join(homedir(), '.cache', 'huggingface', 'hub'));
    expect(env.offline).toBe(false);
  });

  it('honours HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE and the token file', async () => {
    const home = await mkdtemp(join(tmpdir(), 'lorabuild-hf-env-'));
    try {
      await writeFile(join(home, 'token'), 'hf_saved\n');
      const env = hubEnv({ HF_HOME: home, HF_ENDPOINT: 'http://127.0.0.1:9/', HF_HUB_OFFLINE: '1' });
      expect(env).toEqual({ endpoint: 'http://127.0.0.1:9', home, cacheDir: join(home, 'hub'), offline: true, token: 'hf_saved', tokenDisabled: false, timeoutS: 10 });
      expect(hubEnv({ HF_HOME: home, HF_HUB_CACHE: '/data/hf', HF_TOKEN: 'hf_env' })).toMatchObject({ cacheDir: '/data/hf', token: 'hf_env' });
      expect(hubEnv({ HF_HUB_OFFLINE: '0' }).offline).toBe(false);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
