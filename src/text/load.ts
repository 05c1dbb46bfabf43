// Build a CLIP tokenizer from a file or folder: a bpe_simple_vocab_16e6.txt.gz, a folder holding
// vocab.json + merges.txt (or such a folder's tokenizer/ subfolder), or one of those two files.
// Loaded tokenizers are shared per file set and its size+mtime. With a cache folder, the
// tokenizer's identity is remembered there (tokenizers.json), so fingerprinting a no-op run does
// not parse the vocabulary: it loads on the first encode.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../cache/atomic.js';
import { ClipTokenizer, factsOf, type ClipFacts } from './clip-tokenizer.js';
import { loadHfBpe, loadOpenAiBpe, type BpeVocab } from './bpe-vocab.js';
import { readRegularFileSync } from '../cache/safe-fs.js';

export const OPENAI_BPE_FILE = 'bpe_simple_vocab_16e6.txt.gz';
const IDENTITY_MEMO = 'tokenizers.json';

export type TokenizerFiles = { kind: 'openai'; bpe: string } | { kind: 'hf'; vocab: string; merges: string };

/** The tokenizer files at `path` (file or folder), or null when there are none. */
export function findTokenizerFiles(path: string): TokenizerFiles | null {
  let info;
  try {
    info = statSync(path);
  } catch {
    return null;
  }
  if (info.isFile()) {
    if (path.endsWith('.gz')) return { kind: 'openai', bpe: path };
    const name = basename(path);
    if (name === 'vocab.json' || name === 'merges.txt') return findTokenizerFiles(dirname(path));
    return null;
  }
  for (const folder of [path, join(path, 'tokenizer')]) {
    const vocab = join(folder, 'vocab.json');
    const merges = join(folder, 'merges.txt');
    if (existsSync(vocab) && existsSync(merges)) return { kind: 'hf', vocab, merges };
    const bpe = join(folder, OPENAI_BPE_FILE);
    if (existsSync(bpe)) return { kind: 'openai', bpe };
  }
  return null;
}

function loadVocab(files: TokenizerFiles): BpeVocab {
  return files.kind === 'openai' ? loadOpenAiBpe(files.bpe) : loadHfBpe(files.vocab, files.merges);
}

/** path:size:mtime of every file: changes when any file is replaced or edited */
function stamp(files: TokenizerFiles): string {
  const paths = files.kind === 'openai' ? [files.bpe] : [files.vocab, files.merges];
  return paths
    .map((p) => {
      const s = statSync(p);
      return `${p}:${s.size}:${s.mtimeMs}`;
    })
    .join('|');
}

function readMemo(cacheDir: string): Record<string, ClipFacts> {
  try {
    const memo = JSON.parse(readRegularFileSync(join(cacheDir, IDENTITY_MEMO), 'utf8')) as unknown;
    return memo && typeof memo === 'object' && !Array.isArray(memo) ? (memo as Record<string, ClipFacts>) : {};
  } catch {
    return {};
  }
}

function isFacts(value: unknown): value is ClipFacts {
  const f = value as ClipFacts;
  return !!f && typeof f.id === 'string' && [f.vocabSize, f.bos, f.eos].every((n) => Number.isInteger(n));
}

const loaded = new Map<string, ClipTokenizer>();

export async function loadClipTokenizer(files: TokenizerFiles, cacheDir?: string): Promise<ClipTokenizer> {
  let key: string;
  try {
    key = stamp(files);
  } catch {
    return new ClipTokenizer(loadVocab(files)); // unreadable: let the loader name the problem
  }
  const known = loaded.get(key);
  if (known) return known;
  const remembered = cacheDir ? readMemo(cacheDir)[key] : undefined;
  let tokenizer: ClipTokenizer;
  if (isFacts(remembered)) {
    tokenizer = new ClipTokenizer({ facts: remembered, load: () => loadVocab(files) });
  } else {
    const vocab = loadVocab(files);
    tokenizer = new ClipTokenizer(vocab);
    if (cacheDir && existsSync(cacheDir)) writeFileAtomic(join(cacheDir, IDENTITY_MEMO), JSON.stringify({ ...readMemo(cacheDir), [key]: factsOf(vocab) }));
  }
  loaded.set(key, tokenizer);
  return tokenizer;
}
