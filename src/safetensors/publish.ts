// `publish:` copies a finished LoRA where another tool looks for it (ComfyUI's models/loras).
// The copy is atomic. An existing file is replaced only when it is an earlier version of the same
// LoRA (lorabuild wrote it for this lora name); anything else there is the user's and is kept.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { copyFileAtomic } from '../cache/atomic.js';
import { readSafetensorsHeader } from './io.js';

export interface PublishRequest {
  loraName: string;
  source: string;
  /** absolute target path */
  target: string;
  log: (line: string) => void;
}

export class PublishError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PublishError';
  }
}

const sha256 = async (file: string) => createHash('sha256').update(await readFile(file)).digest('hex');

/** Returns the target path; throws PublishError (naming the file and the way out) when it must not overwrite. */
export async function publishLora(req: PublishRequest): Promise<string> {
  const kind = entryKind(req.target);
  if (kind === 'folder') {
    throw new PublishError(`publish: ${req.target} is a folder; publish: names the file to write.\n  hint: write publish: ${join(req.target, `${req.loraName}.safetensors`)}`);
  }
  if (kind === 'other') throw new PublishError(`publish: ${req.target} exists and is not a regular file; it was left untouched.\n  hint: point \`publish:\` at a .safetensors file path`);
  if (kind === 'file') {
    if ((await sha256(req.target)) === (await sha256(req.source))) return req.target;
    const owner = await readSafetensorsHeader(req.target).then((h) => h.metadata['lorabuild.lora'], () => undefined);
    if (owner !== req.loraName) {
      throw new PublishError(
        `publish: ${req.target} already exists and is not an earlier version of lora '${req.loraName}'` +
          `${owner ? ` (it was trained for '${owner}')` : ''}; it was left untouched.\n` +
          '  hint: move or delete that file, or point `publish:` somewhere else',
      );
    }
    req.log(`publish: replacing the earlier version of ${req.loraName} at ${req.target}`);
  }
  copyFileAtomic(req.source, req.target);
  req.log(`publish: wrote ${req.target}`);
  return req.target;
}

/** What is at `target` now, following links (a link to a LoRA counts as that file). */
function entryKind(target: string): 'none' | 'file' | 'folder' | 'other' {
  try {
    const st = statSync(target);
    return st.isFile() ? 'file' : st.isDirectory() ? 'folder' : 'other';
  } catch {
    return 'none';
  }
}
