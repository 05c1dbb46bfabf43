// Datasets with several captions per image (a list of strings): which one an item trains on.
// 'random' is seeded and depends only on (seed, row), so it is stable across runs and shard order.
import { createHash } from 'node:crypto';

export interface CaptionChoice {
  index: number;
  of: number;
  rule: 'first' | 'random';
}

export function chooseCaption(options: string[], rule: 'first' | 'random', seed: number, row: number): { text: string; choice: CaptionChoice } | null {
  if (options.length === 0) return null;
  let index = 0;
  if (rule === 'random') {
    const digest = createHash('sha256').update(`lorabuild caption choice ${seed} ${row}`).digest();
    index = digest.readUInt32BE(0) % options.length;
  }
  return { text: options[index], choice: { index, of: options.length, rule } };
}
