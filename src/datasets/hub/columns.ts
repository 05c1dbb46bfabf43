// A column named in the lorafile that the dataset does not have: list what it has and suggest one.
import { suggestColumn } from '../suggest-column.js';
import { HubError } from './errors.js';

export function unknownColumnError(repo: string, file: string, setting: 'caption_column' | 'image_column', wanted: string, columns: string[]): HubError {
  const suggestion = suggestColumn(wanted, columns);
  const listed = columns.map((c) => `\`${c}\``).join(', ');
  return new HubError('unknown-column', `dataset ${repo} has no column \`${wanted}\` (${setting}) in ${file}; its columns are ${listed}`, {
    file,
    hint: suggestion ? `did you mean \`${suggestion}\`? set ${setting}: ${suggestion}` : `set ${setting}: to one of ${listed}`,
  });
}
