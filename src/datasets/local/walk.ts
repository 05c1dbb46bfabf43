// Lists every file of a dataset folder, refusing anything that leads outside it: a symlink whose
// target lies elsewhere would let a dataset read (and a report show) arbitrary files.
// Synchronous on purpose: every no-op run walks the folder, and one lstat per file through the
// thread pool costs ten times more than the call itself (10,000 images: ~2 s vs ~0.1 s here).
//
// The names in each folder may come from a DirNames memo (dir-names.ts) instead of readdir: a
// folder whose own stat is unchanged holds the same names, which were sorted and checked when they
// were read. Every entry is still lstat-ed on every walk: editing a file does not touch its folder.
// A regular file's numbers come without an fs.Stats object where Node allows (file-numbers.ts).
import * as fs from 'node:fs';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { DatasetError } from './errors.js';
import { printableLine } from '../../text/printable.js';
import { dirRecordFor, reusableNames, type DirNames } from './dir-names.js';
import { FILE, GONE, OTHER, SKIP } from './stat-share.js';
import { regularFileNumbers } from './file-numbers.js';
import { PARALLEL_MIN, startStatJob, type BigFolder, type StatJobHandle } from './parallel-lstat.js';

export interface FolderFile {
  /** path inside the dataset folder, '/' separators */
  rel: string;
  abs: string;
  size: number;
  /** with size and ino: the stat the engine's stat memo keys on, so hashing needs no second stat */
  mtimeMs: number;
  ino: number;
}

export interface FolderWalk {
  /**
   * Every regular file, sorted by path: objects made on first read. A no-op run whose folder
   * matches its listing snapshot reads only `table` (20,000 objects and paths fewer to make).
   */
  readonly files: FolderFile[];
  /** the same files, in the same order, as columns */
  table: WalkTable;
  /** whether any symbolic link was followed (a watcher's walk cache cannot patch those) */
  followedLinks: boolean;
  /** names of every folder walked whose record can be trusted next time (racy ones left out) */
  dirs: DirNames;
  /** folders listed with readdir (the rest came from the memo) */
  dirsRead: number;
  /** folders of PARALLEL_MIN names or more, with their names joined by '\n' (stat-hint.ts) */
  bigFolders: BigFolder[];
  /**
   * The instant the first stat job of a big folder was handed out: before the walk began when the
   * job was prestarted from the stat hint, and the racy rule must count from there.
   */
  statsFrom?: number;
}

/** a walk's files as columns: file i is rels[i], with size, mtimeMs, ino at numbers[3i, 3i+3) */
export interface WalkTable {
  rels: string[];
  numbers: Float64Array;
}

/** the file system calls a walk makes (tests count them) */
export interface WalkFs {
  statSync: typeof fs.statSync;
  lstatSync: typeof fs.lstatSync;
  readdirSync: typeof fs.readdirSync;
  realpathSync: typeof fs.realpathSync;
}

/** what statAll found at a name (OTHER: a folder or a symbolic link, whose Stats are kept) */
interface FolderStats {
  kinds: Uint8Array;
  /** size, mtimeMs, ino of each file */
  numbers: Float64Array;
  others: Map<number, Stats>;
}

const MAX_FILES = 1_000_000;
const MAX_DEPTH = 32;
// Characters that would break one-line diagnostics or terminal output (and never appear in a
// file name made on purpose): C0 and C1 controls, DEL, bidi overrides.
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** Dot-files and dot-folders (.git, .DS_Store, .ipynb_checkpoints) are not part of a dataset. */
function isHidden(name: string): boolean {
  return name.startsWith('.');
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** `dir` + separator, without doubling the separator of a root ('/', 'C:\') */
function withSep(dir: string): string {
  return dir.endsWith(path.sep) ? dir : dir + path.sep;
}

/**
 * Every regular file under `rootAbs`, sorted by path. `display` is the folder as the user wrote it,
 * used in error messages. Symlinks are followed only while they stay inside the folder.
 */
export async function walkDatasetFolder(rootAbs: string, display: string): Promise<FolderFile[]> {
  return walkDatasetFolderSync(rootAbs, display).files;
}

/** walkDatasetFolder, reusing the names of unchanged folders from `known` */
export function walkDatasetFolderSync(rootAbs: string, display: string, known?: DirNames, io: WalkFs = fs): FolderWalk {
  let rootStat: Stats;
  try {
    rootStat = io.statSync(rootAbs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DatasetError({
        code: 'folder-missing',
        file: display,
        message: `dataset folder does not exist (looked for ${rootAbs})`,
        hint: 'check `folder:` in the lorafile; relative paths are resolved against the folder of the lorafile',
      });
    }
    throw err;
  }
  if (!rootStat.isDirectory()) {
    throw new DatasetError({ code: 'folder-not-directory', file: display, message: `dataset folder ${rootAbs} is a file, not a folder`, hint: '`folder:` must name a folder of images and captions' });
  }
  const realRoot = io.realpathSync(rootAbs);
  // path.join's form of the root (normalised), so that every abs is what path.join would give
  const rootJoined = path.join(rootAbs, '.');
  // the files found, as columns (see WalkTable)
  const rels: string[] = [];
  let fileNumbers: Float64Array = new Float64Array(3 * 1024);
  const visited = new Set<string>([realRoot]);
  const dirs: DirNames = new Map();
  let followedLinks = false;
  let dirsRead = 0;
  let statsFrom: number | undefined;
  const bigFolders: BigFolder[] = [];

  /** the folder's names: from the memo when its stat is unchanged, else read, sorted and checked */
  function namesOf(dirAbs: string, dirRel: string, dirStat: Stats, useMemo: boolean): { names: string[]; fromMemo: boolean } {
    const kept = useMemo ? reusableNames(known, dirRel, dirStat) : undefined;
    if (kept) {
      dirs.set(dirRel, kept);
      return { names: kept.names, fromMemo: true };
    }
    dirsRead++;
    // taken before reading: a change after the read must find the folder's ctime past this instant
    const now = Date.now();
    const all = (io.readdirSync(dirAbs) as string[]).sort();
    // a name that is not UTF-8 comes back with U+FFFD in place of its bytes, and no file has that name
    if (all.some((n) => n.includes('\ufffd'))) checkUtf8Names(dirAbs, dirRel);
    const names: string[] = [];
    for (const name of all) {
      if (isHidden(name)) continue;
      if (CONTROL_CHARS.test(name)) {
        const rel = dirRel ? `${dirRel}/${name}` : name;
        throw new DatasetError({ code: 'bad-file-name', file: `${display}/${printableLine(rel)}`, message: `file name ${printableLine(JSON.stringify(name))} contains control characters`, hint: 'rename the file' });
      }
      names.push(name);
    }
    const record = dirRecordFor(dirStat, names, now);
    if (record) dirs.set(dirRel, record);
    return { names, fromMemo: false };
  }

  /**
   * lstat of every name, kept as numbers: a folder of 50,000 captions would otherwise hold 50,000
   * Stats objects (and their Dates) at once, which outlive the young generation and make every
   * garbage collection slower. Undefined when a remembered name is gone (the memo was wrong).
   */
  function statAll(prefix: string, names: string[], fromMemo: boolean): FolderStats | undefined {
    // a big folder: this thread and a helper thread claim chunks of it (only on the real file system)
    let job: StatJobHandle | undefined;
    if (names.length >= PARALLEL_MIN) {
      const joined = names.join('\n');
      bigFolders.push({ prefix, names: joined, count: names.length });
      if (io === fs) job = startStatJob(prefix, joined, names.length);
    }
    if (job) statsFrom = Math.min(statsFrom ?? Infinity, job.startedAt);
    let kinds = job?.kinds ?? new Uint8Array(names.length);
    let numbers = job?.numbers ?? new Float64Array(names.length * 3);
    const others = new Map<number, Stats>();
    const plainOnly = io !== fs;
    const statOne = (i: number): boolean => {
      if (!plainOnly && regularFileNumbers(prefix + names[i], numbers, i * 3)) {
        kinds[i] = FILE;
        return true;
      }
      const st = io.lstatSync(prefix + names[i], { throwIfNoEntry: !fromMemo });
      if (!st) return false;
      if (st.isFile()) {
        kinds[i] = FILE;
        numbers[i * 3] = st.size;
        numbers[i * 3 + 1] = st.mtimeMs;
        numbers[i * 3 + 2] = st.ino;
      } else if (st.isDirectory() || st.isSymbolicLink()) {
        kinds[i] = OTHER;
        others.set(i, st);
      } else kinds[i] = SKIP;
      return true;
    };
    if (!job) {
      for (let i = 0; i < names.length; i++) if (!statOne(i)) return undefined;
      return { kinds, numbers, others };
    }
    // this thread's share: names[0, mine)
    let mine = 0;
    try {
      for (let range = job.claim(); range; range = job.claim()) {
        for (let i = range[0]; i < range[1]; i++) if (!statOne(i)) return undefined;
        mine = range[1];
      }
    } finally {
      job.abandon();
    }
    if (!job.helperDone()) {
      // the helper did not finish: the rest is stat-ed here, into copies it cannot still be writing
      kinds = kinds.slice();
      numbers = numbers.slice();
      for (let i = mine; i < names.length; i++) if (!statOne(i)) return undefined;
      return { kinds, numbers, others };
    }
    for (let i = mine; i < names.length; i++) {
      const kind = kinds[i];
      if (kind === FILE || kind === SKIP) continue;
      if (kind === GONE && fromMemo) return undefined;
      // folders and links (their Stats are needed), errors (thrown from here)
      if (!statOne(i)) return undefined;
    }
    return { kinds, numbers, others };
  }

  function visit(dirAbs: string, dirRel: string, dirReal: string, dirStat: Stats, depth: number): void {
    if (depth > MAX_DEPTH) {
      throw new DatasetError({ code: 'folder-too-deep', file: `${display}/${dirRel}`, message: `folders nest more than ${MAX_DEPTH} levels deep`, hint: 'flatten the dataset folder' });
    }
    const prefix = withSep(dirAbs);
    let { names, fromMemo } = namesOf(dirAbs, dirRel, dirStat, true);
    let stats = statAll(prefix, names, fromMemo);
    if (!stats) {
      dirs.delete(dirRel);
      ({ names } = namesOf(dirAbs, dirRel, dirStat, false));
      stats = statAll(prefix, names, false)!;
    }
    const { kinds, numbers, others } = stats;
    const relPrefix = dirRel ? `${dirRel}/` : '';
    for (let i = 0; i < names.length; i++) {
      // Sockets, FIFOs and devices are skipped: reading a FIFO would block forever.
      if (kinds[i] === SKIP) continue;
      const name = names[i];
      const rel = relPrefix + name;
      const abs = prefix + name;
      if (kinds[i] === FILE) {
        addFile(rel, numbers[i * 3], numbers[i * 3 + 1], numbers[i * 3 + 2]);
        continue;
      }
      let info = others.get(i)!;
      let real: string;
      if (info.isSymbolicLink()) {
        followedLinks = true;
        let target: string;
        try {
          target = io.realpathSync(abs);
        } catch {
          throw new DatasetError({ code: 'broken-link', file: `${display}/${rel}`, message: 'is a symbolic link whose target does not exist', hint: 'remove the link or restore its target' });
        }
        if (!isInside(realRoot, target)) {
          throw new DatasetError({
            code: 'path-escape',
            file: `${display}/${rel}`,
            message: `is a link to ${target}, outside the dataset folder`,
            hint: 'copy the file into the dataset folder instead of linking to it',
          });
        }
        info = io.statSync(abs);
        if (info.isDirectory()) {
          if (visited.has(target)) continue;
          visited.add(target);
        }
        real = target;
      } else {
        // not a link: its real path is its folder's plus its name (no realpath call needed)
        real = withSep(dirReal) + name;
        visited.add(real);
      }
      if (info.isDirectory()) visit(abs, rel, real, info, depth + 1);
      else if (info.isFile()) addFile(rel, info.size, info.mtimeMs, info.ino);
    }
  }

  function addFile(rel: string, size: number, mtimeMs: number, ino: number): void {
    const i = rels.push(rel) - 1;
    if (fileNumbers.length < 3 * rels.length) {
      const grown = new Float64Array(fileNumbers.length * 2);
      grown.set(fileNumbers);
      fileNumbers = grown;
    }
    fileNumbers[3 * i] = size;
    fileNumbers[3 * i + 1] = mtimeMs;
    fileNumbers[3 * i + 2] = ino;
    if (rels.length > MAX_FILES) {
      throw new DatasetError({ code: 'too-many-files', file: display, message: `holds more than ${MAX_FILES} files`, hint: 'point `folder:` at the dataset itself, not a parent folder' });
    }
  }

  function checkUtf8Names(dirAbs: string, dirRel: string): void {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (const raw of io.readdirSync(dirAbs, { encoding: 'buffer' })) {
      try {
        decoder.decode(raw);
      } catch {
        const shown = raw.toString('latin1').replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
        throw new DatasetError({
          code: 'bad-file-name',
          file: `${display}/${dirRel ? `${dirRel}/` : ''}${shown}`,
          message: `file name is not valid UTF-8 (bytes ${[...raw].map((b) => b.toString(16).padStart(2, '0')).join(' ')}); names in a legacy encoding cannot be read portably`,
          hint: 'rename the file (e.g. with `convmv -f latin1 -t utf8`), or give it a plain ASCII name',
        });
      }
    }
  }

  visit(rootJoined, '', realRoot, rootStat, 0);
  // folders are visited in name order, which is path order unless a name sorts between a folder
  // and its contents ('a.txt' < 'a/b')
  const found = { rels, numbers: fileNumbers.subarray(0, 3 * rels.length) };
  const table: WalkTable = ascending(rels) ? found : sortedTable(found.rels, found.numbers);
  let files: FolderFile[] | undefined;
  const absPrefix = withSep(rootJoined);
  return {
    get files() {
      return (files ??= filesOf(table, absPrefix));
    },
    table,
    followedLinks,
    dirs,
    dirsRead,
    bigFolders,
    ...(statsFrom !== undefined ? { statsFrom } : {}),
  };
}

function ascending(rels: readonly string[]): boolean {
  for (let i = 1; i < rels.length; i++) if (!(rels[i - 1] < rels[i])) return false;
  return true;
}

function sortedTable(rels: readonly string[], numbers: Float64Array): WalkTable {
  const order = rels.map((_, i) => i).sort((a, b) => (rels[a] < rels[b] ? -1 : rels[a] > rels[b] ? 1 : 0));
  const sorted = new Float64Array(numbers.length);
  order.forEach((from, to) => sorted.set(numbers.subarray(3 * from, 3 * from + 3), 3 * to));
  return { rels: order.map((i) => rels[i]), numbers: sorted };
}

/** the table's files as objects; `absPrefix`: the walked root with its separator */
function filesOf(table: WalkTable, absPrefix: string): FolderFile[] {
  const { rels, numbers } = table;
  const files: FolderFile[] = new Array(rels.length);
  for (let i = 0; i < rels.length; i++) {
    const rel = rels[i];
    files[i] = { rel, abs: absPrefix + (path.sep === '/' ? rel : rel.replaceAll('/', path.sep)), size: numbers[3 * i], mtimeMs: numbers[3 * i + 1], ino: numbers[3 * i + 2] };
  }
  return files;
}
