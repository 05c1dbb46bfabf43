// cache verify: re-hash every blob and repair every kind of damage found, so that the next run
// works. A blob whose bytes no longer match its name, or anything that is not a plain file where a
// blob belongs (a folder, a link, a FIFO, an unreadable file), is moved to quarantine/, and every
// action entry and item memo that relies on it is dropped, so the next run rebuilds what it
// belonged to. Store folders that are files, unreadable or malformed records (action entries, item
// memos, parsed-lock and config memos, resume indexes, run records, stat memo files that fail their
// checks) and temp leftovers are removed: everything in a cache can be rebuilt. Nothing is ever opened before lstat says it is a regular
// file (a FIFO would block). Call while holding the writer lock.
import { lstatSync, mkdirSync, readFileSync, renameSync, rmSync, type Stats } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { SHA256_RE } from '../engine/canonical.js';
import { lockShapeProblem } from '../engine/lockfile.js';
import { entryBlobs, entryTreesOk, type ActionEntry } from './action-cache.js';
import { Cas, hashStream } from './cas.js';
import { TreeDamage } from './chunk-tree.js';
import { bumpCacheGeneration } from './generation.js';
import { listOrEmpty } from './inventory.js';
import { compactJournals } from './item-journal.js';
import { CacheLayout } from './layout.js';
import { deadCompactionTemps, statMemoProblems } from './stat-memo-store.js';
import { inspectFolderMemo } from '../datasets/local/folder-memo.js';

export interface VerifyReport {
  blobsChecked: number;
  bytesChecked: number;
  corrupted: { sha256: string; actual: string; quarantined: string }[];
  /** action entries dropped: they named a corrupted or missing blob, or were unreadable */
  droppedActions: { stage: string; fingerprint: string; why: string }[];
  droppedItems: number;
  strayRemoved: string[];
  /** other repairs, one line each ("removed cas/ab: a file where a folder of blobs belongs") */
  repaired: string[];
}

/** Whether a report found anything at all. */
export function verifyFoundDamage(report: VerifyReport): boolean {
  return report.corrupted.length + report.droppedActions.length + report.droppedItems + report.strayRemoved.length + report.repaired.length > 0;
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

function what(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isFile()) return 'a file';
  return 'a special file';
}

/** JSON of a regular file, or undefined for anything unreadable (never opens a non-file). */
function readJsonFile(path: string): unknown {
  const st = lstatOrNull(path);
  if (!st?.isFile()) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function actionShapeOk(value: unknown, fingerprint: string): value is ActionEntry {
  if (!isObj(value) || value.version !== 1 || value.fingerprint !== fingerprint || typeof value.stage !== 'string') return false;
  const outputs = value.outputs;
  if (!isObj(outputs) || !isObj(outputs.files)) return false;
  if (!Object.values(outputs.files).every((f) => isObj(f) && typeof f.sha256 === 'string' && SHA256_RE.test(f.sha256) && Number.isSafeInteger(f.size))) return false;
  return Array.isArray(value.refs) && value.refs.every((r) => typeof r === 'string') && Array.isArray(value.items) && entryTreesOk(value);
}

export async function verifyCache(root: string, onProgress?: (done: number) => void): Promise<VerifyReport> {
  const layout = new CacheLayout(root);
  const report: VerifyReport = { blobsChecked: 0, bytesChecked: 0, corrupted: [], droppedActions: [], droppedItems: 0, strayRemoved: [], repaired: [] };
  const shown = (path: string) => relative(root, path) || basename(path);

  const quarantine = (path: string): string => {
    const q = lstatOrNull(layout.quarantine);
    if (q && !q.isDirectory()) {
      rmSync(layout.quarantine, { recursive: true, force: true });
      report.repaired.push(`removed quarantine: ${what(q)} where a folder belongs`);
    }
    mkdirSync(layout.quarantine, { recursive: true });
    const target = join(layout.quarantine, `${basename(path)}.${Date.now()}`);
    try {
      renameSync(path, target);
      return target;
    } catch {
      rmSync(path, { recursive: true, force: true });
      return '(removed)';
    }
  };
  const remove = (path: string, why: string) => {
    rmSync(path, { recursive: true, force: true });
    report.repaired.push(`removed ${shown(path)}: ${why}`);
  };
  /** a store folder: anything else in its place is removed; returns whether the folder is there */
  const storeFolder = (path: string): boolean => {
    const st = lstatOrNull(path);
    if (!st) return false;
    if (st.isDirectory()) return true;
    remove(path, `${what(st)} where a folder belongs`);
    return false;
  };

  // blobs
  const present = new Set<string>();
  const cas = new Cas(root);
  const bad = new Set<string>();
  if (storeFolder(layout.casDir)) {
    for (const shard of listOrEmpty(layout.casDir)) {
      const shardPath = join(layout.casDir, shard);
      if (!/^[0-9a-f]{2}$/.test(shard)) {
        rmSync(shardPath, { recursive: true, force: true });
        report.strayRemoved.push(shardPath);
        continue;
      }
      if (!storeFolder(shardPath)) continue;
      for (const name of listOrEmpty(shardPath)) {
        const path = join(shardPath, name);
        if (!SHA256_RE.test(name) || name.slice(0, 2) !== shard) {
          rmSync(path, { recursive: true, force: true });
          report.strayRemoved.push(path);
          continue;
        }
        const st = lstatOrNull(path);
        if (!st) continue;
        let actual: string;
        if (!st.isFile()) actual = `(${what(st)}, not a file)`;
        else {
          try {
            actual = await hashStream(path);
            report.bytesChecked += st.size;
          } catch (err) {
            actual = `(unreadable: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
          }
        }
        report.blobsChecked++;
        if (actual === name) {
          present.add(name);
        } else {
          bad.add(name);
          report.corrupted.push({ sha256: name, actual, quarantined: quarantine(path) });
        }
        if (report.blobsChecked % 500 === 0) onProgress?.(report.blobsChecked);
      }
    }
  }

  // action entries: readable, well-formed, and every blob they name present and intact
  if (storeFolder(layout.actionsDir)) {
    for (const shard of listOrEmpty(layout.actionsDir)) {
      const shardPath = join(layout.actionsDir, shard);
      if (!storeFolder(shardPath)) continue;
      for (const name of listOrEmpty(shardPath)) {
        const path = join(shardPath, name);
        const fingerprint = name.replace(/\.json$/, '');
        const entry = readJsonFile(path);
        if (!name.endsWith('.json') || !actionShapeOk(entry, fingerprint)) {
          rmSync(path, { recursive: true, force: true });
          rmSync(layout.log(fingerprint), { recursive: true, force: true });
          report.droppedActions.push({ stage: isObj(entry) && typeof entry.stage === 'string' ? entry.stage : '?', fingerprint, why: 'its record is unreadable or malformed' });
          continue;
        }
        const drop = (why: string) => {
          rmSync(path, { force: true });
          rmSync(layout.log(fingerprint), { recursive: true, force: true });
          report.droppedActions.push({ stage: entry.stage, fingerprint, why });
        };
        const outputNames = new Map(Object.entries(entry.outputs.files).map(([n, f]) => [f.sha256, n]));
        let named: { name: string; sha: string }[];
        try {
          named = entryBlobs(entry, cas).map((sha) => ({ name: outputNames.get(sha) ?? 'a referenced blob', sha }));
        } catch (err) {
          if (!(err instanceof TreeDamage)) throw err;
          drop(err.message.replace(/; run `lorabuild cache verify`$/, ''));
          continue;
        }
        const missing = named.find((n) => !present.has(n.sha));
        if (missing) drop(`${missing.name} (${missing.sha.slice(0, 12)}) is ${bad.has(missing.sha) ? 'corrupted' : 'missing'}`);
      }
    }
  }

  // item memos: whole records whose blobs are all present
  const items = compactJournals(root, (_id, json) => {
    const refs = (JSON.parse(json) as { refs: unknown[] }).refs;
    return refs.every((sha) => typeof sha === 'string' && present.has(sha));
  });
  report.droppedItems += items.dropped;
  report.repaired.push(...items.repaired);

  // memos and records that are only caches of something else: a damaged one is removed
  // the stat memo: a damaged base or journal (a torn tail included) is removed whole, and rebuilt by hashing
  for (const path of [layout.statMemo, layout.statMemoJournal]) {
    const st = lstatOrNull(path);
    if (st && !st.isFile()) remove(path, `${what(st)} where a file belongs`);
  }
  for (const problem of statMemoProblems(layout.statMemo)) remove(problem.path, problem.why);
  for (const path of deadCompactionTemps(layout.statMemo)) remove(path, 'left by a stat memo compaction that was killed');
  const legacy = lstatOrNull(layout.legacyStatMemo);
  if (legacy) remove(layout.legacyStatMemo, 'a stat memo of an older format');
  const records: [string, (v: unknown) => boolean][] = [[join(root, 'worker-hello.json'), isObj]];
  for (const [path, ok] of records) {
    const st = lstatOrNull(path);
    if (st && !ok(readJsonFile(path))) remove(path, st.isFile() ? 'unreadable' : `${what(st)} where a file belongs`);
  }
  const recordFolders: [string, (v: unknown) => boolean][] = [
    [join(root, 'lockjson'), (v) => lockShapeProblem(v) === undefined],
    [join(root, 'config'), isObj],
    [join(root, 'runs'), isObj],
  ];
  for (const [dir, ok] of recordFolders) {
    if (!storeFolder(dir)) continue;
    for (const name of listOrEmpty(dir)) if (!name.startsWith('.') && !ok(readJsonFile(join(dir, name)))) remove(join(dir, name), 'unreadable or malformed');
  }
  // folder memos (datasets/local/folder-memo.ts): only a cache of what a walk read
  if (storeFolder(join(root, 'folders'))) {
    for (const name of listOrEmpty(join(root, 'folders'))) {
      const path = join(root, 'folders', name);
      const st = lstatOrNull(path);
      if (!st) continue;
      if (!st.isFile()) {
        remove(path, `${what(st)} where a folder memo belongs`);
        continue;
      }
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch {
        remove(path, 'unreadable');
        continue;
      }
      const seen = inspectFolderMemo(text);
      if ('problem' in seen) remove(path, `a damaged folder memo (${seen.problem})`);
    }
  }
  if (storeFolder(join(root, 'train-resume'))) {
    for (const shard of listOrEmpty(join(root, 'train-resume'))) {
      if (!storeFolder(join(root, 'train-resume', shard))) continue;
      for (const name of listOrEmpty(join(root, 'train-resume', shard))) {
        if (!name.startsWith('.') && !isObj(readJsonFile(join(root, 'train-resume', shard, name)))) remove(join(root, 'train-resume', shard, name), 'unreadable or malformed');
      }
    }
  }
  if (storeFolder(layout.logsDir)) {
    for (const name of listOrEmpty(layout.logsDir)) {
      const st = lstatOrNull(join(layout.logsDir, name));
      if (st && !st.isFile()) remove(join(layout.logsDir, name), `${what(st)} where a log file belongs`);
    }
  }
  const q = lstatOrNull(layout.quarantine);
  if (q && !q.isDirectory()) remove(layout.quarantine, `${what(q)} where a folder belongs`);
  for (const path of [layout.generation]) {
    const st = lstatOrNull(path);
    if (st && !st.isFile()) remove(path, `${what(st)} where a file belongs`);
  }
  // leftovers of killed runs (the writer lock is ours, so nobody is using them)
  if (storeFolder(layout.tmp)) for (const name of listOrEmpty(layout.tmp)) rmSync(join(layout.tmp, name), { recursive: true, force: true });

  if (verifyFoundDamage(report)) bumpCacheGeneration(root);
  return report;
}
