// lorabuild run [targets] [-f FILE] [--json] [--keep-going] [--dry-run] [--update REPO]...
// Builds the selected targets (default: all), running only stale stages.
// Exit codes: 0 ok, 1 a stage failed, 2 invalid lorafile or usage, 130 interrupted (Ctrl-C, which a
// terminal sends to the whole process group, the worker included; SIGTERM; SIGHUP when the terminal
// closes): running stages stop at their next step with resumable state kept, nothing half-written.
import { isAbsolute, relative, resolve } from 'node:path';
import { formatDiagnostics, reportConfigError, stderrWantsColor } from '../config/format.js';
import { execute, type ExecuteResult } from '../engine/executor.js';
import { openProject, type Project } from '../engine/project.js';
import { prestartStatHelper } from '../datasets/local/parallel-lstat.js';
import { preflight, type PreflightResult } from '../engine/preflight.js';
import { onPythonProbe } from '../worker/python.js';
import { REPORT_STAGE } from '../graph/plan.js';
import { makeReporter, type ReporterKind } from '../engine/progress.js';
import { acquireWriterLock, waitingMessage } from '../cache/writer-lock.js';
import { stageRegistry } from '../stages/index.js';
import { commandArgs, lorafileOption } from './args.js';
import { STOP_SIGNALS, stopWhenOutputCloses } from './signals.js';
import { openRemoteCache, REMOTE_HELP, remoteOptions, type RemoteCache } from '../cache/remote/remote-cache.js';
import { CLUSTER_HELP, clusterOptions, clusterSettings } from '../cluster/settings.js';
import type { ClusterSpec } from '../config/schema.js';

const HELP = `usage: lorabuild run [targets...] [-f FILE] [--json] [--keep-going] [--dry-run] [--update OWNER/NAME]... [--remote-cache URL] [--remote-read-only]

Builds the targets (dataset, lora or render names, or stage ids like prepare:ds; default: all),
running only the stages whose inputs changed.

  -f, --file FILE     the lorafile (default ./lorafile.yaml)
  --json              one JSON object per line per stage event
  --keep-going        after a failure, still build the stages that do not depend on it
  -n, --dry-run       say what would run and why, build nothing (like make -n)
  --update REPO       re-resolve this hub repo's revision instead of using the pinned one (repeatable)
${REMOTE_HELP}${CLUSTER_HELP}`;

export async function main(argv: string[]): Promise<number> {
  const args = commandArgs(
    argv,
    { ...lorafileOption, json: { type: 'boolean' }, 'keep-going': { type: 'boolean' }, 'dry-run': { type: 'boolean', short: 'n' }, update: { type: 'string', multiple: true }, ...remoteOptions, ...clusterOptions, help: { type: 'boolean', short: 'h' } },
    'run',
    HELP,
  );
  if (typeof args === 'number') return args;
  const started = Date.now();
  let project;
  let cluster: ClusterSpec | null;
  try {
    project = await openProject(args.values.file, args.positionals);
    prestartStatHelper(project.cacheDir);
    cluster = await clusterSettings(project.config, args.values);
  } catch (err) {
    return reportConfigError(err);
  }
  const kind: ReporterKind = args.values.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
  const reporter = makeReporter(kind, project.config.root);
  onPythonProbe((message) => reporter.note(message));
  const keepGoing = Boolean(args.values['keep-going']);
  const checked = await preflight(project.config, project.plan, { cacheDir: project.cacheDir });
  if (args.values['dry-run']) return dryRun(project, Boolean(args.values.json), checked);
  if (checked.diagnostics.length > 0) {
    printPreflight(checked, project, Boolean(args.values.json));
    if (!keepGoing) {
      process.stderr.write(`lorabuild run: nothing was run. Fix the inputs above, or build what does not need them with --keep-going.\n`);
      return 2;
    }
  }

  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts === 1) {
      reporter.note('lorabuild: interrupted — stopping the running stages (press Ctrl-C again to quit at once)');
      controller.abort();
    } else {
      // every cache and lock write is temp + rename, so quitting now leaves nothing half-written
      process.exit(130);
    }
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  stopWhenOutputCloses(onSignal);

  let remote: RemoteCache | undefined;
  try {
    remote = openRemoteCache(
      { url: args.values['remote-cache'], readOnly: args.values['remote-read-only'] },
      { warn: (line) => reporter.note(`lorabuild: ${line}`), signal: controller.signal },
    );
  } catch (err) {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
    return reportConfigError(err);
  }

  let lock;
  try {
    lock = await acquireWriterLock(project.cacheDir, 'lorabuild run', {
      signal: controller.signal,
      onWait: (holder, waited) => reporter.note(waitingMessage(holder, project.cacheDir, waited)),
    });
  } catch (err) {
    if (controller.signal.aborted) return 130;
    throw err;
  }
  try {
    const result = await execute({
      config: project.config,
      plan: project.plan,
      registry: stageRegistry,
      cacheDir: project.cacheDir,
      lockFile: project.lockFile,
      mode: 'run',
      signal: controller.signal,
      options: { update: args.values.update ?? [], keepGoing },
      keepGoing,
      blocked: checked.blocked,
      knownStageIds: project.allStageIds,
      onEvent: (e) => reporter.event(e),
      remote,
      ...(cluster ? { cluster } : {}),
    });
    if (result.lockProblem) reporter.note(`lorabuild: warning: ${result.lockProblem}`);
    const counts = { fresh: 0, cached: 0, ran: 0, failed: 0, skipped: 0 };
    for (const r of result.reports.values()) if (r.outcome in counts) counts[r.outcome as keyof typeof counts]++;
    const durationMs = Date.now() - started;
    const parts = [`${counts.ran} ran`, `${counts.cached} restored from cache`, `${counts.fresh} fresh`];
    if (counts.failed) parts.push(`${counts.failed} failed`);
    if (counts.skipped) parts.push(`${counts.skipped} skipped`);
    const verdict = result.interrupted ? 'interrupted' : counts.failed ? 'failed' : 'done';
    const report = reportPath(project, result.reports.get(REPORT_STAGE)?.outcome);
    const published = publishedNow(result);
    const remoteText = remote ? `; remote: ${remote.stats.hits} hit${remote.stats.hits === 1 ? '' : 's'}, ${remote.stats.uploadedBlobs} blob${remote.stats.uploadedBlobs === 1 ? '' : 's'} uploaded` : '';
    const lines = [
      `${verdict}: ${parts.join(', ')} (${durationMs} ms; ${result.hashing.filesHashed} files hashed, ${result.hashing.memoHits} from the stat memo${remoteText})`,
      ...Object.entries(published).map(([lora, where]) => `published ${lora} to ${where}`),
      ...(report ? [`report: ${report}`] : []),
    ];
    reporter.summary({ ...counts, interrupted: result.interrupted, lockWritten: result.lockWritten, hashing: result.hashing, durationMs, published, ...(report ? { report } : {}), ...(remote ? { remote: { url: remote.url, readOnly: remote.readOnly, ...remote.stats } } : {}) }, lines.join('\n'));
    if (result.interrupted) return 130;
    return counts.failed > 0 ? 1 : 0;
  } finally {
    lock.release();
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  }
}

/** lora name -> where this run published it (`publish:`; the lock keeps the same, path-free) */
function publishedNow(result: ExecuteResult): Record<string, string> {
  const published: Record<string, string> = {};
  for (const [id, r] of result.reports) {
    const where = (result.outputs.get(id)?.meta as { published?: unknown } | null | undefined)?.published;
    if (r.outcome === 'ran' && id.startsWith('train:') && typeof where === 'string') published[id.slice('train:'.length)] = where;
  }
  return published;
}

/** The report the run left (relative to the working folder), when it built or kept one. */
function reportPath(project: Project, outcome: string | undefined): string | undefined {
  if (outcome !== 'ran' && outcome !== 'cached' && outcome !== 'fresh') return undefined;
  const abs = resolve(project.config.root, project.config.out, 'report.html');
  const rel = relative(process.cwd(), abs);
  return rel.startsWith('..') || isAbsolute(rel) ? abs : rel;
}

const DRY_RUN_VERB: Record<string, string> = { stale: 'would run', cached: 'would restore', fresh: 'fresh', failed: 'cannot run' };

/** Missing inputs, compiler style on stderr (and as one JSON line with --json). */
function printPreflight(checked: PreflightResult, project: Project, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify({ preflight: checked.diagnostics })}\n`);
  process.stderr.write(formatDiagnostics(checked.diagnostics, project.config.source, { color: stderrWantsColor() }));
}

/** `run --dry-run`: what a run would do and why, from the same decisions `status` makes; builds nothing. */
async function dryRun(project: Project, json: boolean, checked: PreflightResult): Promise<number> {
  if (checked.diagnostics.length > 0) printPreflight(checked, project, json);
  const result = await execute({
    blocked: checked.blocked,
    config: project.config,
    plan: project.plan,
    registry: stageRegistry,
    cacheDir: project.cacheDir,
    lockFile: project.lockFile,
    mode: 'status',
    knownStageIds: project.allStageIds,
  });
  if (result.lockProblem) process.stderr.write(`lorabuild: warning: ${result.lockProblem}\n`);
  const reports = [...result.reports.values()];
  const count = (outcome: string) => reports.filter((r) => r.outcome === outcome).length;
  if (json) {
    for (const r of reports) process.stdout.write(`${JSON.stringify({ stage: r.stage, outcome: r.outcome, reason: r.reason, dry_run: true })}\n`);
    process.stdout.write(`${JSON.stringify({ summary: { dry_run: true, run: count('stale'), restore: count('cached'), fresh: count('fresh'), failed: count('failed') } })}\n`);
  } else {
    const width = Math.max(...reports.map((r) => r.stage.length));
    for (const r of reports) {
      const upstream = /^upstream (\S+) is stale$/.exec(r.reason)?.[1];
      const why = r.outcome === 'fresh' ? '' : upstream ? `after ${upstream} (its inputs are known only then)` : r.reason;
      process.stdout.write(`${`${(DRY_RUN_VERB[r.outcome] ?? r.outcome).padEnd(13)} ${r.stage.padEnd(width)}${why ? `  ${why}` : ''}`.trimEnd()}\n`);
    }
    const failed = count('failed') ? `, ${count('failed')} cannot run` : '';
    process.stdout.write(`dry run: ${count('stale')} would run, ${count('cached')} would be restored from the cache, ${count('fresh')} fresh${failed}; nothing was built\n`);
  }
  return count('failed') > 0 ? 1 : 0;
}
