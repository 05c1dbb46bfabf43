// Collects the diagnostics of one lorafile, each placed on the key or value it is about.
import type { Diagnostic } from './diagnostic.js';
import type { PathSegment, Span, YamlLocator } from './locate.js';

const SECTION_NOUN: Record<string, string> = { models: 'model', datasets: 'dataset', loras: 'lora', renders: 'render' };

/** "lora 'pokemon_lora'" for a path inside a section entry, or undefined at the top level. */
export function ownerOf(path: readonly PathSegment[]): string | undefined {
  const noun = SECTION_NOUN[String(path[0])];
  return noun && path.length >= 2 ? `${noun} '${path[1]}'` : undefined;
}

/** The field part of a path: ['loras','a','rules','max_tokens'] -> 'rules.max_tokens', prompts[0]. */
export function fieldOf(path: readonly PathSegment[]): string {
  const rest = ownerOf(path) ? path.slice(2) : path;
  let out = '';
  for (const segment of rest) out += typeof segment === 'number' ? `[${segment}]` : out ? `.${segment}` : segment;
  return out;
}

/** "lora 'a': " prefix for messages (empty at the top level). */
export function prefix(path: readonly PathSegment[]): string {
  const owner = ownerOf(path);
  return owner ? `${owner}: ` : '';
}

const pathId = (path: readonly PathSegment[]) => path.join('\u0000');

export class DiagnosticSink {
  readonly diagnostics: Diagnostic[] = [];
  private readonly reportedPaths = new Set<string>();

  constructor(
    private readonly file: string,
    readonly locator: YamlLocator,
  ) {}

  add(span: Span, code: string, message: string, hint: string | undefined, path?: readonly PathSegment[]): void {
    // two rules may object to one value in the same words (zod's int() and max() on a huge number)
    const same = this.diagnostics.some((d) => d.line === span.line && d.col === span.col && d.message === message);
    if (same) return;
    this.diagnostics.push({ severity: 'error', code, message, hint, file: this.file, line: span.line, col: span.col, endCol: span.endCol });
    if (path) this.reportedPaths.add(pathId(path));
  }

  atKey(path: readonly PathSegment[], code: string, message: string, hint?: string): void {
    this.add(this.locator.key(path), code, message, hint, path);
  }

  atValue(path: readonly PathSegment[], code: string, message: string, hint?: string): void {
    this.add(this.locator.value(path), code, message, hint, path);
  }

  /** Whether a problem was already reported for this exact path (so later checks do not repeat it). */
  reported(path: readonly PathSegment[]): boolean {
    return this.reportedPaths.has(pathId(path));
  }

  sorted(): Diagnostic[] {
    return [...this.diagnostics].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0));
  }
}
