// Drives `lorabuild watch --json` as a real child process and reads its events as they arrive:
// `next(match)` resolves with the first event after the ones already consumed that matches.
import type { ChildProcess } from 'node:child_process';
import { startCli, type CliOptions, type CliResult } from './helpers/cli.js';

export type WatchLine = Record<string, unknown>;

export class WatchProcess {
  readonly events: WatchLine[] = [];
  private cursor = 0;
  private buffer = '';
  private waiters: (() => void)[] = [];
  private exited = false;
  readonly child: ChildProcess & { result: Promise<CliResult> };

  constructor(args: string[], options: CliOptions) {
    this.child = startCli(['watch', '--json', ...args], { timeoutMs: 600_000, ...options });
    this.child.stdout!.on('data', (chunk: Buffer | string) => {
      this.buffer += chunk.toString();
      const lines = this.buffer.split('\n');
      this.buffer = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        this.events.push(JSON.parse(line) as WatchLine);
      }
      this.wake();
    });
    this.child.on('close', () => {
      this.exited = true;
      this.wake();
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** the next event (after those consumed) for which `match` holds; consumes up to it */
  async next(match: (e: WatchLine) => boolean, what = 'a matching event', timeoutMs = 90_000): Promise<WatchLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.cursor < this.events.length) {
        const e = this.events[this.cursor++];
        if (match(e)) return e;
      }
      if (this.exited) throw new Error(`watch exited before ${what}; stderr:\n${(await this.child.result).stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; last events:\n${this.events.slice(-20).map((e) => JSON.stringify(e)).join('\n')}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Ctrl-C; resolves with the exit */
  async interrupt(): Promise<CliResult> {
    this.child.kill('SIGINT');
    return this.child.result;
  }
}

export const isWatch = (kind: string, extra: (e: WatchLine) => boolean = () => true) => (e: WatchLine) => e.watch === kind && extra(e);
export const isStage = (stage: string, outcome?: string) => (e: WatchLine) => e.stage === stage && e.item === undefined && e.progress === undefined && (outcome === undefined ? e.outcome !== undefined : e.outcome === outcome);
