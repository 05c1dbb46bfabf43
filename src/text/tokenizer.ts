// The tokenizer contract shared by validation, training and rendering: one tokenizer turns a
// caption into the ids the text encoder sees, so what validation reports is what training gets.

export interface Encoded {
  /** content ids, without BOS/EOS and without truncation */
  ids: number[];
  /** one display string per id (the vocabulary entry, e.g. 'cat</w>') */
  tokens: string[];
  /** per token: [start, end) offsets (UTF-16 code units) in the ORIGINAL text */
  spans: [number, number][];
}

export interface Padded {
  /** exactly contextLength ids: BOS, up to contextLength-2 content ids, EOS, then EOS padding */
  ids: number[];
  /** true when content ids were cut off to fit */
  truncated: boolean;
}

export interface Tokenizer {
  /** identity hash of the vocabulary + merges ('clip-bpe:<sha256>') */
  id: string;
  vocabSize: number;
  bos: number;
  eos: number;
  contextLength: number;
  encode(text: string): Encoded;
  encodePadded(text: string): Padded;
  /** encode(text).ids without building tokens and spans (validation's fast path) */
  encodeIds?(text: string): number[];
}

/** Frame content ids as the text encoder expects them: BOS, ids, EOS, EOS padding. */
export function padIds(ids: number[], bos: number, eos: number, contextLength: number): Padded {
  const room = contextLength - 2;
  const kept = ids.length > room ? ids.slice(0, room) : ids;
  const out = new Array<number>(contextLength).fill(eos);
  out[0] = bos;
  for (let i = 0; i < kept.length; i++) out[i + 1] = kept[i];
  return { ids: out, truncated: ids.length > room };
}
