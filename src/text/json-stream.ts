// Writes a large report as JSON without building it as one string: the same bytes as
// JSON.stringify(value, null, 2) + '\n', with the top level's arrays written an element at a time.
// validation.json of 100,000 bad captions is ~60 MB of text; as one string (and its pretty-printing
// intermediates) it was most of the validate stage's peak memory.
import { closeSync, openSync, writeSync } from 'node:fs';

const FLUSH_AT = 1 << 20;

export function writeJsonStreamed(path: string, value: unknown): void {
  const fd = openSync(path, 'w');
  let pending = '';
  const out = (text: string) => {
    pending += text;
    if (pending.length >= FLUSH_AT) {
      writeSync(fd, pending);
      pending = '';
    }
  };
  try {
    writeValue(value, '', out, 0);
    out('\n');
    writeSync(fd, pending);
  } finally {
    closeSync(fd);
  }
}

/** Nested values below this depth are small: stringified whole, their lines shifted to their depth. */
const STREAM_DEPTH = 2;

function writeValue(value: unknown, pad: string, out: (text: string) => void, depth: number): void {
  if (depth >= STREAM_DEPTH || value === null || typeof value !== 'object' || typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    out((JSON.stringify(value, null, 2) ?? 'null').replace(/\n/g, `\n${pad}`));
    return;
  }
  const inner = `${pad}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return out('[]');
    out('[');
    value.forEach((element, i) => {
      out(`${i === 0 ? '' : ','}\n${inner}`);
      writeValue(element === undefined || typeof element === 'function' ? null : element, inner, out, depth + 1);
    });
    return out(`\n${pad}]`);
  }
  const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function' && typeof v !== 'symbol');
  if (entries.length === 0) return out('{}');
  out('{');
  entries.forEach(([key, v], i) => {
    out(`${i === 0 ? '' : ','}\n${inner}${JSON.stringify(key)}: `);
    writeValue(v, inner, out, depth + 1);
  });
  out(`\n${pad}}`);
}
