// A stage's fingerprint: sha256 of the canonical JSON of everything that decides its outputs
// (DESIGN.md §5). Compute stages put worker/torch versions and device class into params.
import { canonicalHash } from './canonical.js';
import type { Json, StageKind, StageOutputs } from './types.js';

export interface FingerprintInput {
  kind: StageKind;
  version: number;
  params: Record<string, Json>;
  files: Record<string, string>;
  /** upstream stage id -> digest of its outputs */
  upstream: Record<string, string>;
}

export function fingerprint(input: FingerprintInput): string {
  return canonicalHash({
    kind: input.kind,
    version: input.version,
    params: input.params,
    files: input.files,
    upstream: input.upstream,
  });
}

/** What downstream fingerprints see of a stage: its output hashes and meta (not how they were made). */
export function outputsDigest(outputs: StageOutputs): string {
  const files: Record<string, Json> = {};
  for (const [name, f] of Object.entries(outputs.files)) files[name] = f.sha256;
  return canonicalHash({ files, meta: outputs.meta });
}
