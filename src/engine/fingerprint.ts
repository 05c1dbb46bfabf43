// A stage's fingerprint: sha256 of the canonical JSON of everything that decides its outputs
// (DESIGN.md §5). Compute stages put worker/torch versions and device class into params.
import { canonicalHash } from './canonical.js';
import { fileCount, longFilesDigest } from './file-tree.js';
import type { Json, StageKind, StageOutputs } from './types.js';

export interface FingerprintInput {
  kind: StageKind;
  version: number;
  params: Record<string, Json>;
  files: Record<string, string>;
  /** a long map as the lock records it (file-tree.ts): then `files` may be empty and its digest is what is hashed */
  filesTree?: { digest: string; count: number };
  /** upstream stage id -> digest of its outputs */
  upstream: Record<string, string>;
}

export function fingerprint(input: FingerprintInput): string {
  return canonicalHash({
    kind: input.kind,
    version: input.version,
    params: input.params,
    files: filesForm(input.files, input.filesTree),
    upstream: input.upstream,
  });
}

/** what a fingerprint hashes of the input files: the map itself, or a long map's digest */
export function filesForm(files: Record<string, string>, tree?: { digest: string; count: number }): Json {
  if (tree) return { $digest: tree.digest, count: tree.count };
  const digest = longFilesDigest(files);
  return digest === undefined ? files : { $digest: digest, count: fileCount(files) };
}

/** What downstream fingerprints see of a stage: its output hashes and meta (not how they were made). */
export function outputsDigest(outputs: StageOutputs): string {
  const files: Record<string, Json> = {};
  for (const [name, f] of Object.entries(outputs.files)) files[name] = f.sha256;
  return canonicalHash({ files, meta: outputs.meta });
}
