// What makes a folder made by `lorabuild init` installable on its own (a CI runner, a fork): a
// package.json that pins lorabuild as a dev dependency, and a package-lock.json so `npm ci` works.
// By default lorabuild packs itself into vendor/lorabuild-VERSION.tgz (nothing to publish, nothing
// to fetch but its own dependencies); --lorabuild-spec pins anything npm understands instead
// (a git URL with a tag, a registry version, another tarball).
//
// The lock is written from lorabuild's own package-lock.json: the vendored tarball plus every
// package lorabuild's runtime needs, at the versions and integrity hashes lorabuild was tested
// with, marked dev (lorabuild is a dev dependency here). No registry is asked.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../cache/atomic.js';

export const VENDOR_DIR = 'vendor';

interface LockPackage {
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  optional?: boolean;
  [key: string]: unknown;
}

interface Lockfile {
  name?: string;
  version?: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockPackage>;
}

export interface PackageFiles {
  /** lorabuild's devDependency spec in package.json */
  spec: string;
  /** files written, relative to the project folder */
  written: string[];
  /** why no package-lock.json was written (then `npm install` writes one) */
  noLock?: string;
}

function packageName(folder: string): string {
  const name = basename(folder).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[._-]+|[-]+$/g, '');
  return name || 'lorabuild-project';
}

/** npm pack of the lorabuild this runs from, into `dest`; returns the tarball's file name. */
async function packLorabuild(lorabuildRoot: string, dest: string): Promise<string> {
  mkdirSync(dest, { recursive: true });
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const { stdout } = await promisify(execFile)(npm, ['pack', '--silent', '--ignore-scripts', '--pack-destination', dest], { cwd: lorabuildRoot, windowsHide: true });
  const file = stdout.trim().split('\n').pop()!.trim();
  if (!file.endsWith('.tgz') || !existsSync(join(dest, file))) throw new Error(`npm pack printed '${stdout.trim()}' and left no tarball in ${dest}`);
  return file;
}

function integrityOf(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** The project's lock: lorabuild from `tarball` and lorabuild's runtime packages from its own lock. */
export function lockFor(name: string, spec: string, tarball: string, lorabuildLock: Lockfile, lorabuildPackage: Record<string, unknown>): Lockfile {
  const packages: Record<string, LockPackage> = {
    '': { name, devDependencies: { lorabuild: spec } },
  };
  const kept = Object.fromEntries(['license', 'dependencies', 'optionalDependencies', 'bin', 'engines'].filter((k) => lorabuildPackage[k] !== undefined).map((k) => [k, lorabuildPackage[k]]));
  packages['node_modules/lorabuild'] = { version: String(lorabuildPackage.version), resolved: spec, integrity: integrityOf(tarball), dev: true, ...kept };
  for (const [path, entry] of Object.entries(lorabuildLock.packages)) {
    if (path === '' || entry.dev || !path.startsWith('node_modules/')) continue;
    packages[path] = { ...entry, dev: true };
  }
  return { name, lockfileVersion: 3, requires: true, packages };
}

export interface PackageOptions {
  folder: string;
  /** the lorabuild installation init runs from */
  lorabuildRoot: string;
  /** --lorabuild-spec; undefined: vendor this lorabuild */
  spec?: string;
  scripts: Record<string, string>;
}

export async function writePackageFiles(options: PackageOptions): Promise<PackageFiles> {
  const { folder, lorabuildRoot } = options;
  const lorabuildPackage = JSON.parse(readFileSync(join(lorabuildRoot, 'package.json'), 'utf8')) as Record<string, unknown>;
  const written: string[] = [];
  let spec = options.spec;
  let tarball: string | undefined;
  if (spec === undefined) {
    const file = await packLorabuild(lorabuildRoot, join(folder, VENDOR_DIR));
    spec = `file:${VENDOR_DIR}/${file}`;
    tarball = join(folder, VENDOR_DIR, file);
    written.push(`${VENDOR_DIR}/${file}`);
  } else if (/^file:.*\.tgz$/.test(spec) && existsSync(resolve(folder, spec.slice('file:'.length)))) {
    tarball = resolve(folder, spec.slice('file:'.length));
  }
  const name = packageName(folder);
  const engines = lorabuildPackage.engines as Record<string, string> | undefined;
  const pkg = {
    name,
    private: true,
    description: 'made by lorabuild init: `npm ci` installs the lorabuild pinned here, then `npx lorabuild run`',
    scripts: options.scripts,
    devDependencies: { lorabuild: spec },
    ...(engines ? { engines } : {}),
    // npm 11 asks which install scripts may run: lorabuild needs none (onnxruntime-node's downloads a runtime only `caption` uses)
    ...(lorabuildPackage.allowScripts ? { allowScripts: lorabuildPackage.allowScripts } : {}),
  };
  writeFileAtomic(join(folder, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  written.push('package.json');

  const ownLock = join(lorabuildRoot, 'package-lock.json');
  if (!tarball) return { spec, written, noLock: `lorabuild comes from '${spec}', which only npm can resolve` };
  if (!existsSync(ownLock)) return { spec, written, noLock: `this lorabuild has no package-lock.json to take its dependencies' versions from` };
  const lock = lockFor(name, spec, tarball, JSON.parse(readFileSync(ownLock, 'utf8')) as Lockfile, lorabuildPackage);
  writeFileAtomic(join(folder, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
  written.push('package-lock.json');
  return { spec, written };
}
