// A render prompt as ComfyUI's CLIPTextEncode turns it into token ids (comfy/sd1_clip.py
// tokenize_with_weights): each weighted segment is tokenized on its own, and the tokens are packed
// into chunks of the encoder's context (77: BOS, up to 75 tokens, EOS, EOS padding). A segment that
// no longer fits in the current chunk starts the next one, unless it has 8 tokens or more: then it
// is split at the chunk boundary. A prompt over 75 tokens therefore becomes several chunks, which
// the worker encodes one by one and concatenates, instead of being cut.
import { parsePromptWeights, type WeightedText } from './prompt-weights.js';
import type { Tokenizer } from './tokenizer.js';

/** ComfyUI's SDTokenizer.max_word_length: shorter segments move to the next chunk whole. */
const SPLIT_SEGMENTS_FROM = 8;

export interface PromptToken {
  id: number;
  token: string;
  weight: number;
  /** index into `segments` */
  segment: number;
}

export interface PromptChunk {
  /** exactly contextLength ids */
  ids: number[];
  /** one weight per id (1 for BOS, EOS and padding) */
  weights: number[];
}

export interface EncodedPrompt {
  segments: WeightedText[];
  /** the content tokens in order, without BOS/EOS/padding */
  tokens: PromptToken[];
  chunks: PromptChunk[];
  /** any weight other than 1: the worker then weighs against the empty prompt's encoding */
  weighted: boolean;
}

export function encodePrompt(tokenizer: Tokenizer, prompt: string): EncodedPrompt {
  const segments = parsePromptWeights(prompt);
  const groups: PromptToken[][] = segments.map((segment, index) => {
    const encoded = tokenizer.encode(segment.text);
    return encoded.ids.map((id, i) => ({ id, token: encoded.tokens[i], weight: segment.weight, segment: index }));
  });

  const length = tokenizer.contextLength;
  const room = length - 1; // a chunk ends with EOS
  const chunks: PromptChunk[] = [];
  let current: PromptChunk = { ids: [tokenizer.bos], weights: [1] };
  const close = (chunk: PromptChunk) => {
    chunk.ids.push(tokenizer.eos);
    chunk.weights.push(1);
    while (chunk.ids.length < length) {
      chunk.ids.push(tokenizer.eos);
      chunk.weights.push(1);
    }
    chunks.push(chunk);
  };
  for (const group of groups) {
    let rest = group;
    const splittable = group.length >= SPLIT_SEGMENTS_FROM;
    while (rest.length > 0) {
      if (current.ids.length + rest.length > room) {
        if (splittable) {
          const fits = room - current.ids.length;
          for (const t of rest.slice(0, fits)) {
            current.ids.push(t.id);
            current.weights.push(t.weight);
          }
          rest = rest.slice(fits);
        }
        close(current);
        current = { ids: [tokenizer.bos], weights: [1] };
      } else {
        for (const t of rest) {
          current.ids.push(t.id);
          current.weights.push(t.weight);
        }
        rest = [];
      }
    }
  }
  close(current);
  const tokens = groups.flat();
  return { segments, tokens, chunks, weighted: tokens.some((t) => t.weight !== 1) };
}

/** The weights the worker needs: null when every weight is 1 (then the prompt encodes as plain ids). */
export function chunkWeights(prompt: EncodedPrompt): number[][] | null {
  return prompt.weighted ? prompt.chunks.map((c) => c.weights) : null;
}
