// One line per stage for `lorabuild status`.
import type { StageReport } from './executor.js';
import { printable } from '../text/printable.js';

export function stageStatusLine(r: StageReport, width: number): string {
  const reason = r.outcome === 'fresh' ? '' : printable(r.reason);
  return `${r.stage.padEnd(width)}  ${r.outcome.padEnd(7)}${reason ? `  ${reason}` : ''}`.trimEnd();
}
