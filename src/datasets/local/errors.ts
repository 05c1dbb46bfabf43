// Errors about a dataset's files: each carries a Diagnostic (file, line, what is wrong, how to fix
// it) and a message that reads well on its own, as `path:line: message` followed by the hint.
import type { Diagnostic } from '../../config/diagnostic.js';

export class DatasetError extends Error {
  override name = 'DatasetError';
  readonly diagnostic: Diagnostic;

  constructor(diagnostic: Omit<Diagnostic, 'severity'>) {
    const where = diagnostic.file ? `${diagnostic.file}${diagnostic.line ? `:${diagnostic.line}${diagnostic.col ? `:${diagnostic.col}` : ''}` : ''}: ` : '';
    super(`${where}${diagnostic.message}${diagnostic.hint ? `\n  hint: ${diagnostic.hint}` : ''}`);
    this.diagnostic = { severity: 'error', ...diagnostic };
  }
}
