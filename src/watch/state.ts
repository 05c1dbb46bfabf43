// The watch loop as an explicit state machine (the shape of google/wireit's watcher):
//
//   initial ──start──▶ running ──done──▶ watching ──change──▶ debouncing ──quiet──▶ running
//                        │  ▲                                    ▲   │change (timer restarts)
//                 change │  └──────────── quiet ─────────────────┘   ▼
//                        ▼                                        (debouncing)
//                      queued ──done──▶ debouncing
//
// A lone change after a quiet spell (no change for debounceMs) starts its build on the next turn
// of the event loop instead of after the full debounce: a caption save is answered at once. A
// second change before that turn, or a burst, falls back to waiting for debounceMs of quiet; but
// a second notice of the very same file (one save often reaches the watch twice) is no burst: the
// build still starts at that turn, and reads what the file holds then.
//
// Changes during a run never start a second run beside it: they move `running` to `queued` once,
// however many arrive, and the run that follows sees all of them. A change may also ask the
// current run to stop early (a training whose inputs changed); it then ends and the queued rerun
// starts. stop() (Ctrl-C) aborts the current run and ends the loop.

export type WatchState = 'initial' | 'watching' | 'debouncing' | 'running' | 'queued' | 'stopping' | 'stopped';

export interface Change {
  /** absolute path */
  path: string;
  event: string;
}

export interface LoopHooks {
  /** one build; must settle (not throw) when `signal` aborts */
  run(signal: AbortSignal, changes: Change[]): Promise<void>;
  /** quiet time after the last change before a build starts */
  debounceMs: number;
  /** asked for each change that arrives during a run: true aborts the run (it is rerun after) */
  shouldCancel?(change: Change): boolean;
  onState?(state: WatchState, previous: WatchState): void;
  /** a run was aborted because of `change` */
  onCancel?(change: Change): void;
  /** a run threw: the loop goes on watching */
  onError?(err: unknown): void;
  timers?: { set(fn: () => void, ms: number): unknown; clear(handle: unknown): void };
  /** a monotonic clock in ms (tests drive it by hand) */
  now?(): number;
}

export class WatchLoop {
  private state: WatchState = 'initial';
  private pending: Change[] = [];
  private timer: unknown;
  private controller: AbortController | undefined;
  private cancelled = false;
  private stoppedPromise: Promise<void>;
  private resolveStopped!: () => void;
  private readonly timers: NonNullable<LoopHooks['timers']>;
  private readonly now: () => number;
  private lastChangeAt = -Infinity;
  /** the path of the lone change whose build starts on the next turn (see above) */
  private leadingFor: string | undefined;

  constructor(private readonly hooks: LoopHooks) {
    this.timers = hooks.timers ?? { set: (fn, ms) => setTimeout(fn, ms), clear: (h) => clearTimeout(h as NodeJS.Timeout) };
    this.now = hooks.now ?? (() => performance.now());
    this.stoppedPromise = new Promise((resolve) => (this.resolveStopped = resolve));
  }

  get current(): WatchState {
    return this.state;
  }

  /** resolves once stop() has finished the current run */
  get stopped(): Promise<void> {
    return this.stoppedPromise;
  }

  /** the first build */
  start(): void {
    if (this.state !== 'initial') throw new Error(`watch: start() in state ${this.state}`);
    this.startRun();
  }

  change(change: Change): void {
    const at = this.now();
    const quietBefore = at - this.lastChangeAt >= this.hooks.debounceMs;
    this.lastChangeAt = at;
    switch (this.state) {
      case 'initial':
        this.pending.push(change);
        this.to('debouncing');
        this.armTimer();
        return;
      case 'watching':
        this.pending.push(change);
        this.to('debouncing');
        this.armTimer(quietBefore ? 0 : this.hooks.debounceMs);
        if (quietBefore) this.leadingFor = change.path;
        return;
      case 'debouncing':
        this.pending.push(change);
        if (this.leadingFor !== change.path) this.armTimer();
        return;
      case 'running':
        this.pending.push(change);
        this.to('queued');
        this.maybeCancel(change);
        return;
      case 'queued':
        this.pending.push(change);
        this.maybeCancel(change);
        return;
      case 'stopping':
      case 'stopped':
        return;
    }
  }

  stop(): Promise<void> {
    switch (this.state) {
      case 'running':
      case 'queued':
        this.to('stopping');
        this.controller?.abort();
        break;
      case 'stopping':
      case 'stopped':
        break;
      default:
        this.clearTimer();
        this.to('stopped');
        this.resolveStopped();
    }
    return this.stoppedPromise;
  }

  private maybeCancel(change: Change): void {
    if (this.cancelled || !this.controller || !this.hooks.shouldCancel?.(change)) return;
    this.cancelled = true;
    this.hooks.onCancel?.(change);
    this.controller.abort();
  }

  private armTimer(ms = this.hooks.debounceMs): void {
    this.clearTimer();
    this.leadingFor = undefined;
    this.timer = this.timers.set(() => {
      this.timer = undefined;
      if (this.state === 'debouncing') this.startRun();
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.timers.clear(this.timer);
    this.timer = undefined;
  }

  private startRun(): void {
    const changes = this.pending;
    this.pending = [];
    this.cancelled = false;
    const controller = new AbortController();
    this.controller = controller;
    this.to('running');
    this.hooks
      .run(controller.signal, changes)
      .catch((err: unknown) => this.hooks.onError?.(err))
      .finally(() => this.runDone());
  }

  private runDone(): void {
    this.controller = undefined;
    switch (this.state) {
      case 'running':
        this.to('watching');
        return;
      case 'queued':
        this.to('debouncing');
        this.armTimer();
        return;
      case 'stopping':
        this.to('stopped');
        this.resolveStopped();
        return;
      default:
        throw new Error(`watch: a run ended in state ${this.state}`);
    }
  }

  private to(state: WatchState): void {
    const previous = this.state;
    this.state = state;
    this.hooks.onState?.(state, previous);
  }
}
