// How a run shows itself: --json prints every event as one JSON line; a terminal gets live
// progress bars; anything else (CI logs) gets plain lines, progress at most every few seconds.
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Diagnostic } from '../config/diagnostic.js';
import { formatDiagnostic } from '../config/format.js';
import { formatDuration, formatRate } from './rate.js';
import type { StageEvent } from './types.js';
import { printable } from '../text/printable.js';

export interface Reporter {
  event(e: StageEvent): void;
  /** a message that is not about one stage ("waiting for the cache lock") */
  note(message: string): void;
  /** the last line(s), after every stage is done */
  summary(fields: Record<string, unknown>, text: string): void;
}

export type ReporterKind = 'json' | 'tty' | 'plain';

export function makeReporter(kind: ReporterKind, root: string, out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): Reporter {
  if (kind === 'json') return new JsonReporter(out);
  return kind === 'tty' ? new TtyReporter(root, out, err) : new PlainReporter(root, out, err);
}

/** lines held before a write of their own: a big build emits 200,000 item events in one loop */
const JSON_BATCH_CHARS = 64 * 1024;

/**
 * One JSON line per event. Lines emitted in one turn of the event loop go out in one write at its
 * end (stdout to a file or a pipe is synchronous on Linux: a write each cost a 100,000-item run
 * 1.4 s), so a reader sees them as soon as lorabuild waits for anything; `exit` writes what is left.
 */
class JsonReporter implements Reporter {
  private pending = '';
  private scheduled = false;
  private readonly flushOnExit = () => this.flush();
  constructor(private readonly out: NodeJS.WriteStream) {}
  event(e: StageEvent): void {
    this.line(JSON.stringify(e));
  }
  note(message: string): void {
    this.line(JSON.stringify({ note: message }));
  }
  summary(fields: Record<string, unknown>): void {
    this.line(JSON.stringify({ summary: fields }));
    this.flush();
  }
  private line(json: string): void {
    this.pending += `${json}\n`;
    if (this.pending.length >= JSON_BATCH_CHARS) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      process.once('exit', this.flushOnExit);
      setImmediate(() => this.flush());
    }
  }
  private flush(): void {
    if (this.scheduled) {
      this.scheduled = false;
      process.off('exit', this.flushOnExit);
    }
    if (this.pending === '') return;
    const text = this.pending;
    this.pending = '';
    this.out.write(text);
  }
}

const LABEL: Record<string, string> = { fresh: 'fresh', cached: 'cached', ran: 'ran', failed: 'FAILED', skipped: 'skipped', stale: 'stale' };

/** "ran     prepare:ds  0.4s  (1 item ran, 9 cached)  upstream fetch:ds changed" */
export function stageLine(e: StageEvent): string {
  const parts = [(LABEL[e.outcome ?? ''] ?? e.outcome ?? '').padEnd(8), e.stage];
  if (e.durationMs !== undefined && e.outcome === 'ran') parts.push(seconds(e.durationMs));
  if (e.items && e.items.ran + e.items.cached > 0) parts.push(`(${e.items.ran} item${e.items.ran === 1 ? '' : 's'} ran, ${e.items.cached} cached)`);
  if (e.reason && e.outcome !== 'fresh') parts.push(e.outcome === 'failed' || e.outcome === 'skipped' ? `: ${printable(e.reason)}` : `— ${printable(e.reason)}`);
  return parts.join('  ').replace('  : ', ': ');
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

function isFinal(e: StageEvent): boolean {
  return e.item === undefined && e.progress === undefined && e.outcome !== undefined && e.outcome !== 'started';
}

/** Diagnostics a stage reported, compiler style, with the source line when the file is small. */
function formatStageDiagnostics(root: string, e: StageEvent): string {
  const blocks: string[] = [];
  for (const raw of e.diagnostics ?? []) {
    const d = raw as unknown as Diagnostic;
    if (!d || typeof d !== 'object' || typeof d.message !== 'string') continue;
    blocks.push(formatDiagnostic(d, d.file ? sourceOf(resolve(root, d.file)) : undefined));
  }
  return blocks.length ? `${blocks.join('\n')}\n` : '';
}

function sourceOf(file: string): string | undefined {
  try {
    return statSync(file).size <= 1024 * 1024 ? readFileSync(file, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

class PlainReporter implements Reporter {
  private lastProgress = new Map<string, number>();
  constructor(
    private readonly root: string,
    private readonly out: NodeJS.WriteStream,
    private readonly err: NodeJS.WriteStream,
  ) {}
  event(e: StageEvent): void {
    if (e.diagnostics?.length) this.err.write(formatStageDiagnostics(this.root, e));
    if (e.item !== undefined) return;
    if (e.outcome === 'started') this.out.write(`start     ${e.stage}${e.reason ? ` — ${printable(e.reason)}` : ''}\n`);
    else if (e.progress) {
      const now = Date.now();
      if (now - (this.lastProgress.get(e.stage) ?? 0) < 5000 && e.progress.done !== e.progress.total) return;
      this.lastProgress.set(e.stage, now);
      this.out.write(`          ${e.stage} ${progressText(e.progress)}\n`);
    } else if (isFinal(e)) this.out.write(`${stageLine(e)}\n`);
  }
  note(message: string): void {
    this.err.write(`${printable(message)}\n`);
  }
  summary(_fields: Record<string, unknown>, text: string): void {
    this.out.write(`${text}\n`);
  }
}

const BAR_WIDTH = 24;

class TtyReporter implements Reporter {
  private live = new Map<string, string>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly root: string,
    private readonly out: NodeJS.WriteStream,
    private readonly err: NodeJS.WriteStream,
  ) {}

  event(e: StageEvent): void {
    if (e.diagnostics?.length) this.above(() => this.err.write(formatStageDiagnostics(this.root, e)));
    if (e.item !== undefined) return;
    if (e.outcome === 'started') this.setLive(e.stage, `${e.stage}  starting`);
    else if (e.progress) this.setLive(e.stage, progressBar(e));
    else if (isFinal(e)) {
      this.live.delete(e.stage);
      this.above(() => this.out.write(`${stageLine(e)}\n`));
    }
  }
  note(message: string): void {
    this.above(() => this.err.write(`${printable(message)}\n`));
  }
  summary(_fields: Record<string, unknown>, text: string): void {
    this.live.clear();
    this.above(() => this.out.write(`${text}\n`));
    if (this.timer) clearTimeout(this.timer);
  }

  private setLive(stage: string, line: string): void {
    this.live.set(stage, line);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.above(() => {});
    }, 80);
  }
  /** erase the live area, print, redraw it */
  private above(print: () => void): void {
    if (this.drawn) this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    print();
    const width = Math.max(20, (this.out.columns ?? 80) - 1);
    const lines = [...this.live.values()].map((l) => l.slice(0, width));
    if (lines.length) this.out.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }
}

function progressBar(e: StageEvent): string {
  const { done, total } = e.progress!;
  const ratio = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(ratio * BAR_WIDTH);
  return `${e.stage}  [${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${progressText(e.progress!)}`;
}

/** "164/200 step · 3.12 step/s · ETA 12s · loss 0.9508"; rate and ETA once measurable */
export function progressText(p: NonNullable<StageEvent['progress']>): string {
  const parts = [`${p.done}/${p.total}${p.unit ? ` ${p.unit}` : ''}`];
  if (p.rate !== undefined && p.rate > 0) {
    parts.push(formatRate(p.rate, p.unit));
    if (p.done < p.total && p.eta_s !== undefined) parts.push(`ETA ${formatDuration(p.eta_s)}`);
  } else if (p.done < p.total) parts.push('measuring rate…');
  if (p.message) parts.push(printable(p.message));
  return parts.join(' · ');
}
