// The error every config-level problem is thrown as: it carries all diagnostics found, not just the first.
import type { Diagnostic } from './diagnostic.js';

export class ConfigError extends Error {
  readonly diagnostics: Diagnostic[];
  /** text of the file the diagnostics point into, so the formatter can show the offending lines */
  readonly source: string | undefined;

  constructor(diagnostics: Diagnostic[], source?: string) {
    const first = diagnostics[0];
    const more = diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : '';
    super(first ? `${first.file ? `${first.file}: ` : ''}${first.message}${more}` : 'invalid configuration');
    this.name = 'ConfigError';
    this.diagnostics = diagnostics;
    this.source = source;
  }
}
