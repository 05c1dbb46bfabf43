// cache verify: re-hash every blob. A blob whose bytes no longer match its name is moved to
// quarantine/, and every action entry and item memo that relies on it is dropped, so the next run
// rebuilds what it belonged to instead of using it. Call while holding the writer lock.
import { mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ActionCache } from './action-cache.js';
import { hashStream } from './cas.js';
import { allBlobs, allItems, strayCasFiles } from './inventory.js';
import { bumpCacheGeneration } from './generation.js';
import { CacheLayout } from './layout.js';

export interface VerifyReport {
  blobsChecked: number;
  bytesChecked: number;
  corrupted: { sha256: string; actual: string; quarantined: string }[];
  /** action entries dropped: they named a corrupted or missing blob */
  droppedActions: { stage: string; fingerprint: string; why: string }[];
  droppedItems: number;
  strayRemoved: string[];
}

export async function verifyCache(root: string, onProgress?: (done: number) => void): Promise<VerifyReport> {
  const layout = new CacheLayout(root);
  const report: VerifyReport = { blobsChecked: 0, bytesChecked: 0, corrupted: [], droppedActions: [], droppedItems: 0, strayRemoved: [] };
  for (const stray of strayCasFiles(root)) {
    rmSync(stray, { recursive: true, force: true });
    report.strayRemoved.push(stray);
  }
  const present = new Set<string>();
  const bad = new Set<string>();
  for (const blob of allBlobs(root)) {
    const actual = await hashStream(blob.path);
    report.blobsChecked++;
    report.bytesChecked += blob.size;
    if (actual === blob.sha256) {
      present.add(blob.sha256);
    } else {
      mkdirSync(layout.quarantine, { recursive: true });
      const quarantined = join(layout.quarantine, `${blob.sha256}.${Date.now()}`);
      renameSync(blob.path, quarantined);
      bad.add(blob.sha256);
      report.corrupted.push({ sha256: blob.sha256, actual, quarantined });
    }
    if (report.blobsChecked % 500 === 0) onProgress?.(report.blobsChecked);
  }
  const actions = new ActionCache(root);
  for (const entry of [...actions.all()]) {
    const named = [...Object.entries(entry.outputs.files).map(([name, f]) => ({ name, sha: f.sha256 })), ...entry.refs.map((sha) => ({ name: 'a referenced blob', sha }))];
    const missing = named.find((n) => !present.has(n.sha));
    if (missing) {
      actions.remove(entry.fingerprint);
      report.droppedActions.push({ stage: entry.stage, fingerprint: entry.fingerprint, why: `${missing.name} (${missing.sha.slice(0, 12)}) is ${bad.has(missing.sha) ? 'corrupted' : 'missing'}` });
    }
  }
  if (bad.size > 0) {
    for (const item of allItems(root)) {
      try {
        const refs = (JSON.parse(readFileSync(item.path, 'utf8')) as { refs?: string[] }).refs ?? [];
        if (refs.some((sha) => bad.has(sha))) {
          rmSync(item.path, { force: true });
          report.droppedItems++;
        }
      } catch {
        rmSync(item.path, { force: true });
        report.droppedItems++;
      }
    }
  }
  if (report.corrupted.length + report.droppedActions.length + report.droppedItems + report.strayRemoved.length > 0) bumpCacheGeneration(root);
  return report;
}
