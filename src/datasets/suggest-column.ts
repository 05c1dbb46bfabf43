// "did you mean" for dataset column names (caption_column, image_column): a typo (`captoin` ->
// `caption`) or a prefixed variant of the name (`text` -> `en_text`). Local and hub datasets share it.
import { didYouMean } from '../config/suggest.js';

export function suggestColumn(wanted: string, columns: string[]): string | undefined {
  const typo = didYouMean(wanted, columns);
  if (typo) return typo;
  const lower = wanted.toLowerCase();
  return columns.find((c) => c.toLowerCase().split(/[_\-. ]/).includes(lower)) ?? columns.find((c) => c.toLowerCase().includes(lower));
}
