// A diffusers model as exactly the files a build chose (one variant per component, the configs):
// a folder of links in the lorabuild cache, models/<key>/, that the worker loads like any diffusers
// folder. The HF snapshot (or the user's folder) may hold more (the other variant, other
// components); the view makes what the worker loads the same as what the fingerprint names.
// Made under a temporary name and renamed into place; symlinks, else hard links, else copies.
import { copyFile, link, mkdir, readlink, rename, rm, stat, symlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { CacheLayout } from '../cache/layout.js';
import { sha256Hex } from '../engine/canonical.js';

async function place(target: string, at: string): Promise<void> {
  await mkdir(dirname(at), { recursive: true });
  try {
    await symlink(target, at);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  }
  try {
    await link(target, at);
  } catch {
    await copyFile(target, at);
  }
}

/** Whether an existing view still points at these files (the HF cache may have moved). */
async function sameView(dir: string, files: Record<string, string>): Promise<boolean> {
  try {
    for (const [rel, target] of Object.entries(files)) {
      const at = join(dir, ...rel.split('/'));
      const linked = await readlink(at).catch(() => undefined);
      if (linked !== undefined ? linked !== target : (await stat(at)).size !== (await stat(target)).size) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/** A folder holding `files` (relative path -> absolute file), under cacheDir/models/. */
export async function modelView(cacheDir: string, files: Record<string, string>): Promise<string> {
  const key = sha256Hex(JSON.stringify(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1))));
  const dir = new CacheLayout(cacheDir).modelView(key.slice(0, 32));
  if (await sameView(dir, files)) return dir;
  const temp = `${dir}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    for (const [rel, target] of Object.entries(files)) await place(target, join(temp, ...rel.split('/')));
    await rm(dir, { recursive: true, force: true });
    await rename(temp, dir);
  } catch (err) {
    await rm(temp, { recursive: true, force: true });
    if (await sameView(dir, files)) return dir; // another run made it meanwhile
    throw err;
  }
  return dir;
}
