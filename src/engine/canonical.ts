// Canonical JSON: object keys sorted, no whitespace. Two equal values always give the same text,
// so hashes of it are stable across runs, machines and key insertion order.
import { createHash } from 'node:crypto';
import type { Json } from './types.js';

export function canonicalJson(value: Json | undefined): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot fingerprint the non-finite number ${value}`);
    return JSON.stringify(value);
  }
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function canonicalHash(value: Json | undefined): string {
  return sha256Hex(canonicalJson(value));
}

export const SHA256_RE = /^[0-9a-f]{64}$/;
