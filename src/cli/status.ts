// lorabuild status [targets] [-f FILE] [--json] [--log STAGE]
// Each stage fresh / cached / stale and why, without running or locking anything.
import { CacheLayout } from '../cache/layout.js';
import { reportConfigError } from '../config/format.js';
import { execute } from '../engine/executor.js';
import { openProject } from '../engine/project.js';
import { prestartStatHelper } from '../datasets/local/parallel-lstat.js';
import { onPythonProbe } from '../worker/python.js';
import { stageStatusLine } from '../engine/status-format.js';
import { stageRegistry } from '../stages/index.js';
import { commandArgs, lorafileOption } from './args.js';
import { printable } from '../text/printable.js';
import { readRegularFileSync } from '../cache/safe-fs.js';

const HELP = `usage: lorabuild status [targets...] [-f FILE] [--json] [--log STAGE]

Shows each stage as fresh (built, outputs intact), cached (would be restored from the cache without
running) or stale (would run), and why.

  -f, --file FILE   the lorafile (default ./lorafile.yaml)
  --json            one JSON object per line: { stage, outcome, reason }
  --log STAGE       print the log of the last run of STAGE (e.g. train:pokemon_lora)
`;

export async function main(argv: string[]): Promise<number> {
  const args = commandArgs(argv, { ...lorafileOption, json: { type: 'boolean' }, log: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, 'status', HELP);
  if (typeof args === 'number') return args;
  let project;
  try {
    project = await openProject(args.values.file, args.positionals);
  } catch (err) {
    return reportConfigError(err);
  }
  if (!args.values.log) prestartStatHelper(project.cacheDir);
  // finding Python again (PATH or LORABUILD_PYTHON changed) takes seconds: say so on stderr
  onPythonProbe((message) => process.stderr.write(`${message}\n`));

  if (args.values.log !== undefined) return printLog(project.cacheDir, args.values.log, project.allStageIds);

  const result = await execute({
    config: project.config,
    plan: project.plan,
    registry: stageRegistry,
    cacheDir: project.cacheDir,
    lockFile: project.lockFile,
    mode: 'status',
    knownStageIds: project.allStageIds,
  });
  if (result.lockProblem) process.stderr.write(`lorabuild: warning: ${printable(result.lockProblem)}\n`);
  const reports = [...result.reports.values()];
  if (args.values.json) {
    for (const r of reports) process.stdout.write(`${JSON.stringify({ stage: r.stage, outcome: r.outcome, reason: r.reason })}\n`);
  } else {
    const width = Math.max(...reports.map((r) => r.stage.length), 5);
    for (const r of reports) process.stdout.write(`${stageStatusLine(r, width)}\n`);
  }
  return reports.some((r) => r.outcome === 'failed') ? 1 : 0;
}

function printLog(cacheDir: string, stage: string, known: Set<string>): number {
  const layout = new CacheLayout(cacheDir);
  let last: { fingerprint: string | null; outcome: string; reason: string; at: string; log?: string };
  try {
    last = JSON.parse(readRegularFileSync(layout.lastRun(stage), 'utf8')) as typeof last;
  } catch {
    const hint = known.has(stage) ? 'it has not run with this cache yet' : `no such stage; stages: ${[...known].join(', ')}`;
    process.stderr.write(`lorabuild status: no log for ${stage} (${hint})\n`);
    return 1;
  }
  let text = last.log ?? '';
  if (last.fingerprint) {
    try {
      text = readRegularFileSync(layout.log(last.fingerprint), 'utf8');
    } catch {
      text = '(the log was removed by cache gc)\n';
    }
  }
  process.stdout.write(printable(`# ${stage}: ${last.outcome} at ${last.at}${last.reason ? ` — ${last.reason}` : ''}\n${text}`));
  return 0;
}
