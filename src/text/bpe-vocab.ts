// Loading a CLIP BPE vocabulary: openai's bpe_simple_vocab_16e6.txt.gz (merges only; the vocabulary
// is derived the way CLIP derives it) or Hugging Face's vocab.json + merges.txt. These files are
// untrusted input: sizes are capped and every line is checked before use.
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

/** CLIP uses merges lines[1 : 1 + 49152 - 256 - 2]. */
export const CLIP_MERGE_COUNT = 49152 - 256 - 2;
export const START_OF_TEXT = '<|startoftext|>';
export const END_OF_TEXT = '<|endoftext|>';

const MAX_COMPRESSED = 16 * 1024 * 1024;
const MAX_TEXT = 64 * 1024 * 1024;

export interface BpeVocab {
  /** vocabulary entry -> id */
  encoder: Map<string, number>;
  /** 'a b' -> merge rank */
  ranks: Map<string, number>;
  /** 'clip-bpe:' + sha256 of the merges and the vocabulary in id order */
  id: string;
  /** highest id + 1 (the text encoder's vocabulary size) */
  size: number;
  /** where it was loaded from, for messages */
  source: string;
}

export class VocabError extends Error {}

/** GPT-2/CLIP's reversible byte -> printable character table. */
export function byteToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  for (const b of printable) table[b] = String.fromCharCode(b);
  let extra = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + extra++);
  return table;
}

/** The byte characters in CLIP's vocabulary order (printable ranges first, then the rest). */
function byteCharsInVocabOrder(): string[] {
  const table = byteToUnicode();
  return [...table.keys()].sort((a, b) => table[a].charCodeAt(0) - table[b].charCodeAt(0)).map((b) => table[b]);
}

function readCapped(path: string, limit: number): Buffer {
  try {
    const size = statSync(path).size;
    if (size > limit) throw new VocabError(`${path}: ${size} bytes is too big for a CLIP tokenizer file (limit ${limit}); is this the right file?`);
    return readFileSync(path);
  } catch (err) {
    if (err instanceof VocabError) throw err;
    throw new VocabError(`${path}: cannot read the tokenizer file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

function decodeUtf8(path: string, bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new VocabError(`${path}: not valid UTF-8; a CLIP merges/vocab file is UTF-8 text`);
  }
}

/** Parse merge lines (header line first), as CLIP does: lines[1 : 1 + CLIP_MERGE_COUNT]. Each is 'a b'. */
function parseMerges(path: string, text: string): string[] {
  const lines = text.split('\n');
  if (!lines[0].includes('#version')) {
    throw new VocabError(`${path}:1:1: expected a '#version: 0.2' header line, found '${lines[0].slice(0, 40)}'; is this a BPE merges file?`);
  }
  const merges: string[] = [];
  const end = Math.min(lines.length, 1 + CLIP_MERGE_COUNT);
  for (let i = 1; i < end; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line === '' && i === lines.length - 1) break;
    const space = line.indexOf(' ');
    if (space <= 0 || space === line.length - 1 || line.indexOf(' ', space + 1) !== -1) {
      throw new VocabError(`${path}:${i + 1}:1: a merge line is two symbols separated by one space, found '${line.slice(0, 60)}'`);
    }
    merges.push(line);
  }
  if (merges.length === 0) throw new VocabError(`${path}: no merges found`);
  return merges;
}

const joined = (merge: string) => merge.replace(' ', '');

function finish(source: string, merges: string[], encoder: Map<string, number>, mergesPath: string): BpeVocab {
  for (const special of [START_OF_TEXT, END_OF_TEXT]) {
    if (!encoder.has(special)) throw new VocabError(`${source}: the vocabulary has no '${special}' token; this is not a CLIP tokenizer`);
  }
  for (const ch of byteToUnicode()) {
    if (!encoder.has(ch) || !encoder.has(ch + '</w>')) throw new VocabError(`${source}: the vocabulary lacks the byte symbol '${ch}'; this is not a byte-level CLIP vocabulary`);
  }
  const ranks = new Map<string, number>();
  merges.forEach((merge, rank) => {
    if (!encoder.has(joined(merge))) {
      throw new VocabError(`${mergesPath}:${rank + 2}:1: the merge '${merge}' makes '${joined(merge)}', which is not in the vocabulary; vocab.json and merges.txt do not belong together`);
    }
    if (!ranks.has(merge)) ranks.set(merge, rank);
  });
  // ids are 0..size-1 (checked on load), so the tokens in id order fill an array exactly
  const byId = new Array<string>(encoder.size);
  for (const [token, id] of encoder) byId[id] = token;
  const size = byId.length;
  const hash = createHash('sha256').update('clip-bpe-v1\n').update(merges.join('\n')).update('\n\n').update(byId.join('\n')).digest('hex');
  return { encoder, ranks, id: `clip-bpe:${hash}`, size, source };
}

/** openai/CLIP's bpe_simple_vocab_16e6.txt.gz (synchronous: a tokenizer may load on first use) */
export function loadOpenAiBpe(path: string): BpeVocab {
  const compressed = readCapped(path, MAX_COMPRESSED);
  let raw: Buffer;
  try {
    raw = gunzipSync(compressed, { maxOutputLength: MAX_TEXT });
  } catch (err) {
    throw new VocabError(`${path}: not a readable gzip file (${(err as Error).message})`);
  }
  const merges = parseMerges(path, decodeUtf8(path, raw));
  const bytes = byteCharsInVocabOrder();
  const tokens = [...bytes, ...bytes.map((c) => c + '</w>'), ...merges.map(joined), START_OF_TEXT, END_OF_TEXT];
  const encoder = new Map<string, number>();
  tokens.forEach((token, id) => encoder.set(token, id));
  return finish(path, merges, encoder, path);
}

/** Hugging Face CLIPTokenizer files (synchronous, like loadOpenAiBpe). */
export function loadHfBpe(vocabPath: string, mergesPath: string): BpeVocab {
  const vocabText = decodeUtf8(vocabPath, readCapped(vocabPath, MAX_TEXT));
  let parsed: unknown;
  try {
    parsed = JSON.parse(vocabText);
  } catch (err) {
    throw new VocabError(`${vocabPath}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new VocabError(`${vocabPath}: expected a JSON object mapping tokens to ids`);
  }
  const entries = Object.entries(parsed as Record<string, unknown>);
  const encoder = new Map<string, number>();
  const seen = new Set<number>();
  for (const [token, id] of entries) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= entries.length) {
      throw new VocabError(`${vocabPath}: token '${token.slice(0, 40)}' has id ${JSON.stringify(id)}; ids must be integers 0..${entries.length - 1}`);
    }
    if (seen.has(id)) throw new VocabError(`${vocabPath}: id ${id} is used twice (again by '${token.slice(0, 40)}')`);
    seen.add(id);
    encoder.set(token, id);
  }
  const mergesText = decodeUtf8(mergesPath, readCapped(mergesPath, MAX_TEXT));
  return finish(`${vocabPath} + ${mergesPath}`, parseMerges(mergesPath, mergesText.trim()), encoder, mergesPath);
}
