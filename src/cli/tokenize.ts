// lorabuild tokenize TEXT... [--json] [--model NAME [-f lorafile] | --vocab PATH]
// Prints the token ids and tokens the text encoder sees for a text (the words are joined with
// spaces, like echo), or for every line of stdin with `-`: as a training caption (cut after 75
// tokens) and, where it differs, as a render prompt (weights parsed, chunks of 75, as ComfyUI does).
// Exit 0: printed; 1: no tokenizer; 2: usage.
import { readFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import { reportConfigError } from '../config/format.js';
import { VocabError } from '../text/bpe-vocab.js';
import { findTokenizerFiles, loadClipTokenizer } from '../text/load.js';
import { encodePrompt, type EncodedPrompt } from '../text/prompt.js';
import { resolveClipTokenizer, resolveTokenizer, TokenizerNotFoundError } from '../text/resolve.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { lorafileOption, parseCommandArgs, UsageError } from './args.js';

const HELP = `usage: lorabuild tokenize TEXT... [--json] [--model NAME [-f lorafile.yaml] | --vocab PATH]
       lorabuild tokenize - [...]      one text per line of stdin

  --json        one JSON object per text: ids (with BOS/EOS), tokens, spans, count, truncated (as a
                caption), and prompt: segments, tokens, weights, chunks (as a render prompt)
  --model NAME  the tokenizer of that model in the lorafile (its own files, else the shipped one)
  --vocab PATH  a folder with vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz
  without either: LORABUILD_CLIP_TOKENIZER, else the CLIP vocabulary that ships with lorabuild
`;

const OPTIONS = {
  ...lorafileOption,
  json: { type: 'boolean' },
  model: { type: 'string' },
  vocab: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function chooseTokenizer(values: { file?: string; model?: string; vocab?: string }): Promise<Tokenizer> {
  if (values.vocab !== undefined) {
    const files = findTokenizerFiles(values.vocab);
    if (!files) throw new TokenizerNotFoundError(`--vocab ${values.vocab}`, [`${values.vocab}: no vocab.json + merges.txt, tokenizer/ folder or bpe_simple_vocab_16e6.txt.gz there`]);
    return loadClipTokenizer(files);
  }
  if (values.model !== undefined) {
    const config = await loadConfig(values.file);
    if (!config.models[values.model]) {
      throw new UsageError(`lorabuild tokenize: the lorafile has no model '${values.model}' (models: ${Object.keys(config.models).join(', ') || 'none'})`);
    }
    return resolveTokenizer(config, values.model);
  }
  return resolveClipTokenizer(undefined);
}

/** A render prompt's tokens with their weights, `(token:1.3)` where the weight is not 1, chunks split by ' | '. */
function weightedTokens(prompt: EncodedPrompt, tokenizer: Tokenizer): string {
  const parts: string[] = [];
  let content = 0;
  prompt.chunks.forEach((chunk, c) => {
    if (c > 0) parts.push('|');
    for (const id of chunk.ids.slice(1)) {
      if (id === tokenizer.eos) break;
      const t = prompt.tokens[content++];
      parts.push(t.weight === 1 ? t.token : `(${t.token}:${Number(t.weight.toPrecision(6))})`);
    }
  });
  return parts.join(' ');
}

function promptDiffers(prompt: EncodedPrompt, ids: number[]): boolean {
  return prompt.weighted || prompt.chunks.length > 1 || prompt.tokens.length !== ids.length || prompt.tokens.some((t, i) => t.id !== ids[i]);
}

function describe(tokenizer: Tokenizer, text: string, json: boolean): string {
  const { ids, tokens, spans } = tokenizer.encode(text);
  const prompt = encodePrompt(tokenizer, text);
  const limit = tokenizer.contextLength - 2;
  const [bosName, eosName] = ['<|startoftext|>', '<|endoftext|>'];
  if (json) {
    return JSON.stringify({
      text,
      tokenizer: tokenizer.id,
      count: ids.length,
      limit,
      truncated: ids.length > limit,
      ids: [tokenizer.bos, ...ids, tokenizer.eos],
      tokens: [bosName, ...tokens, eosName],
      spans: [[0, 0], ...spans, [text.length, text.length]],
      prompt: {
        count: prompt.tokens.length,
        segments: prompt.segments.map(({ text: t, weight, start }) => ({ text: t, weight, start })),
        tokens: prompt.tokens.map((t) => t.token),
        ids: prompt.tokens.map((t) => t.id),
        weights: prompt.tokens.map((t) => t.weight),
        chunks: prompt.chunks,
      },
    });
  }
  const lines = [`${JSON.stringify(text)}: ${ids.length} tokens (limit ${limit})`];
  lines.push(`  ids:    ${[tokenizer.bos, ...ids, tokenizer.eos].join(' ')}`);
  lines.push(`  tokens: ${[bosName, ...tokens, eosName].join(' ')}`);
  if (ids.length > limit) lines.push(`  as a training caption, cut off after ${limit} tokens: ${JSON.stringify(text.slice(spans[limit][0]).trim())}`);
  if (promptDiffers(prompt, ids)) {
    const chunks = prompt.chunks.length;
    lines.push(`  as a render prompt (weights and chunks as ComfyUI reads them): ${prompt.tokens.length} tokens in ${chunks} chunk${chunks === 1 ? '' : 's'} of ${limit}`);
    lines.push(`    ${weightedTokens(prompt, tokenizer)}`);
  }
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCommandArgs(argv, OPTIONS, 'tokenize');
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (positionals.length === 0) {
    process.stderr.write(`lorabuild tokenize: give the text to tokenize (or - to read lines from stdin)\n\n${HELP}`);
    return 2;
  }
  if (values.model !== undefined && values.vocab !== undefined) {
    process.stderr.write(`lorabuild tokenize: --model and --vocab exclude each other\n\n${HELP}`);
    return 2;
  }
  const texts = positionals.length === 1 && positionals[0] === '-' ? readFileSync(0, 'utf8').split(/\r?\n/).filter((l, i, all) => l !== '' || i < all.length - 1) : [positionals.join(' ')];
  let tokenizer: Tokenizer;
  try {
    tokenizer = await chooseTokenizer(values);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    if (err instanceof TokenizerNotFoundError || err instanceof VocabError) {
      process.stderr.write(`lorabuild tokenize: ${err.message}\n(or name the files with --vocab PATH)\n`);
      return 1;
    }
    return reportConfigError(err);
  }
  process.stdout.write(`${texts.map((t) => describe(tokenizer, t, values.json === true)).join('\n')}\n`);
  return 0;
}
