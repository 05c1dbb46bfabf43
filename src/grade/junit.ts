// JUnit XML for CI test tabs (GitHub, GitLab): one testsuite, one testcase per rubric check;
// a failed check is a <failure> whose message says what was found and what was expected.
import type { GradeReport } from './score.js';
import { printable } from '../text/printable.js';

export function escapeXml(text: string): string {
  // control characters shown as escapes (a CI log must not be driven by them); characters XML 1.0
  // cannot hold at all are dropped; the rest are escaped
  return printable(text)
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

export function junitXml(report: GradeReport): string {
  const failures = report.checks.filter((c) => !c.passed).length;
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="lorabuild grade" tests="${report.checks.length}" failures="${failures}">`,
    `  <testsuite name="${escapeXml(report.title)}" tests="${report.checks.length}" failures="${failures}" errors="0" skipped="0">`,
    `    <properties><property name="points" value="${report.points}"/><property name="earned" value="${report.earned}"/></properties>`,
  ];
  for (const c of report.checks) {
    const open = `    <testcase classname="rubric" name="${escapeXml(`${c.id}: ${c.title} (${c.points} pts)`)}"`;
    if (c.passed) {
      lines.push(`${open}/>`);
      continue;
    }
    const message = c.messages.join('; ');
    lines.push(`${open}>`, `      <failure message="${escapeXml(message)}" type="rubric">${escapeXml(c.messages.join('\n'))}</failure>`, '    </testcase>');
  }
  lines.push('  </testsuite>', '</testsuites>', '');
  return lines.join('\n');
}
