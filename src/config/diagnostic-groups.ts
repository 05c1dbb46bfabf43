// A bad dataset can have a hundred thousand problems of one kind (every caption empty). Printing
// them all buries the other kinds and costs minutes; a person needs a few of each kind and a count.
// The full list always stays in the report file (validation.json).
import type { Diagnostic } from './diagnostic.js';

/** How many diagnostics of one kind (severity + code) are shown before the rest are counted. */
export const SHOWN_PER_KIND = 20;

/**
 * The first `perKind` diagnostics of each kind, in their original order, and after the last shown
 * one of a kind with more, one note: "… and 99,980 more `empty_caption` errors like these (all
 * of them: out/datasets/ds/validation.json)".
 */
export function groupDiagnostics(diagnostics: readonly Diagnostic[], allIn: string, perKind = SHOWN_PER_KIND): Diagnostic[] {
  const counts = new Map<string, number>();
  for (const d of diagnostics) counts.set(kindOf(d), (counts.get(kindOf(d)) ?? 0) + 1);
  if ([...counts.values()].every((n) => n <= perKind)) return [...diagnostics];
  const shown = new Map<string, number>();
  const out: Diagnostic[] = [];
  for (const d of diagnostics) {
    const kind = kindOf(d);
    const n = (shown.get(kind) ?? 0) + 1;
    shown.set(kind, n);
    if (n > perKind) continue;
    out.push(d);
    const total = counts.get(kind)!;
    if (n === perKind && total > perKind) out.push(moreOfKind(d, total - perKind, allIn));
  }
  return out;
}

function kindOf(d: Diagnostic): string {
  return `${d.severity}\u0000${d.code}`;
}

function moreOfKind(d: Diagnostic, more: number, allIn: string): Diagnostic {
  const noun = d.severity === 'info' ? 'notes' : `${d.severity}s`;
  return {
    severity: 'info',
    code: 'more-of-kind',
    message: `… and ${more.toLocaleString('en-US')} more \`${d.code}\` ${noun} like these (all of them: ${allIn})`,
    more: { severity: d.severity, count: more },
  };
}
