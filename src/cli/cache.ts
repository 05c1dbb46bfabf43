// lorabuild cache ls | verify | gc [--keep-last N | --max-size 20G]  [-f FILE] [--json]
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ActionCache } from '../cache/action-cache.js';
import { gcCache, parseSize, type GcPolicy } from '../cache/gc.js';
import { allBlobs } from '../cache/inventory.js';
import { verifyCache, verifyFoundDamage } from '../cache/verify.js';
import { acquireWriterLock, waitingMessage } from '../cache/writer-lock.js';
import { CacheLayout } from '../cache/layout.js';
import { didYouMean } from '../config/suggest.js';
import { lockPathFor, readLockfile } from '../engine/lockfile.js';
import { StatMemo } from '../engine/stat-memo.js';
import { cacheDirFor } from '../engine/project.js';
import { lorafileOption, parseCommandArgs, UsageError } from './args.js';

const HELP = `usage: lorabuild cache ls | verify | gc [--keep-last N | --max-size SIZE] [-f FILE] [--json]

  ls        every cached build (stage, fingerprint, date, output size) and the cache's size
  verify    re-hash every blob; corrupted ones are quarantined and whatever used them is rebuilt
            by the next run (exit 1 when something was wrong)
  gc        remove old builds: --keep-last N per stage (default 3) or the newest that fit in
            --max-size (e.g. 20G); builds named by lorafile.lock are always kept
The cache is $LORABUILD_CACHE, else the cache/ folder next to the lorafile.
`;

export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseCommandArgs(
      argv,
      { ...lorafileOption, json: { type: 'boolean' }, 'keep-last': { type: 'string' }, 'max-size': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      'cache',
    );
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n\n${HELP}`);
      return 2;
    }
    throw err;
  }
  const [sub, ...extra] = args.positionals;
  if (args.values.help || !sub) {
    process.stdout.write(HELP);
    return sub || args.values.help ? 0 : 2;
  }
  if (extra.length) return usage(`unexpected argument '${extra[0]}'`);
  const lorafile = resolve(args.values.file ?? 'lorafile.yaml');
  const cacheDir = cacheDirFor(dirname(lorafile));
  const json = Boolean(args.values.json);
  switch (sub) {
    case 'ls':
      return list(cacheDir, lorafile, json);
    case 'verify':
      return verify(cacheDir, json);
    case 'gc': {
      const policy = gcPolicy(args.values['keep-last'], args.values['max-size']);
      if (typeof policy === 'string') return usage(policy);
      return gc(cacheDir, lorafile, policy, json);
    }
    default:
      {
      const suggestion = didYouMean(sub, ['ls', 'verify', 'gc']);
      return usage(`unknown subcommand '${sub}' (expected ls, verify or gc)${suggestion ? `; did you mean '${suggestion}'?` : ''}`);
    }
  }
}

function usage(message: string): number {
  process.stderr.write(`lorabuild cache: ${message}\n\n${HELP}`);
  return 2;
}

function gcPolicy(keepLast: string | undefined, maxSize: string | undefined): GcPolicy | string {
  if (keepLast !== undefined && maxSize !== undefined) return 'use either --keep-last or --max-size, not both';
  if (maxSize !== undefined) {
    const maxBytes = parseSize(maxSize);
    return maxBytes === undefined ? `--max-size '${maxSize}' is not a size (examples: 20G, 512M, 1500000)` : { maxBytes };
  }
  if (keepLast === undefined) return { keepLast: 3 };
  const n = Number(keepLast);
  return Number.isInteger(n) && n >= 1 ? { keepLast: n } : `--keep-last '${keepLast}' must be a whole number >= 1`;
}

async function pinnedByLock(lorafile: string, cacheDir: string): Promise<Set<string>> {
  const lockFile = lockPathFor(lorafile);
  if (!existsSync(lockFile)) return new Set();
  return new Set(Object.values(readLockfile(lockFile, cacheDir).lock.stages).map((e) => e.fingerprint));
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function list(cacheDir: string, lorafile: string, json: boolean): Promise<number> {
  const pinned = await pinnedByLock(lorafile, cacheDir);
  const entries = [...new ActionCache(cacheDir).all()].sort((a, b) => a.stage.localeCompare(b.stage) || b.createdAt.localeCompare(a.createdAt));
  let blobs = 0;
  let bytes = 0;
  for (const b of allBlobs(cacheDir)) {
    blobs++;
    bytes += b.size;
  }
  for (const e of entries) {
    const size = Object.values(e.outputs.files).reduce((s, f) => s + f.size, 0);
    const row = { stage: e.stage, fingerprint: e.fingerprint, createdAt: e.createdAt, outputs: Object.keys(e.outputs.files).length, bytes: size, inLock: pinned.has(e.fingerprint) };
    if (json) process.stdout.write(`${JSON.stringify(row)}\n`);
    else process.stdout.write(`${e.stage.padEnd(24)} ${e.fingerprint.slice(0, 12)}  ${e.createdAt}  ${String(row.outputs).padStart(3)} outputs ${mb(size).padStart(10)}${row.inLock ? '  (lorafile.lock)' : ''}\n`);
  }
  const total = { cache: cacheDir, builds: entries.length, blobs, bytes };
  if (json) process.stdout.write(`${JSON.stringify({ total })}\n`);
  else process.stdout.write(`${entries.length} cached builds, ${blobs} blobs, ${mb(bytes)} in ${cacheDir}\n`);
  return 0;
}

async function withLock<T>(cacheDir: string, command: string, work: () => Promise<T> | T): Promise<T> {
  const lock = await acquireWriterLock(cacheDir, command, {
    onWait: (h, waited) => process.stderr.write(`${waitingMessage(h, cacheDir, waited)}\n`),
  });
  try {
    return await work();
  } finally {
    lock.release();
  }
}

async function verify(cacheDir: string, json: boolean): Promise<number> {
  if (!existsSync(cacheDir)) {
    process.stdout.write(json ? `${JSON.stringify({ clean: true, blobsChecked: 0 })}\n` : `no cache at ${cacheDir}: nothing to verify\n`);
    return 0;
  }
  const report = await withLock(cacheDir, 'lorabuild cache verify', () => verifyCache(cacheDir));
  const clean = !verifyFoundDamage(report);
  if (json) {
    process.stdout.write(`${JSON.stringify({ clean, ...report })}\n`);
  } else {
    for (const c of report.corrupted) process.stdout.write(`corrupted blob ${c.sha256} (its bytes hash to ${c.actual}): moved to ${c.quarantined}\n`);
    for (const a of report.droppedActions) process.stdout.write(`dropped cached build ${a.stage} ${a.fingerprint.slice(0, 12)}: ${a.why}; the next run rebuilds it\n`);
    if (report.droppedItems) process.stdout.write(`dropped ${report.droppedItems} per-item results (damaged, or naming a missing or corrupted blob)\n`);
    if (report.strayRemoved.length) process.stdout.write(`removed ${report.strayRemoved.length} stray files from the blob store\n`);
    for (const line of report.repaired) process.stdout.write(`${line}\n`);
    process.stdout.write(`${clean ? 'cache ok' : 'cache repaired'}: ${report.blobsChecked} blobs, ${mb(report.bytesChecked)} checked\n`);
  }
  return clean ? 0 : 1;
}

async function gc(cacheDir: string, lorafile: string, policy: GcPolicy, json: boolean): Promise<number> {
  if (!existsSync(cacheDir)) {
    process.stdout.write(`no cache at ${cacheDir}: nothing to collect\n`);
    return 0;
  }
  const pinned = await pinnedByLock(lorafile, cacheDir);
  const report = await withLock(cacheDir, 'lorabuild cache gc', () => {
    const result = gcCache(cacheDir, policy, pinned);
    // forget the hashes of files that are gone (removed blobs, deleted dataset files)
    StatMemo.prune(new CacheLayout(cacheDir).statMemo, existsSync);
    return result;
  });
  if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else
    process.stdout.write(
      `removed ${report.removedActions} cached builds, ${report.removedBlobs} blobs (${mb(report.removedBytes)}), ${report.removedItems} item results${report.removedFolderMemos ? `, ${report.removedFolderMemos} folder memos` : ""}; kept ${report.keptActions} builds (${mb(report.keptBytes)})\n`,
    );
  return 0;
}
