// The plain-text table `lorabuild grade` prints on stdout.
import type { GradeReport } from './score.js';
import { printable } from '../text/printable.js';

export function gradeTable(report: GradeReport): string {
  const width = Math.max(...report.checks.map((c) => c.id.length), 5);
  const lines = [`${report.title} (${report.rubric})`];
  for (const c of report.checks) {
    lines.push(`${c.passed ? 'pass' : 'FAIL'}  ${c.id.padEnd(width)}  ${String(c.earned).padStart(3)}/${String(c.points).padEnd(3)}  ${c.title}`);
    if (!c.passed) for (const m of c.messages) lines.push(`      ${' '.repeat(width)}  ${m}`);
  }
  lines.push(`total: ${report.earned} / ${report.points} points${report.passed ? '' : ` (${report.checks.filter((c) => !c.passed).length} checks failed)`}`);
  return `${printable(lines.join('\n'))}\n`;
}
