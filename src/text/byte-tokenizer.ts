// The tokenizer of `builtin: tiny` models: one id per UTF-8 byte (0..255), BOS 256, EOS 257 (also
// the padding), 77 positions. The text is used exactly as given (no cleaning, no lowercasing).
import { padIds, type Encoded, type Tokenizer } from './tokenizer.js';

const BOS = 256;
const EOS = 257;
const CONTEXT = 77;

function encodeBytes(text: string): Encoded {
  const ids: number[] = [];
  const tokens: string[] = [];
  const spans: [number, number][] = [];
  let offset = 0;
  for (const ch of text) {
    const bytes = Buffer.from(ch, 'utf8');
    const span: [number, number] = [offset, offset + ch.length];
    for (const b of bytes) {
      ids.push(b);
      tokens.push(bytes.length === 1 && b >= 0x20 && b < 0x7f ? ch : `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      spans.push(span);
    }
    offset += ch.length;
  }
  return { ids, tokens, spans };
}

export function byteTokenizer(): Tokenizer {
  return {
    id: 'byte-v1',
    vocabSize: 258,
    bos: BOS,
    eos: EOS,
    contextLength: CONTEXT,
    encode: encodeBytes,
    encodePadded: (text) => padIds(encodeBytes(text).ids, BOS, EOS, CONTEXT),
  };
}
