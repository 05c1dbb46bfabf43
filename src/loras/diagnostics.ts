// LoRA problems of a render as lorafile diagnostics, placed on the entry that names the LoRA
// (`file:` / `lora:` of its loras: item, or the render's `lora:` shorthand).
import { displayFileName } from '../config/display.js';
import { locatorOf } from '../config/lazy.js';
import type { Diagnostic } from '../config/diagnostic.js';
import type { RenderLoraEntry } from '../config/render-loras.js';
import type { Config } from '../config/schema.js';
import type { FitProblem } from './fit.js';
import { promptUses } from './triggers.js';

/** A diagnostic at the entry's `file:` or `lora:` value. */
export function atEntry(config: Config, render: string, entry: RenderLoraEntry, d: Pick<Diagnostic, 'severity' | 'code' | 'message' | 'hint'>): Diagnostic {
  const path = entry.at.length === 1 ? ['renders', render, ...entry.at] : ['renders', render, ...entry.at, entry.kind];
  const pos = locatorOf(config)?.value(path);
  return { ...d, message: `render '${render}': ${d.message}`, file: displayFileName(config.file), ...(pos ? { line: pos.line, col: pos.col, endCol: pos.endCol } : {}) };
}

export function fitDiagnostics(config: Config, render: string, entry: RenderLoraEntry, problems: FitProblem[]): Diagnostic[] {
  return problems.map((p) => atEntry(config, render, entry, p));
}

/** A warning when a LoRA has trigger words and no prompt of the render uses one of them. */
export function triggerWarning(config: Config, render: string, entry: RenderLoraEntry, label: string, triggers: string[], prompts: string[]): Diagnostic | null {
  if (triggers.length === 0 || prompts.some((p) => triggers.some((t) => promptUses(p, t)))) return null;
  const words = triggers.map((t) => `"${t}"`).join(', ');
  return atEntry(config, render, entry, {
    severity: 'warning',
    code: 'lora-trigger-missing',
    message: `no prompt contains a trigger word of ${label} (${words})`,
    hint: `LoRAs trained with a trigger word often show little without it: add ${triggers.length > 1 ? 'one of ' : ''}${words} to the prompts`,
  });
}
