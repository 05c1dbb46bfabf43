// Prints diagnostics the way compilers do:
//
//   lorafile.yaml:12:5: error: unknown key 'learning_rte' in lora 'pokemon_lora'
//     12 |     learning_rte: 1.0e-4
//        |     ^~~~~~~~~~~~
//     hint: did you mean 'learning_rate'?
//
// Every module that reports problems to a person (lorafile, captions, datasets) prints through here.
import type { Diagnostic, Severity } from './diagnostic.js';
import { ConfigError } from './errors.js';
import { printable, printableLine } from '../text/printable.js';

export interface FormatOptions {
  /** ANSI colours (only when the caller knows the output is a terminal that wants them) */
  color?: boolean;
}

const ANSI = { bold: '\x1b[1m', red: '\x1b[31m', yellow: '\x1b[33m', cyan: '\x1b[36m', green: '\x1b[32m', reset: '\x1b[0m' };
const SEVERITY_COLOR: Record<Severity, string> = { error: ANSI.red, warning: ANSI.yellow, info: ANSI.cyan };

function location(d: Diagnostic): string {
  let loc = printableLine(d.file ?? '');
  if (d.file && d.line !== undefined) {
    loc += `:${d.line}`;
    if (d.col !== undefined) loc += `:${d.col}`;
  }
  if (d.item !== undefined) loc = loc ? `${loc} (${printableLine(d.item)})` : printableLine(d.item);
  return loc;
}

/** Longest source excerpt shown, and how much of it comes before the column when it is cut. */
const EXCERPT_WIDTH = 160;
const EXCERPT_LEAD = 40;

/** The source line and a `^~~~` marker under columns [col, endCol), or [] when there is nothing to show. */
function excerpt(d: Diagnostic, source: string | undefined, paint: (code: string, text: string) => string): string[] {
  if (source === undefined || d.line === undefined) return [];
  const text = source.split(/\r?\n/)[d.line - 1];
  if (text === undefined) return [];
  const gutter = String(d.line);
  // control characters show as escapes (a caption line may hold ESC): the marker counts them so
  const shown = (part: string) => printable(part).replace(/\n/g, '\\n');
  // a very long line (a 100,000-item flow list) is shown as a window around the column
  const col = Math.min(d.col ?? 1, text.length + 1);
  const from = text.length > EXCERPT_WIDTH ? Math.max(0, Math.min(col - 1 - EXCERPT_LEAD, text.length - EXCERPT_WIDTH)) : 0;
  const to = Math.min(text.length, from + EXCERPT_WIDTH);
  const before = from > 0 ? '…' : '';
  const lines = [`  ${gutter} | ${before}${shown(text.slice(from, to))}${to < text.length ? '…' : ''}`];
  if (d.col !== undefined) {
    const start = col;
    const end = Math.max(start + 1, Math.min(d.endCol ?? start + 1, to + 1));
    // keep tabs so the marker lines up with the text in any terminal
    const pad = (before + shown(text.slice(from, start - 1))).replace(/[^\t]/g, ' ');
    const marker = '^' + '~'.repeat(Math.max(1, shown(text.slice(start - 1, end - 1)).length) - 1);
    lines.push(`  ${' '.repeat(gutter.length)} | ${pad}${paint(ANSI.green, marker)}`);
  }
  return lines;
}

export function formatDiagnostic(d: Diagnostic, source?: string, options: FormatOptions = {}): string {
  const paint = (code: string, text: string) => (options.color ? `${code}${text}${ANSI.reset}` : text);
  const loc = location(d);
  const head = `${loc ? paint(ANSI.bold, `${loc}:`) + ' ' : ''}${paint(SEVERITY_COLOR[d.severity], `${d.severity}:`)} ${printable(d.message)}`;
  const lines = [head, ...excerpt(d, source, paint)];
  if (d.hint) lines.push(`  ${paint(ANSI.cyan, 'hint:')} ${printable(d.hint)}`);
  return lines.join('\n');
}

/** Several diagnostics, each followed by a blank line, then a count line ("2 errors, 1 warning"). */
export function formatDiagnostics(diagnostics: readonly Diagnostic[], source?: string, options: FormatOptions = {}): string {
  if (diagnostics.length === 0) return '';
  const blocks = diagnostics.map((d) => formatDiagnostic(d, source, options) + '\n');
  return `${blocks.join('\n')}\n${countLine(diagnostics)}\n`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function countLine(diagnostics: readonly Diagnostic[]): string {
  // a "… and N more" note counts for the N it stands for
  const count = (s: Severity) => diagnostics.reduce((n, d) => n + (d.more ? (d.more.severity === s ? d.more.count : 0) : d.severity === s ? 1 : 0), 0);
  const parts: string[] = [];
  if (count('error')) parts.push(plural(count('error'), 'error'));
  if (count('warning')) parts.push(plural(count('warning'), 'warning'));
  if (count('info')) parts.push(plural(count('info'), 'note'));
  return parts.join(', ');
}

/** Whether stderr should get colours: a TTY, and NO_COLOR unset (FORCE_COLOR forces them). */
export function stderrWantsColor(): boolean {
  if (process.env.FORCE_COLOR && process.env.FORCE_COLOR !== '0') return true;
  return Boolean(process.stderr.isTTY) && !process.env.NO_COLOR;
}

/**
 * For commands: print a ConfigError's diagnostics to stderr and return exit code 2.
 * Anything else is not a config problem and is rethrown.
 */
export function reportConfigError(err: unknown): number {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(formatDiagnostics(err.diagnostics, err.source, { color: stderrWantsColor() }));
  return 2;
}
