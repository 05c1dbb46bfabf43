// Lab-layout dataset folders for listing tests (listing snapshot, stat hint): items with old file
// dates (so that none is racy), and a listing source whose stat memo persists in a cache.
import * as fs from 'node:fs';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalDatasetSource } from '../../src/datasets/local/list.js';
import { StatMemo } from '../../src/engine/stat-memo.js';
import { writeFiles } from './cli.js';
import { tinyPng } from '../../bench/lab-dataset.js';

const OLD = new Date('2024-01-01T00:00:00Z');

/** whether files under `dir` get whole-second timestamps (then a file is racy for 2 s, not 100 ms) */
export function hasCoarseTimestamps(dir: string): boolean {
  const probe = join(dir, 'probe');
  writeFileSync(probe, '');
  return Number.isInteger(fs.statSync(probe).mtimeMs);
}

/** `n` items under `root`: image/<i>.png and text/<i>.txt, all dated 2024-01-01 */
export function writeOldLabFolder(root: string, n: number): void {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    files[`image/${i}.png`] = `png ${i}`;
    files[`text/${i}.txt`] = `caption ${i}\n`;
  }
  writeFiles(root, files);
  for (const dir of ['image', 'text']) for (const name of fs.readdirSync(join(root, dir))) utimesSync(join(root, dir, name), OLD, OLD);
}

/** a source whose stat memo persists in `cache` (as a run's does; none: in memory), counting what it is asked */
export function countedSource(root: string, cache: string | undefined, folder = 'data'): { source: LocalDatasetSource; asked: { known: number; hashed: number }; memo: StatMemo } {
  const memo = cache ? StatMemo.load(join(cache, 'statmemo.bin')) : StatMemo.inMemory();
  const asked = { known: 0, hashed: 0 };
  const source: LocalDatasetSource = {
    abs: root,
    folder,
    layout: 'auto',
    captionColumn: 'text',
    hashFile: (abs, stat) => (asked.hashed++, memo.hashFile(abs, { stat })),
    knownHash: (abs, stat) => (asked.known++, memo.lookup(abs, stat)),
    ...(cache ? { cacheDir: cache } : {}),
  };
  return { source, asked, memo };
}

/**
 * A project of one lab dataset `d` (folder d/, rules: too_small off) of `n` real tiny PNGs with a
 * caption each (`one-line-art, shape <i>`), as the watch tests build and save it.
 */
export function writeLabProject(project: string, n: number): void {
  const files: Record<string, string | Buffer> = { 'lorafile.yaml': 'version: 1\ndatasets:\n  d:\n    folder: d\n    rules: { too_small: off }\n' };
  for (let i = 0; i < n; i++) {
    files[`d/image/${i}.png`] = tinyPng(i) as Buffer;
    files[`d/text/${i}.txt`] = `one-line-art, shape ${i}\n`;
  }
  writeFiles(project, files);
}
