// `publish:` copies a finished LoRA where another tool looks for it (ComfyUI's models/loras).
// The copy is atomic. An existing file is replaced only when it is an earlier version of the same
// LoRA (lorabuild wrote it for this lora name); anything else there is the user's and is kept.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { copyFileAtomic } from '../cache/atomic.js';
import { readSafetensorsHeader } from './io.js';

export interface PublishRequest {
  loraName: string;
  source: string;
  /** absolute target path */
  target: string;
  /** the target as logs and messages show it (`~/ComfyUI/...`) */
  shown?: string;
  log: (line: string) => void;
}

export class PublishError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublishError';
  }
}

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

/**
 * Why a LoRA cannot be published to `target` (shown as `shown`), or null. The folder must exist,
 * except a loras/ folder inside an existing models/ folder (a ComfyUI install without LoRAs yet):
 * that one folder is created, nothing above it, so a mistyped ComfyUI path never grows a new tree.
 */
export function publishFolderProblem(target: string, shown: string): { message: string; hint: string } | null {
  if (extname(target).toLowerCase() !== '.safetensors') {
    return { message: `publish: ${shown} does not end in .safetensors`, hint: 'name the file NAME.safetensors: ComfyUI and A1111 load LoRAs from .safetensors files' };
  }
  const folder = dirname(target);
  const shownFolder = dirname(shown);
  let isDir: boolean | undefined;
  try {
    isDir = statSync(folder).isDirectory();
  } catch {
    isDir = undefined;
  }
  if (isDir) return null;
  if (isDir === false) return { message: `publish: ${shownFolder} is a file, not a folder`, hint: 'point `publish:` into a folder' };
  const parent = dirname(folder);
  if (basename(folder) === 'loras' && basename(parent) === 'models' && existsSync(parent)) return null;
  return {
    message: `publish: the folder ${shownFolder} does not exist`,
    hint: `lorabuild creates no folders there, except loras/ inside an existing ComfyUI models/ folder: check the ComfyUI path in \`publish:\`, or create ${shownFolder} first`,
  };
}

/** Returns the target path; throws PublishError (naming the file and the way out) when it must not overwrite. */
export async function publishLora(req: PublishRequest): Promise<string> {
  const shown = req.shown ?? req.target;
  const problem = publishFolderProblem(req.target, shown);
  if (problem) throw new PublishError(`${problem.message}; nothing was written.\n  hint: ${problem.hint}`);
  if (!existsSync(dirname(req.target))) {
    mkdirSync(dirname(req.target));
    req.log(`publish: created ${dirname(shown)}/`);
  }
  if (existsSync(req.target)) {
    if ((await sha256(req.target)) === (await sha256(req.source))) return req.target;
    const owner = await readSafetensorsHeader(req.target).then((h) => h.metadata['lorabuild.lora'], () => undefined);
    if (owner !== req.loraName) {
      throw new PublishError(
        `publish: ${shown} already exists and is not an earlier version of lora '${req.loraName}'` +
          `${owner ? ` (it was trained for '${owner}')` : ''}; it was left untouched.\n` +
          '  hint: move or delete that file, or point `publish:` somewhere else',
      );
    }
    req.log(`publish: replacing the earlier version of ${req.loraName} at ${shown}`);
  }
  copyFileAtomic(req.source, req.target);
  req.log(`publish: wrote ${shown}`);
  return req.target;
}
