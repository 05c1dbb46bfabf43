// lorabuild run [targets] [-f FILE] [--json] [--keep-going] [--update REPO]...
// Builds the selected targets (default: all), running only stale stages.
// Exit codes: 0 ok, 1 a stage failed, 2 invalid lorafile or usage, 130 interrupted.
import { reportConfigError } from '../config/format.js';
import { execute } from '../engine/executor.js';
import { openProject } from '../engine/project.js';
import { makeReporter, type ReporterKind } from '../engine/progress.js';
import { acquireWriterLock, waitingMessage } from '../cache/writer-lock.js';
import { stageRegistry } from '../stages/index.js';
import { commandArgs, lorafileOption } from './args.js';

const HELP = `usage: lorabuild run [targets...] [-f FILE] [--json] [--keep-going] [--update OWNER/NAME]...

Builds the targets (dataset, lora or render names, or stage ids like prepare:ds; default: all),
running only the stages whose inputs changed.

  -f, --file FILE     the lorafile (default ./lorafile.yaml)
  --json              one JSON object per line per stage event
  --keep-going        after a failure, still build the stages that do not depend on it
  --update REPO       re-resolve this hub repo's revision instead of using the pinned one (repeatable)
`;

export async function main(argv: string[]): Promise<number> {
  const args = commandArgs(
    argv,
    { ...lorafileOption, json: { type: 'boolean' }, 'keep-going': { type: 'boolean' }, update: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } },
    'run',
    HELP,
  );
  if (typeof args === 'number') return args;
  const started = Date.now();
  let project;
  try {
    project = await openProject(args.values.file, args.positionals);
  } catch (err) {
    return reportConfigError(err);
  }
  const kind: ReporterKind = args.values.json ? 'json' : process.stdout.isTTY ? 'tty' : 'plain';
  const reporter = makeReporter(kind, project.config.root);

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
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

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
      options: { update: args.values.update ?? [], keepGoing: Boolean(args.values['keep-going']) },
      keepGoing: Boolean(args.values['keep-going']),
      knownStageIds: project.allStageIds,
      onEvent: (e) => reporter.event(e),
    });
    if (result.lockProblem) reporter.note(`lorabuild: warning: ${result.lockProblem}`);
    const counts = { fresh: 0, cached: 0, ran: 0, failed: 0, skipped: 0 };
    for (const r of result.reports.values()) if (r.outcome in counts) counts[r.outcome as keyof typeof counts]++;
    const durationMs = Date.now() - started;
    const parts = [`${counts.ran} ran`, `${counts.cached} restored from cache`, `${counts.fresh} fresh`];
    if (counts.failed) parts.push(`${counts.failed} failed`);
    if (counts.skipped) parts.push(`${counts.skipped} skipped`);
    const verdict = result.interrupted ? 'interrupted' : counts.failed ? 'failed' : 'done';
    const text = `${verdict}: ${parts.join(', ')} (${durationMs} ms; ${result.hashing.filesHashed} files hashed, ${result.hashing.memoHits} from the stat memo)`;
    reporter.summary({ ...counts, interrupted: result.interrupted, lockWritten: result.lockWritten, hashing: result.hashing, durationMs }, text);
    if (result.interrupted) return 130;
    return counts.failed > 0 ? 1 : 0;
  } finally {
    lock.release();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
