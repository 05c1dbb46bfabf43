// Is a lorafile.lock entry still what lorabuild wrote? An entry records a stage's params, input file
// hashes and upstream stages next to the fingerprint computed from exactly those (plus the outputs
// the upstream entries record). Recomputing that fingerprint from the entry itself tells a hand
// edit from a real change: editing `learning_rate` or a caption hash in the lock leaves the stored
// fingerprint behind. When the current inputs reproduce the stored fingerprint, the fields that
// differ from them are exactly the edited ones, and they are named.
import { canonicalJson } from './canonical.js';
import { fingerprint } from './fingerprint.js';
import { fileCount, longFilesDigest } from './file-tree.js';
import type { Json, LockEntry, StageKind } from './types.js';

export interface EntryEdit {
  /** false when the entry's own fingerprint does not match what it records */
  consistent: boolean;
  /**
   * The fields that differ from this build's inputs, as "params.learning_rate (0.0002 in the lock,
   * 0.0001 here)". When `exact`, these are the edited fields; otherwise candidates only.
   */
  fields: string[];
  /** the current inputs reproduce the stored fingerprint: `fields` are the edits, nothing else changed */
  exact: boolean;
}

export interface IntegrityInputs {
  kind: StageKind;
  /** the stage implementation's version now (used when the entry does not record its own) */
  implVersion: number;
  entry: LockEntry;
  /** this build's params and input files (environment params taken from the lock, as check does) */
  params: Record<string, Json>;
  files: Record<string, string>;
  /** upstream stage id -> digest of the outputs the lock records for it */
  upstream: Record<string, string>;
}

/** Whether the entry matches its own fingerprint and, if not, which fields were edited. */
export function entryIntegrity(input: IntegrityInputs): EntryEdit {
  const { entry } = input;
  const version = typeof entry.implVersion === 'number' ? entry.implVersion : input.implVersion;
  const recomputed = safeFingerprint({ kind: input.kind, version, params: entry.params, files: entry.files, ...(entry.filesTree ? { filesTree: entry.filesTree } : {}), upstream: input.upstream });
  if (recomputed === entry.fingerprint) return { consistent: true, fields: [], exact: true };
  const fields = [...differences('params', entry.params, input.params), ...fileDifferences(entry, input.files)];
  const exact = safeFingerprint({ kind: input.kind, version, params: input.params, files: input.files, upstream: input.upstream }) === entry.fingerprint;
  return { consistent: false, fields, exact };
}

function fileDifferences(entry: LockEntry, now: Record<string, string>): string[] {
  if (!entry.filesTree) return differences('files', entry.files, now);
  const digest = longFilesDigest(now);
  if (digest === entry.filesTree.digest) return [];
  return [`files (${entry.filesTree.count} files with digest ${entry.filesTree.digest.slice(0, 12)} in the lock, ${fileCount(now)} files${digest ? ` with digest ${digest.slice(0, 12)}` : ''} here)`];
}

function safeFingerprint(input: Parameters<typeof fingerprint>[0]): string | null {
  try {
    return fingerprint(input);
  } catch {
    // a value no build writes (a non-finite number): certainly not lorabuild's own fingerprint
    return null;
  }
}

function differences(section: string, recorded: Record<string, Json> | Record<string, string>, now: Record<string, Json> | Record<string, string>): string[] {
  const out: string[] = [];
  for (const key of Object.keys({ ...recorded, ...now }).sort()) {
    const a = safeCanonical(recorded[key]);
    const b = safeCanonical(now[key]);
    if (a === b) continue;
    out.push(`${section}.${key} (${shown(a)} in the lock, ${shown(b)} here)`);
  }
  return out;
}

function safeCanonical(value: Json | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    return canonicalJson(value);
  } catch {
    return String(value);
  }
}

function shown(text: string | undefined): string {
  if (text === undefined) return 'absent';
  const plain = /^"[^"\\]*"$/.test(text) ? text.slice(1, -1) : text;
  return plain.length > 40 ? `${plain.slice(0, 37)}...` : plain;
}
