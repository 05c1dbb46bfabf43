// The Markdown summary (for $GITHUB_STEP_SUMMARY and --markdown): score, then a table of checks.
import type { GradeReport } from './score.js';
import { printable } from '../text/printable.js';

const cell = (text: string) => printable(text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' '));

export function gradeMarkdown(report: GradeReport): string {
  const lines = [
    `## ${cell(report.title)}: ${report.earned} / ${report.points} points ${report.passed ? '✅' : '❌'}`,
    '',
    '| | check | points | details |',
    '|---|---|---:|---|',
  ];
  for (const c of report.checks) {
    lines.push(`| ${c.passed ? '✅' : '❌'} | ${cell(`${c.id}: ${c.title}`)} | ${c.earned} / ${c.points} | ${cell(c.messages.join('; '))} |`);
  }
  lines.push('');
  return `${lines.join('\n')}\n`;
}
