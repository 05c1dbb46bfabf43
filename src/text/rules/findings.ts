// Collects the diagnostics of the caption/image rules, each at the severity its `rules:` entry
// gives (error | warning | off). The diagnostic code is the rule's name, so the user knows what to
// write in `rules:` to change it.
import type { Diagnostic } from '../../config/diagnostic.js';
import type { RulesSpec } from '../../config/schema.js';

export type RuleName = Exclude<keyof RulesSpec, 'max_tokens' | 'min_size' | 'max_aspect'>;

export type Finding = Omit<Diagnostic, 'severity' | 'code'>;

export class Findings {
  readonly diagnostics: Diagnostic[] = [];
  constructor(private readonly rules: RulesSpec) {}

  enabled(rule: RuleName): boolean {
    return this.rules[rule] !== 'off';
  }

  add(rule: RuleName, finding: Finding): void {
    const severity = this.rules[rule];
    if (severity === 'off') return;
    this.diagnostics.push({ severity, code: rule, ...finding, hint: `${finding.hint ?? ''}${finding.hint ? '; ' : ''}rules.${rule}: off silences this` });
  }
}
