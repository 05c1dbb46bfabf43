// Build a CLIP tokenizer from a file or folder: a bpe_simple_vocab_16e6.txt.gz, a folder holding
// vocab.json + merges.txt (or such a folder's tokenizer/ subfolder), or one of those two files.
// Loaded tokenizers are shared per resolved file set and its size+mtime.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ClipTokenizer } from './clip-tokenizer.js';
import { loadHfBpe, loadOpenAiBpe } from './bpe-vocab.js';

export const OPENAI_BPE_FILE = 'bpe_simple_vocab_16e6.txt.gz';

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

const loaded = new Map<string, Promise<ClipTokenizer>>();

function cacheKey(files: TokenizerFiles): string {
  const paths = files.kind === 'openai' ? [files.bpe] : [files.vocab, files.merges];
  return paths
    .map((p) => {
      const s = statSync(p);
      return `${p}:${s.size}:${s.mtimeMs}`;
    })
    .join('|');
}

export function loadClipTokenizer(files: TokenizerFiles): Promise<ClipTokenizer> {
  const key = cacheKey(files);
  let pending = loaded.get(key);
  if (!pending) {
    pending = (files.kind === 'openai' ? loadOpenAiBpe(files.bpe) : loadHfBpe(files.vocab, files.merges)).then((v) => new ClipTokenizer(v));
    pending.catch(() => loaded.delete(key));
    loaded.set(key, pending);
  }
  return pending;
}
