// cache gc: drop old action entries (keep the last N per stage, or the newest that fit a size
// budget; entries the current lorafile.lock names are always kept), then delete every blob, item
// memo and log that no kept entry needs. Call while holding the writer lock.
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { inspectFolderMemo } from '../datasets/local/folder-memo.js';
import { join } from 'node:path';
import { ActionCache, entryBlobs, entryItems, type ActionEntry } from './action-cache.js';
import { Cas } from './cas.js';
import { TreeDamage } from './chunk-tree.js';
import { allBlobs } from './inventory.js';
import { compactJournals } from './item-journal.js';
import { bumpCacheGeneration } from './generation.js';
import { CacheLayout } from './layout.js';

export type GcPolicy = { keepLast: number } | { maxBytes: number };

export interface GcReport {
  keptActions: number;
  removedActions: number;
  removedBlobs: number;
  removedBytes: number;
  keptBytes: number;
  removedItems: number;
  /** memos of dataset folders that no longer exist, or damaged ones */
  removedFolderMemos?: number;
}

export function gcCache(root: string, policy: GcPolicy, pinned: Set<string>): GcReport {
  const layout = new CacheLayout(root);
  const actions = new ActionCache(root);
  const cas = new Cas(root);
  const entries = [...actions.all()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  // an entry whose trees cannot be read keeps nothing alive: it is dropped like an entry whose blobs are gone
  const damaged = new Set<string>();
  const blobsOfEntry = new Map<string, string[]>();
  const blobsOf = (e: ActionEntry): string[] => {
    let found = blobsOfEntry.get(e.fingerprint);
    if (!found) {
      try {
        found = entryBlobs(e, cas);
      } catch (err) {
        if (!(err instanceof TreeDamage)) throw err;
        found = [];
        damaged.add(e.fingerprint);
      }
      blobsOfEntry.set(e.fingerprint, found);
    }
    return found;
  };
  const sizes = new Map<string, number>();
  for (const blob of allBlobs(root)) sizes.set(blob.sha256, blob.size);

  const keep = new Set<string>();
  const counted = new Set<string>();
  let keptBytes = 0;
  const add = (e: ActionEntry) => {
    keep.add(e.fingerprint);
    for (const sha of blobsOf(e)) {
      if (counted.has(sha)) continue;
      counted.add(sha);
      keptBytes += sizes.get(sha) ?? 0;
    }
  };
  for (const e of entries) if (pinned.has(e.fingerprint)) add(e);
  if ('keepLast' in policy) {
    const perStage = new Map<string, number>();
    for (const e of entries) {
      const n = perStage.get(e.stage) ?? 0;
      if (n < policy.keepLast) add(e);
      perStage.set(e.stage, n + 1);
    }
  } else {
    for (const e of entries) {
      if (keep.has(e.fingerprint)) continue;
      const extra = [...new Set(blobsOf(e))].filter((sha) => !counted.has(sha)).reduce((sum, sha) => sum + (sizes.get(sha) ?? 0), 0);
      if (keptBytes + extra <= policy.maxBytes) add(e);
    }
  }

  const report: GcReport = { keptActions: keep.size, removedActions: 0, removedBlobs: 0, removedBytes: 0, keptBytes, removedItems: 0 };
  const neededItems = new Set<string>();
  const logsOfLastRuns = lastRunFingerprints(layout);
  for (const e of entries) {
    if (keep.has(e.fingerprint) && !damaged.has(e.fingerprint)) {
      for (const id of entryItems(e, cas)) neededItems.add(id);
    } else {
      rmSync(layout.action(e.fingerprint), { force: true });
      if (!logsOfLastRuns.has(e.fingerprint)) rmSync(layout.log(e.fingerprint), { force: true });
      report.removedActions++;
    }
  }
  for (const [sha, size] of sizes) {
    if (counted.has(sha)) continue;
    rmSync(layout.blob(sha), { force: true });
    report.removedBlobs++;
    report.removedBytes += size;
  }
  report.removedItems = compactJournals(root, (id) => neededItems.has(id)).dropped;
  // the stat memo's old format: nothing reads it any more
  rmSync(layout.legacyStatMemo, { recursive: true, force: true });
  report.removedFolderMemos = removeStaleFolderMemos(root);
  if (report.removedActions + report.removedBlobs + report.removedItems > 0) bumpCacheGeneration(root);
  return report;
}

function removeStaleFolderMemos(root: string): number {
  const dir = join(root, 'folders');
  let removed = 0;
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const path = join(dir, name);
    let seen: ReturnType<typeof inspectFolderMemo>;
    try {
      seen = inspectFolderMemo(readFileSync(path, 'utf8'));
    } catch {
      seen = { problem: 'unreadable' };
    }
    if ('root' in seen && statSync(seen.root, { throwIfNoEntry: false })?.isDirectory()) continue;
    rmSync(path, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function lastRunFingerprints(layout: CacheLayout): Set<string> {
  const dir = join(layout.root, 'runs');
  const found = new Set<string>();
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return found;
  }
  for (const name of names) {
    try {
      found.add((JSON.parse(readFileSync(join(dir, name), 'utf8')) as { fingerprint: string }).fingerprint);
    } catch {
      // unreadable run record: nothing to keep for it
    }
  }
  return found;
}

/** "20G", "512M", "1.5GB", "1000" (bytes) -> bytes */
export function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.floor(Number(m[1]) * unit);
}
