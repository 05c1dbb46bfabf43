// User paths in the lorafile: relative to the lorafile's folder, `~` for the home folder, and
// Windows spellings (students write lorafiles on Windows): `datasets\one-line-art`, `D:\data`.
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from './errors.js';
import { displayFileName } from './display.js';
import type { Config } from './schema.js';

const DRIVE = /^[A-Za-z]:([\\/]|$)/;
const UNC = /^\\\\/;

/** 1-based line and column of the first place `text` is written in `source` (plain or quoted). */
function findInSource(source: string, text: string): { line: number; col: number; endCol: number } | undefined {
  const at = source.indexOf(text);
  if (at < 0) return undefined;
  const before = source.slice(0, at);
  const line = before.split('\n').length;
  const col = at - (before.lastIndexOf('\n') + 1) + 1;
  return { line, col, endCol: col + text.length };
}

function windowsPathError(config: Pick<Config, 'root'> & Partial<Config>, p: string): ConfigError {
  const full = config.file !== undefined && config.source !== undefined ? (config as Config) : undefined;
  const span = full ? findInSource(full.source, p) : undefined;
  const drive = DRIVE.test(p) ? p[0].toLowerCase() : undefined;
  const rest = p.replace(DRIVE, '').replace(/\\/g, '/');
  return new ConfigError(
    [
      {
        severity: 'error',
        code: 'windows-path',
        file: full ? displayFileName(full.file) : undefined,
        line: span?.line,
        col: span?.col,
        endCol: span?.endCol,
        item: full ? undefined : p,
        message: `'${p}' is a Windows ${drive ? 'drive' : 'network'} path, which does not exist on this ${process.platform} system`,
        hint: drive
          ? `write a POSIX path instead: relative to the lorafile (e.g. ${path.posix.basename(rest) || 'data'}), or absolute (under WSL drive ${drive.toUpperCase()}: is /mnt/${drive}/${rest.replace(/^\//, '')})`
          : 'mount the share and write its POSIX path, or a path relative to the lorafile',
      },
    ],
    full?.source,
  );
}

/** Absolute path of a path written in the lorafile. */
export function resolveUserPath(config: Pick<Config, 'root'> & Partial<Config>, p: string, platform: NodeJS.Platform = process.platform): string {
  const impl = platform === 'win32' ? path.win32 : path.posix;
  if (p === '~' || /^~[\\/]/.test(p)) return impl.join(os.homedir(), p.slice(1).replace(/\\/g, '/'));
  if (platform === 'win32') return impl.resolve(config.root, p);
  if (DRIVE.test(p) || UNC.test(p)) throw windowsPathError(config, p);
  return impl.resolve(config.root, p.replace(/\\/g, '/'));
}

/** A path as shown to the user: relative to the lorafile's folder, with '/' separators. */
export function displayPath(config: Pick<Config, 'root'>, abs: string): string {
  const rel = path.relative(config.root, abs);
  if (rel === '') return '.';
  return rel.split(path.sep).join('/');
}

/**
 * A path for files that get committed (lorafile.lock, logs in out/): relative to the lorafile's
 * folder when inside it, `~/...` when under the home folder, else as it is. Two machines with the
 * same checkout write the same text.
 */
export function portablePath(config: Pick<Config, 'root'>, abs: string, home: string = os.homedir()): string {
  const inside = path.relative(config.root, abs);
  if (inside === '') return '.';
  if (!inside.startsWith('..') && !path.isAbsolute(inside)) return inside.split(path.sep).join('/');
  const fromHome = path.relative(home, abs);
  if (home && fromHome !== '' && !fromHome.startsWith('..') && !path.isAbsolute(fromHome)) return `~/${fromHome.split(path.sep).join('/')}`;
  return abs;
}
