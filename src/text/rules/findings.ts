// Collects the diagnostics of the caption/image rules, each at the severity its `rules:` entry
// gives (error | warning | off). The diagnostic code is the rule's name, so the user knows what to
// write in `rules:` to change it. The rules and where they live:
//   missing_caption, missing_image, undecodable, too_small, aspect, extension (file named .png
//     holding a JPEG)                                   image.ts
//   encoding (not UTF-8, control characters), whitespace (BOM, CR/CRLF, leading/trailing spaces, trailing blank
//     lines), empty_caption                            caption-bytes.ts
//   too_long (limit max_tokens, with the words cut off), trigger_missing      caption-tokens.ts
//   numbering (lab: gaps, files not named by a number), duplicates (lab: a number used twice),
//     extension (files that belong to no item), duplicate_image, duplicate_caption   dataset.ts
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
