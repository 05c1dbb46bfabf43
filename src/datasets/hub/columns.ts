// A column named in the lorafile that the dataset does not have: list what it has and suggest one.
import { didYouMean } from '../../config/suggest.js';
import { HubError } from './errors.js';

/** A typo (`captoin` -> `caption`) or a prefixed variant of the name (`text` -> `en_text`). */
export function suggestColumn(wanted: string, columns: string[]): string | undefined {
  const typo = didYouMean(wanted, columns);
  if (typo) return typo;
  const lower = wanted.toLowerCase();
  return columns.find((c) => c.toLowerCase().split(/[_\-. ]/).includes(lower)) ?? columns.find((c) => c.toLowerCase().includes(lower));
}

export function unknownColumnError(repo: string, file: string, setting: 'caption_column' | 'image_column', wanted: string, columns: string[]): HubError {
  const suggestion = suggestColumn(wanted, columns);
  const listed = columns.map((c) => `\`${c}\``).join(', ');
  return new HubError('unknown-column', `dataset ${repo} has no column \`${wanted}\` (${setting}) in ${file}; its columns are ${listed}`, {
    file,
    hint: suggestion ? `did you mean \`${suggestion}\`? set ${setting}: ${suggestion}` : `set ${setting}: to one of ${listed}`,
  });
}
