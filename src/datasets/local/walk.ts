// Lists every file of a dataset folder, refusing anything that leads outside it: a symlink whose
// target lies elsewhere would let a dataset read (and a report show) arbitrary files.
// Synchronous on purpose: every no-op run walks the folder, and one lstat per file through the
// thread pool costs ten times more than the call itself (10,000 images: ~2 s vs ~0.1 s here).
import { lstatSync, readdirSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { DatasetError } from './errors.js';
import { printableLine } from '../../text/printable.js';

export interface FolderFile {
  /** path inside the dataset folder, '/' separators */
  rel: string;
  abs: string;
  size: number;
  /** with size and ino: the stat the engine's stat memo keys on, so hashing needs no second stat */
  mtimeMs: number;
  ino: number;
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

/**
 * Every regular file under `rootAbs`, sorted by path. `display` is the folder as the user wrote it,
 * used in error messages. Symlinks are followed only while they stay inside the folder.
 */
export async function walkDatasetFolder(rootAbs: string, display: string): Promise<FolderFile[]> {
  return walkDatasetFolderSync(rootAbs, display).files;
}

/** walkDatasetFolder, also saying whether any symbolic link was followed (a walk cache cannot patch those) */
export function walkDatasetFolderSync(rootAbs: string, display: string): { files: FolderFile[]; followedLinks: boolean } {
  let rootStat;
  try {
    rootStat = statSync(rootAbs);
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
  const realRoot = realpathSync(rootAbs);
  const files: FolderFile[] = [];
  const visited = new Set<string>([realRoot]);
  let followedLinks = false;

  function visit(dirAbs: string, dirRel: string, depth: number): void {
    if (depth > MAX_DEPTH) {
      throw new DatasetError({ code: 'folder-too-deep', file: `${display}/${dirRel}`, message: `folders nest more than ${MAX_DEPTH} levels deep`, hint: 'flatten the dataset folder' });
    }
    const names = readdirSync(dirAbs).sort();
    // a name that is not UTF-8 comes back with U+FFFD in place of its bytes, and no file has that name
    if (names.some((n) => n.includes('\ufffd'))) checkUtf8Names(dirAbs, dirRel, display);
    for (const name of names) {
      if (isHidden(name)) continue;
      const rel = dirRel ? `${dirRel}/${name}` : name;
      if (CONTROL_CHARS.test(name)) {
        throw new DatasetError({ code: 'bad-file-name', file: `${display}/${printableLine(rel)}`, message: `file name ${printableLine(JSON.stringify(name))} contains control characters`, hint: 'rename the file' });
      }
      const abs = path.join(dirAbs, name);
      let info = lstatSync(abs);
      if (info.isSymbolicLink()) {
        followedLinks = true;
        let target: string;
        try {
          target = realpathSync(abs);
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
        info = statSync(abs);
        if (info.isDirectory()) {
          if (visited.has(target)) continue;
          visited.add(target);
        }
      } else if (info.isDirectory()) {
        visited.add(realpathSync(abs));
      }
      if (info.isDirectory()) {
        visit(abs, rel, depth + 1);
      } else if (info.isFile()) {
        // Sockets, FIFOs and devices are skipped: reading a FIFO would block forever.
        files.push({ rel, abs, size: info.size, mtimeMs: info.mtimeMs, ino: info.ino });
        if (files.length > MAX_FILES) {
          throw new DatasetError({ code: 'too-many-files', file: display, message: `holds more than ${MAX_FILES} files`, hint: 'point `folder:` at the dataset itself, not a parent folder' });
        }
      }
    }
  }

  function checkUtf8Names(dirAbs: string, dirRel: string, display: string): void {
    const decoder = new TextDecoder('utf-8', { fatal: true });
    for (const raw of readdirSync(dirAbs, { encoding: 'buffer' })) {
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

  visit(rootAbs, '', 0);
  files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  return { files, followedLinks };
}
