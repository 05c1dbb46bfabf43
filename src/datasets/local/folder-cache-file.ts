// The files of cache/folders/ (folder memo, draft, listing snapshot): a set per dataset folder,
// named by a hash of its absolute path, each a line with its format's magic and a sha256 of the
// JSON body that follows: a torn or edited file never passes for a whole one.
import { createHash } from 'node:crypto';

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** the name the files of the dataset folder `rootAbs` share */
export function folderKey(rootAbs: string): string {
  return sha256(rootAbs).slice(0, 32);
}

export function framed(magic: string, body: Record<string, unknown>): string {
  const text = JSON.stringify(body);
  return `${magic} ${sha256(text)}\n${text}`;
}

/** the JSON object `text` frames, if it is whole and led by `magic`; else why it is not one */
export function unframed(text: string, magic: string): { body: Record<string, unknown> } | { problem: string } {
  const eol = text.indexOf('\n');
  if (eol < 0 || text.slice(0, eol) !== `${magic} ${sha256(text.slice(eol + 1))}`) return { problem: 'its checksum does not match its contents' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text.slice(eol + 1));
  } catch {
    return { problem: 'it is not valid JSON' };
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return { problem: 'it is malformed' };
  return { body: parsed as Record<string, unknown> };
}
