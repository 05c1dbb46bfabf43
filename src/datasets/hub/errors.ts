// Every hub problem is a HubError: what went wrong (naming the repo, revision or file) and how to fix it.
import type { Diagnostic } from '../../config/diagnostic.js';

export type HubErrorCode =
  | 'repo-not-found'
  | 'revision-not-found'
  | 'auth-required'
  | 'gated'
  | 'forbidden'
  | 'offline-not-cached'
  | 'network'
  | 'http'
  | 'download-mismatch'
  | 'bad-response'
  | 'no-split'
  | 'unknown-column'
  | 'bad-parquet'
  | 'bad-metadata'
  | 'no-space'
  | 'bad-model';

export class HubError extends Error {
  readonly code: HubErrorCode;
  readonly hint: string | undefined;
  /** the file the problem is in (repo path or absolute path), when there is one */
  readonly file: string | undefined;
  readonly line: number | undefined;

  constructor(code: HubErrorCode, message: string, options: { hint?: string; file?: string; line?: number; cause?: unknown } = {}) {
    super(options.hint ? `${message}\n  hint: ${options.hint}` : message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HubError';
    this.code = code;
    this.hint = options.hint;
    this.file = options.file;
    this.line = options.line;
  }

  /** the message without the hint line */
  get summary(): string {
    return this.hint ? this.message.slice(0, this.message.indexOf('\n  hint: ')) : this.message;
  }

  toDiagnostic(): Diagnostic {
    return {
      severity: 'error',
      code: this.code,
      message: this.summary,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.file ? { file: this.file } : {}),
      ...(this.line ? { line: this.line } : {}),
    };
  }
}
