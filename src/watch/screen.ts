// How watch shows itself. --json: every event as one line as it happens (stage events as `run`
// prints them, watch events as {"watch": ...}; per-item events only when the item ran). A
// terminal: a compact screen redrawn in place. Anything else: plain event lines.
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Diagnostic } from '../config/diagnostic.js';
import { formatDiagnostic, formatDiagnostics } from '../config/format.js';
import { progressText, stageLine } from '../engine/progress.js';
import type { StageEvent } from '../engine/types.js';
import type { WatchEvent } from './events.js';
import { ScreenModel, type DatasetView } from './screen-model.js';

export interface WatchScreen {
  stage(e: StageEvent): void;
  watch(e: WatchEvent): void;
}

export function makeScreen(kind: 'json' | 'tty' | 'plain', root: string, out: NodeJS.WriteStream = process.stdout): WatchScreen {
  if (kind === 'json') return new JsonScreen(out);
  return kind === 'tty' ? new TtyScreen(root, out) : new PlainScreen(root, out);
}

/** at most one progress line per stage this often (the last one always) */
const JSON_PROGRESS_MS = 200;

class JsonScreen implements WatchScreen {
  private readonly lastProgress = new Map<string, number>();
  constructor(private readonly out: NodeJS.WritableStream) {}
  stage(e: StageEvent): void {
    // a caption edit makes one item run and a thousand come from the memo: print what ran
    if (e.item !== undefined && e.outcome === 'cached') return;
    if (e.progress && e.progress.done !== e.progress.total) {
      const now = Date.now();
      if (now - (this.lastProgress.get(e.stage) ?? 0) < JSON_PROGRESS_MS) return;
      this.lastProgress.set(e.stage, now);
    }
    this.out.write(`${JSON.stringify(e)}\n`);
  }
  watch(e: WatchEvent): void {
    this.out.write(`${JSON.stringify(e)}\n`);
  }
}

function sourceOf(root: string, file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    const abs = resolve(root, file);
    return statSync(abs).size <= 1024 * 1024 ? readFileSync(abs, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function datasetHeadline(name: string, view: DatasetView): string {
  const counts = `${plural(view.errors, 'error')}, ${plural(view.warnings, 'warning')}`;
  if (view.status === 'stale') return `${name}: ${counts} — stale, rebuilding…`;
  if (view.status === 'unvalidated') return `${name}: not validated — ${view.note ?? ''}`;
  return `${name}: ${counts}`;
}

class PlainScreen implements WatchScreen {
  constructor(
    private readonly root: string,
    private readonly out: NodeJS.WritableStream,
  ) {}
  stage(e: StageEvent): void {
    if (e.item !== undefined || e.progress || e.diagnostics) return;
    if (e.outcome === 'started') this.out.write(`start     ${e.stage}${e.reason ? ` — ${e.reason}` : ''}\n`);
    else if (e.outcome) this.out.write(`${stageLine(e)}\n`);
  }
  watch(e: WatchEvent): void {
    const line = plainLine(e, this.root);
    if (line) this.out.write(line);
  }
}

function plainLine(e: WatchEvent, root: string): string | undefined {
  switch (e.watch) {
    case 'ready':
      return `watching ${e.lorafile} and ${plural(e.paths - 1, 'input path')}${e.through ? ` (through ${e.through})` : ''}; Ctrl-C stops\n`;
    case 'change':
      return `changed   ${e.path}\n`;
    case 'stale':
      return `stale     ${e.dataset}: diagnostics are out of date, rebuilding…\n`;
    case 'build':
      return `-- build ${e.build}${e.changes.length ? ` (${e.changes.slice(0, 3).join(', ')}${e.changes.length > 3 ? ', …' : ''})` : ''}\n`;
    case 'queued':
      return `queued    a rerun after build ${e.build}\n`;
    case 'cancel':
      return `cancel    ${e.stages.join(', ')}: ${e.path} changed; stopping at the next step (it resumes in the rerun)\n`;
    case 'config-error':
      return `${formatDiagnostics(e.diagnostics as unknown as Diagnostic[], sourceOf(root, (e.diagnostics[0] as unknown as Diagnostic | undefined)?.file))}${e.keeping ? 'lorafile invalid: still watching with the last good plan\n' : 'lorafile invalid: waiting for it to be fixed\n'}`;
    case 'diagnostics': {
      const view: DatasetView = { status: e.stale ? 'stale' : 'current', diagnostics: e.diagnostics as unknown as Diagnostic[], errors: e.errors, warnings: e.warnings };
      const body = view.diagnostics.map((d) => formatDiagnostic(d, sourceOf(root, d.file))).join('\n');
      return `${datasetHeadline(e.dataset, view)}\n${body}${body ? '\n' : ''}`;
    }
    case 'unvalidated':
      return `${e.dataset}: not validated — ${e.reason}\n`;
    case 'idle':
      return `-- build ${e.build} ${e.verdict} (${e.durationMs} ms); watching\n`;
    case 'waiting':
      return `waiting   for ${e.holder} to finish with the cache ${e.cache}\n`;
    case 'error':
      return `error     ${e.message}\n`;
    case 'stopped':
      return 'stopped\n';
    default:
      return undefined;
  }
}

const MAX_DIAGNOSTIC_LINES = 12;

class TtyScreen implements WatchScreen {
  private readonly model = new ScreenModel();
  private timer: NodeJS.Timeout | undefined;
  private ready: WatchEvent | undefined;
  constructor(
    private readonly root: string,
    private readonly out: NodeJS.WriteStream,
  ) {}

  stage(e: StageEvent): void {
    this.model.stage(e);
    // progress redraws are throttled; outcomes draw at once
    if (e.progress) this.timer ??= setTimeout(() => this.draw(), 100);
    else if (e.item === undefined) this.draw();
  }

  watch(e: WatchEvent): void {
    if (e.watch === 'ready') this.ready = e;
    this.model.watch(e);
    this.draw();
  }

  private draw(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const lines: string[] = [];
    const ready = this.ready?.watch === 'ready' ? this.ready : undefined;
    lines.push(`lorabuild watch${ready ? ` ${ready.lorafile}${ready.through ? ` (through ${ready.through})` : ''}` : ''} — ${this.model.state}${this.model.build ? `, build ${this.model.build}` : ''}${this.model.lastVerdict && this.model.state === 'watching' ? ` (last: ${this.model.lastVerdict})` : ''}`);
    if (this.model.lastChange) lines.push(`last change: ${this.model.lastChange}`);
    if (this.model.configProblem.length) {
      lines.push('lorafile invalid (still using the last good plan):');
      lines.push(...formatDiagnostics(this.model.configProblem, sourceOf(this.root, this.model.configProblem[0]?.file)).trimEnd().split('\n'));
    }
    lines.push('');
    for (const { line, running } of this.model.stages.values()) {
      if (running) {
        const p = line.progress;
        lines.push(`running   ${line.stage}${p ? `  ${progressText(p)}` : ''}`);
      } else lines.push(stageLine(line));
    }
    for (const [name, view] of this.model.datasets) {
      lines.push('', datasetHeadline(name, view));
      const shown = view.diagnostics.flatMap((d) => formatDiagnostic(d).trimEnd().split('\n'));
      lines.push(...shown.slice(0, MAX_DIAGNOSTIC_LINES).map((l) => `  ${l}`));
      if (shown.length > MAX_DIAGNOSTIC_LINES) lines.push(`  … ${plural(view.diagnostics.length, 'diagnostic')} in all (out/datasets/${name}/validation.md)`);
    }
    lines.push('', 'Ctrl-C stops');
    this.out.write(`\x1b[H\x1b[2J${lines.map((l) => l.slice(0, width)).join('\n')}\n`);
  }
}
