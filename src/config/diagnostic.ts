// One diagnostic shape for the whole tool: lorafile errors, caption rules, dataset problems.
// Printed as `path:line:col: severity: message`, the source line, a marker under the range, and a hint.

export type Severity = 'error' | 'warning' | 'info';

export interface Diagnostic {
  severity: Severity;
  /** stable rule/problem id, e.g. 'unknown-key', 'too_long', 'missing_caption' */
  code: string;
  message: string;
  /** how to fix it */
  hint?: string;
  /** display path (relative to the cwd or the lorafile) */
  file?: string;
  /** 1-based */
  line?: number;
  /** 1-based */
  col?: number;
  /** 1-based, exclusive; defaults to col + 1 */
  endCol?: number;
  /** the item (dataset item id, parquet row) when there is no file position */
  item?: string;
  /** a note that stands for this many diagnostics of one kind that are not shown (diagnostic-groups.ts) */
  more?: { severity: Severity; count: number };
}
