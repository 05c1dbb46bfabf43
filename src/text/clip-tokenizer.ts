// The CLIP BPE tokenizer of SD1.x (openai/CLIP simple_tokenizer, HF CLIPTokenizer for
// openai/clip-vit-large-patch14): clean, lower-case, pre-tokenize, byte-level BPE with '</w>'.
import { cleanForClip, WHITESPACE_CLASS } from './clean.js';
import { byteToUnicode, END_OF_TEXT, START_OF_TEXT, type BpeVocab } from './bpe-vocab.js';
import { padIds, type Encoded, type Tokenizer } from './tokenizer.js';

const PRETOKEN = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${WHITESPACE_CLASS}\\p{L}\\p{N}]+`,
  'giu',
);
const ASCII = /^[\x00-\x7f]*$/;
const WORD_CACHE_LIMIT = 200_000;
const BYTE_CHARS = byteToUnicode();

interface WordPieces {
  ids: number[];
  tokens: string[];
  /** UTF-8 length of each piece */
  byteLengths: number[];
}

/** What a tokenizer is, known without loading its vocabulary (see load.ts's identity memo). */
export interface ClipFacts {
  id: string;
  vocabSize: number;
  bos: number;
  eos: number;
}

export function factsOf(vocab: BpeVocab): ClipFacts {
  return { id: vocab.id, vocabSize: vocab.size, bos: vocab.encoder.get(START_OF_TEXT)!, eos: vocab.encoder.get(END_OF_TEXT)! };
}

export class ClipTokenizer implements Tokenizer {
  readonly id: string;
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  readonly contextLength = 77;
  private readonly words = new Map<string, WordPieces>();
  private loaded: BpeVocab | null = null;
  private loader: (() => BpeVocab) | null = null;

  /** `vocab`: the vocabulary, or a loader run on the first encode (fingerprinting needs only the facts) */
  constructor(vocab: BpeVocab | { facts: ClipFacts; load: () => BpeVocab }) {
    const facts = 'facts' in vocab ? vocab.facts : factsOf(vocab);
    if (!('facts' in vocab)) this.loaded = vocab;
    else this.loader = vocab.load;
    this.id = facts.id;
    this.vocabSize = facts.vocabSize;
    this.bos = facts.bos;
    this.eos = facts.eos;
  }

  /** whether the vocabulary is parsed (a tokenizer made from remembered facts parses it on its first encode) */
  get vocabLoaded(): boolean {
    return this.loaded !== null;
  }

  private get vocab(): BpeVocab {
    if (this.loaded === null) {
      const vocab = this.loader!();
      if (vocab.id !== this.id) throw new Error(`the tokenizer files changed while lorabuild ran (${vocab.source}); run again`);
      this.loaded = vocab;
    }
    return this.loaded;
  }

  get source(): string {
    return this.vocab.source;
  }

  encode(text: string): Encoded {
    const cleaned = cleanForClip(text);
    const s = cleaned.text;
    const ids: number[] = [];
    const tokens: string[] = [];
    const spans: [number, number][] = [];
    PRETOKEN.lastIndex = 0;
    for (let m = PRETOKEN.exec(s); m !== null; m = PRETOKEN.exec(s)) {
      const word = m[0];
      const pieces = this.pieces(word);
      const unitRanges = ASCII.test(word) ? asciiRanges(pieces.byteLengths) : unicodeRanges(word, pieces.byteLengths);
      for (let i = 0; i < pieces.ids.length; i++) {
        ids.push(pieces.ids[i]);
        tokens.push(pieces.tokens[i]);
        spans.push(cleaned.originalRange(m.index + unitRanges[i][0], m.index + unitRanges[i][1]));
      }
    }
    return { ids, tokens, spans };
  }

  encodeIds(text: string): number[] {
    const s = cleanForClip(text).text;
    const ids: number[] = [];
    PRETOKEN.lastIndex = 0;
    for (let m = PRETOKEN.exec(s); m !== null; m = PRETOKEN.exec(s)) {
      const pieces = this.pieces(m[0]).ids;
      for (let i = 0; i < pieces.length; i++) ids.push(pieces[i]);
    }
    return ids;
  }

  encodePadded(text: string) {
    return padIds(this.encodeIds(text), this.bos, this.eos, this.contextLength);
  }

  private pieces(word: string): WordPieces {
    let cached = this.words.get(word);
    if (cached === undefined) {
      cached = this.bpe(word);
      if (this.words.size >= WORD_CACHE_LIMIT) this.words.clear();
      this.words.set(word, cached);
    }
    return cached;
  }

  private bpe(word: string): WordPieces {
    const encoder = this.vocab.encoder;
    if (word === START_OF_TEXT || word === END_OF_TEXT) {
      return { ids: [encoder.get(word)!], tokens: [word], byteLengths: [word.length] };
    }
    const symbols: string[] = [];
    for (const byte of Buffer.from(word, 'utf8')) symbols.push(BYTE_CHARS[byte]);
    symbols[symbols.length - 1] += '</w>';
    const ranks = this.vocab.ranks;
    while (symbols.length > 1) {
      let best = Infinity;
      let first = '';
      let second = '';
      for (let i = 0; i < symbols.length - 1; i++) {
        const rank = ranks.get(symbols[i] + ' ' + symbols[i + 1]);
        if (rank !== undefined && rank < best) {
          best = rank;
          first = symbols[i];
          second = symbols[i + 1];
        }
      }
      if (best === Infinity) break;
      let write = 0;
      for (let read = 0; read < symbols.length; read++) {
        if (read < symbols.length - 1 && symbols[read] === first && symbols[read + 1] === second) {
          symbols[write++] = first + second;
          read++;
        } else {
          symbols[write++] = symbols[read];
        }
      }
      symbols.length = write;
    }
    return {
      ids: symbols.map((symbol) => {
        const id = encoder.get(symbol);
        if (id === undefined) throw new Error(`BPE symbol '${symbol}' is not in the vocabulary ${this.vocab.source}`);
        return id;
      }),
      tokens: symbols,
      byteLengths: symbols.map((symbol) => (symbol.endsWith('</w>') ? symbol.length - 4 : symbol.length)),
    };
  }
}

function asciiRanges(byteLengths: number[]): [number, number][] {
  let at = 0;
  return byteLengths.map((len) => [at, (at += len)]);
}

/** Map each piece's UTF-8 byte range to the UTF-16 range of the characters it touches. */
function unicodeRanges(word: string, byteLengths: number[]): [number, number][] {
  const charByteStart: number[] = [];
  const charUnitStart: number[] = [];
  let bytes = 0;
  let units = 0;
  for (const ch of word) {
    charByteStart.push(bytes);
    charUnitStart.push(units);
    const cp = ch.codePointAt(0)!;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    units += ch.length;
  }
  charByteStart.push(bytes);
  charUnitStart.push(units);
  const ranges: [number, number][] = [];
  let byteAt = 0;
  let charAt = 0;
  for (const len of byteLengths) {
    while (charByteStart[charAt + 1] <= byteAt) charAt++;
    const startUnit = charUnitStart[charAt];
    byteAt += len;
    let endChar = charAt;
    while (charByteStart[endChar + 1] < byteAt) endChar++;
    ranges.push([startUnit, charUnitStart[endChar + 1]]);
  }
  return ranges;
}
