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
  // built with += and no intermediate arrays: item keys of 100,000 items are made on every run
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) text += (i === 0 ? '' : ',') + canonicalJson(value[i]);
    return `${text}]`;
  }
  const keys = Object.keys(value);
  for (let i = 1; i < keys.length; i++) {
    // most objects are built with their keys in order already
    if (keys[i - 1] > keys[i]) {
      keys.sort();
      break;
    }
  }
  let text = '{';
  for (const key of keys) {
    const v = value[key];
    if (v === undefined) continue;
    text += `${text.length === 1 ? '' : ','}${JSON.stringify(key)}:${canonicalJson(v)}`;
  }
  return `${text}}`;
}

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function canonicalHash(value: Json | undefined): string {
  return sha256Hex(canonicalJson(value));
}

export const SHA256_RE = /^[0-9a-f]{64}$/;
