// The safetensors container: an 8-byte little-endian header length, a JSON header
// { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: { key: string } },
// then the tensor bytes. Offsets are relative to the end of the header.
//
// Headers come from untrusted files, so parseHeader checks everything before any byte is used.
// The rules are the same here and in the Python worker (lorabuild_worker/safetensors_io.py), and
// every message names the file:
//   - the header length is at least 2 and at most MAX_HEADER_BYTES, inside the file, and it lists
//     at most MAX_TENSORS tensors;
//   - the header is valid UTF-8, nested at most MAX_HEADER_DEPTH deep (checked before parsing, so
//     a deep "[[[[..." never reaches a recursive parser), valid JSON, a JSON object;
//   - no key appears twice in one object (JSON parsers silently keep the last one);
//   - __metadata__ is an object of strings; every other entry has a known dtype, a shape of
//     non-negative integers and [begin, end] data_offsets whose span is shape x dtype bytes;
//   - the tensors tile the data section exactly: sorted by offset, no overlap, no gap, and the
//     last one ends where the file ends (as the reference implementation requires).

export const DTYPE_BYTES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;

/** Headers above this size are refused (real checkpoints have headers of a few hundred KB). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** header object -> tensor entry -> shape / data_offsets list: nothing valid nests deeper */
export const MAX_HEADER_DEPTH = 3;

/** An SDXL checkpoint has ~2,500 tensors, a LoRA of every layer a few thousand: 40x that is no model. */
export const MAX_TENSORS = 100_000;

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** absolute byte range inside the file */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** bytes before the tensor data: 8 + header length */
  dataStart: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

export function isDtype(value: unknown): value is Dtype {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, value);
}

/** Reads the header length from the first 8 bytes and checks it against the file size. */
export function parseHeaderLength(prefix: Buffer, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new SafetensorsError(file, `too short to be a safetensors file (${fileSize} bytes; the 8-byte header length is missing)`);
  }
  const length = prefix.readBigUInt64LE(0);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is corrupt or not safetensors`);
  }
  const n = Number(length);
  if (n < 2) throw new SafetensorsError(file, `header length ${n} is too small for a JSON object`);
  if (8 + n > fileSize) {
    throw new SafetensorsError(file, `header length ${n} runs past the end of the file (${fileSize} bytes); the file is truncated`);
  }
  return n;
}

/** Parses and checks the JSON header. `fileSize` bounds every tensor's byte range. */
export function parseHeader(json: Buffer, fileSize: number, file: string): SafetensorsHeader {
  const dataStart = 8 + json.length;
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM in the text, so JSON.parse refuses it as Python's json does
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(json);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8 text');
  }
  checkStructure(text, file);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new SafetensorsError(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError(file, 'header must be a JSON object of tensor entries');
  }
  const count = Object.keys(raw).length;
  if (count > MAX_TENSORS + 1) throw new SafetensorsError(file, `header lists ${count} entries; no model or LoRA has more than ${MAX_TENSORS} tensors`);
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const dataSize = fileSize - dataStart;
  for (const [name, entry] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = checkMetadata(entry, file);
      continue;
    }
    tensors.set(name, checkEntry(name, entry, dataStart, dataSize, file));
  }
  checkTiling([...tensors.values()], dataStart, fileSize, file);
  return { dataStart, tensors, metadata };
}

function checkMetadata(entry: unknown, file: string): Record<string, string> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new SafetensorsError(file, '__metadata__ must be an object of string values');
  }
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') {
      throw new SafetensorsError(file, `__metadata__.${key} must be a string (got ${typeof value})`);
    }
  }
  return entry as Record<string, string>;
}

function checkEntry(name: string, entry: unknown, dataStart: number, dataSize: number, file: string): TensorInfo {
  const where = `tensor '${name}'`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new SafetensorsError(file, `${where}: entry must be an object with dtype, shape, data_offsets`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isDtype(dtype)) {
    throw new SafetensorsError(file, `${where}: unknown dtype ${JSON.stringify(dtype)} (expected one of ${Object.keys(DTYPE_BYTES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `${where}: shape must be a list of non-negative integers (got ${JSON.stringify(shape)})`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new SafetensorsError(file, `${where}: data_offsets must be [begin, end] non-negative integers (got ${JSON.stringify(offsets)})`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw new SafetensorsError(file, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) {
    throw new SafetensorsError(file, `${where}: data_offsets end ${end} is past the data section (${dataSize} bytes); the file is truncated or corrupt`);
  }
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const expected = elements * DTYPE_BYTES[dtype];
  if (!Number.isSafeInteger(expected) || expected !== end - begin) {
    throw new SafetensorsError(file, `${where}: ${dtype}${JSON.stringify(shape)} needs ${expected} bytes but data_offsets span ${end - begin}`);
  }
  return { name, dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end };
}

/** The tensors must tile the data section: no overlap, no gap, nothing after the last one. */
function checkTiling(tensors: TensorInfo[], dataStart: number, fileSize: number, file: string): void {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = dataStart;
  let previous: TensorInfo | undefined;
  for (const t of sorted) {
    if (t.begin < cursor) {
      throw new SafetensorsError(file, `tensors '${previous?.name}' and '${t.name}' overlap (bytes ${t.begin}..${cursor} of the file)`);
    }
    if (t.begin > cursor) throw new SafetensorsError(file, `${t.begin - cursor} bytes of nothing before tensor '${t.name}' (data offset ${cursor - dataStart})`);
    cursor = t.end;
    previous = t;
  }
  if (cursor !== fileSize) {
    throw new SafetensorsError(file, `the tensors cover ${cursor - dataStart} bytes but the data section holds ${fileSize - dataStart}; the file has ${fileSize > cursor ? 'trailing bytes' : 'a gap'}`);
  }
}

/**
 * One pass over the header text, before JSON.parse: nesting depth (an adversarial "[[[[..." would
 * otherwise reach a recursive parser) and keys repeated within one object (JSON.parse keeps the
 * last silently, other readers the first: two tools would see two different files).
 */
function checkStructure(text: string, file: string): void {
  const keys: (Set<string> | null)[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i++;
      while (i < n && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c /* \ */ ? 2 : 1;
      const end = ++i;
      const container = keys[keys.length - 1];
      if (!container) continue; // a string inside a list (or malformed text: JSON.parse reports it)
      let j = end;
      while (j < n && (text[j] === ' ' || text[j] === '\n' || text[j] === '\r' || text[j] === '\t')) j++;
      if (text[j] !== ':') continue;
      const raw = text.slice(start, end);
      let key = raw.slice(1, -1);
      if (key.includes('\\')) {
        try {
          key = JSON.parse(raw) as string;
        } catch {
          continue;
        }
      }
      if (container.has(key)) throw new SafetensorsError(file, `header names ${JSON.stringify(key).slice(0, 200)} twice in one object`);
      container.add(key);
      if (keys.length === 1 && container.size > MAX_TENSORS + 1) throw new SafetensorsError(file, `header lists more than ${MAX_TENSORS + 1} entries; no model or LoRA has more than ${MAX_TENSORS} tensors`);
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      keys.push(c === 0x7b ? new Set() : null);
      if (keys.length > MAX_HEADER_DEPTH) throw new SafetensorsError(file, `header nests deeper than ${MAX_HEADER_DEPTH} levels; a safetensors header never does`);
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      keys.pop();
      i++;
    } else {
      i++;
    }
  }
}

/** Serialises a header (8-byte length + JSON padded with spaces to 8-byte alignment). */
export function encodeHeader(entries: { name: string; dtype: Dtype; shape: number[]; size: number }[], metadata: Record<string, string>): {
  header: Buffer;
  offsets: number[];
} {
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  const offsets: number[] = [];
  let offset = 0;
  for (const e of entries) {
    json[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.size] };
    offsets.push(offset);
    offset += e.size;
  }
  let text = Buffer.from(JSON.stringify(json), 'utf8');
  const pad = (8 - (text.length % 8)) % 8;
  if (pad) text = Buffer.concat([text, Buffer.alloc(pad, 0x20)]);
  const header = Buffer.alloc(8 + text.length);
  header.writeBigUInt64LE(BigInt(text.length), 0);
  text.copy(header, 8);
  return { header, offsets };
}
