// Compute stages as Slurm jobs. `train` and `sample` requests become one sbatch job each: the job
// runs `python -m lorabuild_worker --batch request.json --events events.jsonl` in a folder under
// the cache (which must be on a file system the nodes share), and this side tails events.jsonl
// (progress, checkpoints, the result) and the job's stderr (the stage log) while polling squeue for
// the job's state (pending is shown as such). The other ops (hello aside: encoding, building the
// builtin model) are small and go to the local worker.
//
// Ctrl-C: `scancel --signal=TERM --full` (the worker finishes its step, saves its state and ends
// with 'cancelled'), then a plain scancel after the grace period. A job that dies or hits its time
// limit ends without a result: the request fails with SlurmJobError, and train keeps the state the
// job last wrote, so the next run resumes from it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, readSync, closeSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { writeFileAtomic } from '../cache/atomic.js';
import type { ClusterSpec } from '../config/schema.js';
import { canonicalHash } from '../engine/canonical.js';
import type { Json } from '../engine/types.js';
import { WorkerError, type ComputeWorker, type HelloResult, type RequestOptions } from '../worker/client.js';
import { PROTOCOL_VERSION, parseEvent, type WorkerEvent, type WorkerOp } from '../worker/protocol.js';
import { workerPackageDir } from '../worker/python.js';

const run = promisify(execFile);

/** ops that run as jobs; the rest stay on this machine */
const JOB_OPS: ReadonlySet<WorkerOp> = new Set(['train', 'sample']);
const ENDED = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'SPECIAL_EXIT', 'REVOKED']);

export class SlurmJobError extends Error {
  constructor(
    message: string,
    readonly jobId: string,
    readonly state: string,
  ) {
    super(message);
    this.name = 'SlurmJobError';
  }
}

export interface SlurmWorkerOptions {
  cluster: ClusterSpec;
  cacheDir: string;
  /** the python the jobs run (cluster.python, else the interpreter lorabuild found here) */
  python: () => Promise<string>;
  /** the local worker, for the small ops */
  local: () => Promise<ComputeWorker>;
  env?: NodeJS.ProcessEnv;
  pollMs?: number;
  /** after a TERM, how long the job may take to save its state before a plain scancel */
  cancelGraceMs?: number;
}

interface Tail {
  file: string;
  offset: number;
  partial: string;
}

function readNewLines(tail: Tail): string[] {
  if (!existsSync(tail.file)) return [];
  const size = statSync(tail.file).size;
  if (size <= tail.offset) return [];
  const fd = openSync(tail.file, 'r');
  try {
    const buffer = Buffer.alloc(size - tail.offset);
    readSync(fd, buffer, 0, buffer.length, tail.offset);
    tail.offset = size;
    const lines = (tail.partial + buffer.toString('utf8')).split('\n');
    tail.partial = lines.pop() ?? '';
    return lines;
  } finally {
    closeSync(fd);
  }
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export class SlurmWorker implements ComputeWorker {
  private helloResult: Promise<HelloResult> | null = null;
  /** jobs submitted by this run (for the summary and the tests) */
  readonly jobs: { id: string; op: WorkerOp; state: string }[] = [];

  constructor(private readonly options: SlurmWorkerOptions) {}

  private get env(): NodeJS.ProcessEnv {
    return this.options.env ?? process.env;
  }

  /** where the hello of this cluster setup is remembered (versions and device of the nodes) */
  private helloFile(python: string): string {
    const { cluster } = this.options;
    const key = canonicalHash({ python, partition: cluster.partition ?? null, gres: cluster.gres ?? null, account: cluster.account ?? null, sbatch: cluster.sbatch_args } as Json);
    return join(this.options.cacheDir, 'cluster', `hello-${key.slice(0, 16)}.json`);
  }

  hello(): Promise<HelloResult> {
    this.helloResult ??= (async () => {
      const file = this.helloFile(await this.options.python());
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as HelloResult;
      } catch {
        // not known yet: a job says what the nodes have (a job's own hello refreshes it later)
        await this.runJob('hello', {}, {});
        return JSON.parse(readFileSync(file, 'utf8')) as HelloResult;
      }
    })();
    this.helloResult.catch(() => (this.helloResult = null));
    return this.helloResult;
  }

  async request(op: WorkerOp, args: Record<string, Json>, options: RequestOptions = {}): Promise<Json> {
    if (!JOB_OPS.has(op)) return (await this.options.local()).request(op, args, options);
    return this.runJob(op, args, options);
  }

  private async runJob(op: WorkerOp, args: Record<string, Json>, options: RequestOptions): Promise<Json> {
    if (options.signal?.aborted) throw new WorkerError(op, 'cancelled', `${op} cancelled before it was submitted`);
    const python = await this.options.python();
    const dir = join(this.options.cacheDir, 'cluster', 'jobs', `${op}-${Date.now()}-${randomBytes(3).toString('hex')}`);
    mkdirSync(dir, { recursive: true });
    const requestFile = join(dir, 'request.json');
    const eventsFile = join(dir, 'events.jsonl');
    writeFileSync(requestFile, JSON.stringify({ id: 1, op, args }));
    writeFileSync(eventsFile, '');
    const script = join(dir, 'job.sh');
    const threads = this.env.LORABUILD_THREADS ? `export LORABUILD_THREADS=${quote(this.env.LORABUILD_THREADS)}\n` : '';
    writeFileSync(
      script,
      `#!/bin/sh\n# lorabuild ${op} job\nexport PYTHONPATH=${quote(workerPackageDir())}\${PYTHONPATH:+:\$PYTHONPATH}\nexport PYTHONUNBUFFERED=1 PYTHONIOENCODING=utf-8\n${threads}` +
        `exec ${quote(python)} -m lorabuild_worker --batch ${quote(requestFile)} --events ${quote(eventsFile)}\n`,
      { mode: 0o755 },
    );
    const { cluster } = this.options;
    const sbatch = [
      '--parsable',
      `--job-name=lorabuild-${op}`,
      `--output=${join(dir, 'job.out')}`,
      `--error=${join(dir, 'job.err')}`,
      `--chdir=${dir}`,
      ...(cluster.partition ? [`--partition=${cluster.partition}`] : []),
      ...(cluster.gres ? [`--gres=${cluster.gres}`] : []),
      ...(cluster.account ? [`--account=${cluster.account}`] : []),
      // TERM a minute before the limit: the worker saves its state, the next run resumes from it
      ...(cluster.time ? [`--time=${cluster.time}`, '--signal=B:TERM@60'] : []),
      ...cluster.sbatch_args,
      script,
    ];
    let jobId: string;
    try {
      const out = await run('sbatch', sbatch, { env: this.env });
      jobId = out.stdout.trim().split(';')[0];
    } catch (err) {
      const e = err as { stderr?: string; message: string; code?: string };
      const why = e.code === 'ENOENT' ? 'sbatch is not installed here (is this a Slurm login node?)' : (e.stderr?.trim() || e.message);
      throw new WorkerError(op, 'io', `${op}: could not submit the Slurm job: ${why}`, 'check the cluster: settings (partition, gres, account), or run with --executor local');
    }
    if (!/^\d+$/.test(jobId)) throw new WorkerError(op, 'io', `${op}: sbatch answered '${jobId}' instead of a job id`);
    const job = { id: jobId, op, state: 'SUBMITTED' };
    this.jobs.push(job);
    options.log?.(`slurm job ${jobId} submitted (${op}); files in ${dir}`);
    return this.follow(job, dir, python, options);
  }

  private async follow(job: { id: string; op: WorkerOp; state: string }, dir: string, python: string, options: RequestOptions): Promise<Json> {
    const events: Tail = { file: join(dir, 'events.jsonl'), offset: 0, partial: '' };
    const stderr: Tail = { file: join(dir, 'job.err'), offset: 0, partial: '' };
    const pollMs = this.options.pollMs ?? Number(this.env.LORABUILD_SLURM_POLL_MS ?? 1000);
    const grace = this.options.cancelGraceMs ?? 30_000;
    let result: { ok: true; value: Json } | { ok: false; error: Error } | undefined;
    let cancelledAt: number | null = null;
    let killed = false;
    let reason = '';

    const drain = () => {
      for (const line of readNewLines(stderr)) options.log?.(line);
      for (const line of readNewLines(events)) {
        if (!line.trim()) continue;
        let event: WorkerEvent;
        try {
          event = parseEvent(line);
        } catch {
          options.log?.(`[events] ${line}`);
          continue;
        }
        if (event.id === 0) {
          if (event.type === 'done') this.rememberHello(python, event.result as unknown as HelloResult);
          continue;
        }
        if (event.type === 'log') options.log?.(event.message);
        options.onEvent?.(event);
        if (event.type === 'done') result = { ok: true, value: event.result };
        else if (event.type === 'error') result = { ok: false, error: new WorkerError(job.op, event.code, event.message, event.hint) };
      }
    };

    for (;;) {
      drain();
      if (options.signal?.aborted && cancelledAt === null) {
        cancelledAt = Date.now();
        // pending: nothing to save; running: let the worker save its state
        await this.scancel(job.state === 'RUNNING' ? ['--signal=TERM', '--full', job.id] : [job.id]);
        options.log?.(`slurm job ${job.id} cancelled (${job.state === 'RUNNING' ? 'SIGTERM: the worker saves its state' : 'it had not started'})`);
      }
      if (cancelledAt !== null && !killed && Date.now() - cancelledAt > grace) {
        killed = true;
        await this.scancel([job.id]);
      }
      const [state, why] = await this.jobState(job.id);
      if (state !== job.state || why !== reason) {
        const wasNew = state !== job.state;
        job.state = state;
        reason = why;
        if (state === 'PENDING') options.onEvent?.({ id: 1, type: 'progress', step: 0, total: 0, message: `slurm job ${job.id} pending${why && why !== 'None' ? ` (${why})` : ''}` });
        if (wasNew) options.log?.(`slurm job ${job.id} ${state.toLowerCase()}${why && why !== 'None' ? ` (${why})` : ''}`);
      }
      if (state === 'GONE' || ENDED.has(state)) break;
      await new Promise((r) => setTimeout(r, pollMs));
    }
    drain();
    if (result?.ok) return result.value;
    if (result && !result.ok) throw result.error;
    if (options.signal?.aborted) throw new WorkerError(job.op, 'cancelled', `${job.op}: slurm job ${job.id} cancelled before it reported`);
    const tail = existsSync(stderr.file) ? readFileSync(stderr.file, 'utf8').trim().split('\n').slice(-12) : [];
    throw new SlurmJobError(
      `slurm job ${job.id} (${job.op}) ended ${job.state === 'GONE' ? '(no longer known to squeue)' : job.state} without a result${tail.length ? `; its last output:\n  ${tail.join('\n  ')}` : ''}`,
      job.id,
      job.state,
    );
  }

  private rememberHello(python: string, hello: HelloResult): void {
    if (hello?.protocol !== PROTOCOL_VERSION) return;
    writeFileAtomic(this.helloFile(python), JSON.stringify(hello));
  }

  /** [state, reason]; 'GONE' once squeue has forgotten the job */
  private async jobState(id: string): Promise<[string, string]> {
    try {
      const out = await run('squeue', ['-h', '-j', id, '-t', 'all', '-o', '%T|%r'], { env: this.env });
      const line = out.stdout.trim().split('\n')[0] ?? '';
      if (!line) return ['GONE', ''];
      const [state, why] = line.split('|');
      return [state.trim(), (why ?? '').trim()];
    } catch (err) {
      // an unknown job id is an error for squeue: the job ended long enough ago to be purged
      if (/Invalid job id/i.test((err as { stderr?: string }).stderr ?? '')) return ['GONE', ''];
      throw err;
    }
  }

  private async scancel(args: string[]): Promise<void> {
    await run('scancel', args, { env: this.env }).catch(() => undefined);
  }
}
