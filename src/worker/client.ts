// The TypeScript side of the worker protocol (protocol.ts): spawns `python -m lorabuild_worker`,
// writes requests as JSON lines, routes events to their request by id, captures stderr.
//
// Failure modes are turned into errors that say what happened:
//  - an `error` event rejects its request with a WorkerError (code, message, hint);
//  - the process dying rejects every pending request with a WorkerCrashError carrying the exit
//    status and the last stderr lines;
//  - an aborted signal sends `cancel`, and if the worker has not answered within the grace period,
//    SIGTERM (the worker then checkpoints and exits), then SIGKILL.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { delimiter } from 'node:path';
import type { Json } from '../engine/types.js';
import { PROTOCOL_VERSION, parseEvent, type WorkerEvent, type WorkerOp } from './protocol.js';
import { workerPackageDir } from './python.js';

export interface HelloResult {
  worker_version: string;
  protocol: number;
  python: string;
  torch: string;
  numpy: string;
  cuda: boolean;
  device: 'cpu' | 'cuda';
  gpu_name?: string;
  gpu_memory?: number;
  blas: string;
  threads: number;
}

/** What stages use of a worker: a local process (WorkerClient) or Slurm jobs (cluster/slurm-worker.ts). */
export interface ComputeWorker {
  hello(): Promise<HelloResult>;
  request(op: WorkerOp, args: Record<string, Json>, options?: RequestOptions): Promise<Json>;
}

export class WorkerError extends Error {
  constructor(
    readonly op: WorkerOp,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(hint ? `${message}\n  hint: ${hint}` : message);
    this.name = 'WorkerError';
  }
}

export class WorkerCrashError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: string[],
  ) {
    super(message);
    this.name = 'WorkerCrashError';
  }
}

export interface RequestOptions {
  onEvent?: (event: WorkerEvent) => void;
  /** worker stderr lines and `log` events while this request runs */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface WorkerOptions {
  python: string;
  /** extra environment (e.g. OMP_NUM_THREADS) */
  env?: NodeJS.ProcessEnv;
  /** stderr lines when no request is running */
  log?: (line: string) => void;
  /** how long a cancelled request may take to stop before SIGTERM, then SIGKILL (ms) */
  cancelGraceMs?: number;
}

interface Pending {
  op: WorkerOp;
  resolve: (value: Json) => void;
  reject: (err: Error) => void;
  options: RequestOptions;
  cleanup: () => void;
}

const STDERR_TAIL = 30;

function checkProtocol(hello: HelloResult): void {
  if (hello.protocol !== PROTOCOL_VERSION) {
    throw new Error(`the worker speaks protocol ${hello.protocol}, this lorabuild speaks ${PROTOCOL_VERSION}: reinstall lorabuild so both halves match`);
  }
}

interface Spawned {
  child: ChildProcessWithoutNullStreams;
  exit: Promise<void>;
}

export class WorkerClient {
  private proc: Spawned | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly stderrTail: string[] = [];
  private nextId = 1;
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private helloResult: Promise<HelloResult> | null = null;
  private closing = false;

  private constructor(private readonly options: WorkerOptions) {}

  /** Starts a worker and checks that it speaks this protocol version. */
  static async start(options: WorkerOptions): Promise<WorkerClient> {
    const client = new WorkerClient(options);
    try {
      checkProtocol(await client.hello());
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  /**
   * A client whose process starts on the first request; hello() answers from `hello` (a remembered
   * answer of the same interpreter and worker, see hello-memo.ts) without starting Python.
   */
  static deferred(options: WorkerOptions, hello: HelloResult): WorkerClient {
    checkProtocol(hello);
    const client = new WorkerClient(options);
    client.helloResult = Promise.resolve(hello);
    return client;
  }

  private spawned(): Spawned {
    if (this.proc) return this.proc;
    const { options } = this;
    const env = { ...process.env, ...options.env };
    env.PYTHONPATH = [workerPackageDir(), env.PYTHONPATH].filter(Boolean).join(delimiter);
    env.PYTHONUNBUFFERED = '1';
    env.PYTHONIOENCODING = 'utf-8';
    const child = spawn(options.python, ['-m', 'lorabuild_worker'], { env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    const exit = new Promise<void>((done) => {
      child.on('error', (err) => {
        this.onExit(null, null, `could not start ${options.python}: ${err.message}`);
        done();
      });
      child.on('exit', (code, signal) => {
        this.onExit(code, signal);
        done();
      });
    });
    // a worker that died makes writes fail with EPIPE; the exit handler reports it
    child.stdin.on('error', () => undefined);
    createInterface({ input: child.stdout }).on('line', (line) => this.onLine(line));
    createInterface({ input: child.stderr }).on('line', (line) => this.onStderr(line));
    this.proc = { child, exit };
    return this.proc;
  }

  /** the worker's process id, once it runs */
  get pid(): number | undefined {
    return this.proc?.child.pid;
  }

  get alive(): boolean {
    return this.exited === null;
  }

  hello(): Promise<HelloResult> {
    this.helloResult ??= this.request('hello', {}).then((r) => r as unknown as HelloResult);
    return this.helloResult;
  }

  request(op: WorkerOp, args: Record<string, Json>, options: RequestOptions = {}): Promise<Json> {
    if (this.exited) return Promise.reject(this.crashError(op));
    if (options.signal?.aborted) return Promise.reject(new WorkerError(op, 'cancelled', `${op} cancelled before it started`));
    const id = this.nextId++;
    return new Promise<Json>((resolve, reject) => {
      let timers: NodeJS.Timeout[] = [];
      const onAbort = () => {
        this.send({ id: this.nextId++, op: 'cancel', args: { target: id } });
        const grace = this.options.cancelGraceMs ?? 30_000;
        timers.push(setTimeout(() => this.proc?.child.kill('SIGTERM'), grace).unref());
        timers.push(setTimeout(() => this.proc?.child.kill('SIGKILL'), grace * 2).unref());
      };
      const cleanup = () => {
        options.signal?.removeEventListener('abort', onAbort);
        for (const t of timers) clearTimeout(t);
        timers = [];
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { op, resolve, reject, options, cleanup });
      this.send({ id, op, args });
    });
  }

  /** Ends the worker: closes stdin (the worker exits at EOF), then SIGTERM if it lingers. */
  async close(graceMs = 5_000): Promise<void> {
    const proc = this.proc;
    if (this.exited || !proc) return;
    this.closing = true;
    proc.child.stdin.end();
    const timer = setTimeout(() => proc.child.kill('SIGTERM'), graceMs).unref();
    const kill = setTimeout(() => proc.child.kill('SIGKILL'), graceMs * 2).unref();
    await proc.exit;
    clearTimeout(timer);
    clearTimeout(kill);
  }

  /** Sends SIGTERM: the worker finishes its current step, writes resumable state and exits. */
  async terminate(): Promise<void> {
    const proc = this.proc;
    if (this.exited || !proc) return;
    this.closing = true;
    proc.child.kill('SIGTERM');
    await proc.exit;
  }

  private send(message: { id: number; op: WorkerOp; args: Record<string, Json> }): void {
    if (this.exited) return;
    const { child } = this.spawned();
    if (child.stdin.writable) child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  private onLine(line: string): void {
    if (!line.trim()) return;
    let event: WorkerEvent;
    try {
      event = parseEvent(line);
    } catch {
      // a stray print in the worker: keep it as log text rather than failing the request
      this.onStderr(`[stdout] ${line}`);
      return;
    }
    const pending = this.pending.get(event.id);
    if (!pending) return;
    if (event.type === 'log') pending.options.log?.(event.message);
    pending.options.onEvent?.(event);
    if (event.type === 'done') {
      this.settle(event.id);
      pending.resolve(event.result);
    } else if (event.type === 'error') {
      this.settle(event.id);
      pending.reject(new WorkerError(pending.op, event.code, event.message, event.hint));
    }
  }

  private settle(id: number): void {
    this.pending.get(id)?.cleanup();
    this.pending.delete(id);
  }

  private onStderr(line: string): void {
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_TAIL) this.stderrTail.shift();
    const running = [...this.pending.values()].filter((p) => p.options.log);
    if (running.length) for (const p of running) p.options.log?.(line);
    else this.options.log?.(line);
  }

  private crashError(op: WorkerOp, startProblem?: string): WorkerCrashError {
    const { code, signal } = this.exited ?? { code: null, signal: null };
    const how = startProblem ?? (signal ? `was killed by ${signal}` : `exited with code ${code}`);
    const tail = this.stderrTail.length ? `\nlast worker output:\n  ${this.stderrTail.slice(-12).join('\n  ')}` : '';
    return new WorkerCrashError(`the Python worker ${how} during '${op}'; nothing from this request was kept${tail}`, code, signal, [...this.stderrTail]);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null, startProblem?: string): void {
    if (this.exited) return;
    this.exited = { code, signal };
    for (const [id, pending] of this.pending) {
      this.settle(id);
      const err = this.closing && pending.options.signal?.aborted
        ? new WorkerError(pending.op, 'cancelled', `${pending.op} cancelled`)
        : this.crashError(pending.op, startProblem);
      pending.reject(err);
    }
  }
}

/**
 * One worker shared by every stage of a run, started on first use and restarted if it died.
 * `close()` at the end of the run.
 */
export class SharedWorker {
  private client: Promise<WorkerClient> | null = null;

  constructor(private readonly start: () => Promise<WorkerClient>) {}

  get(): Promise<WorkerClient> {
    if (this.client) {
      const current = this.client;
      this.client = current.then(
        (c) => (c.alive ? c : this.start()),
        () => this.start(),
      );
    } else {
      this.client = this.start();
    }
    return this.client;
  }

  async close(): Promise<void> {
    const current = this.client;
    this.client = null;
    if (!current) return;
    const client = await current.catch(() => null);
    await client?.close();
  }
}
