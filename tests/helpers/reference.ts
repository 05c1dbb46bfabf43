// Reference data the tests read, all inside the repository: the CLIP vocabulary that ships with
// lorabuild (assets/clip), a Hugging Face-layout copy of it (vocab.json + merges.txt) written from
// that file by this helper, and the SD1.5 key manifests (tests/fixtures/reference, with their
// source note).
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { REPO_ROOT } from './cli.js';

export const CLIP_BPE_GZ = join(REPO_ROOT, 'assets', 'clip', 'bpe_simple_vocab_16e6.txt.gz');
export const SD15_MANIFEST_DIR = join(REPO_ROOT, 'tests', 'fixtures', 'reference', 'sd15-key-manifest');

/** GPT-2/CLIP's byte -> character table, in CLIP's order (printable ranges first). Written here
 * independently of src/text so that the HF-layout files test the loader rather than mirror it. */
function byteChars(): string[] {
  const bs: number[] = [];
  for (const [lo, hi] of [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]]) for (let b = lo; b <= hi; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return cs.map((c) => String.fromCharCode(c));
}

/** vocab.json + merges.txt (and the .gz itself) in a folder, as CLIP's HF tokenizer has them. */
function writeHfTokenizer(): string {
  const dir = join(REPO_ROOT, 'tests', '.tmp', 'clip-tokenizer');
  if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt')) && existsSync(join(dir, 'bpe_simple_vocab_16e6.txt.gz'))) return dir;
  const lines = gunzipSync(readFileSync(CLIP_BPE_GZ)).toString('utf8').split('\n');
  const merges = lines.slice(1, 1 + 49152 - 256 - 2);
  const chars = byteChars();
  const tokens = [...chars, ...chars.map((c) => `${c}</w>`), ...merges.map((m) => m.split(' ').join('')), '<|startoftext|>', '<|endoftext|>'];
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const tmp = `${dir}.${process.pid}.${Date.now()}`;
  mkdirSync(tmp, { recursive: true });
  writeFileSync(join(tmp, 'vocab.json'), JSON.stringify(vocab));
  writeFileSync(join(tmp, 'merges.txt'), `#version: 0.2\n${merges.join('\n')}\n`);
  writeFileSync(join(tmp, 'bpe_simple_vocab_16e6.txt.gz'), readFileSync(CLIP_BPE_GZ));
  try {
    renameSync(tmp, dir);
  } catch {
    // another test file wrote the same folder first: its bytes are the same
  }
  return dir;
}

/** A folder with vocab.json, merges.txt and bpe_simple_vocab_16e6.txt.gz. */
export const CLIP_TOKENIZER_DIR = writeHfTokenizer();
