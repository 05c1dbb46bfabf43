// lorabuild check [-f FILE] [--rebuild] [--json]
// CI's question: do lorafile.lock, the inputs and the committed artifacts agree? Cheap stages re-run,
// GPU stages are verified against the lock (re-run only with --rebuild). See engine/check.ts.
// Exit codes: 0 ok, 1 validation errors or other failure, 2 invalid lorafile, 3 stale, 4 tampered/missing.
import { reportConfigError } from '../config/format.js';
import { acquireWriterLock } from '../cache/writer-lock.js';
import { checkProject, RUN_HINT, type CheckFinding, type CheckResult, type StageCheck } from '../engine/check.js';
import { openProject } from '../engine/project.js';
import { onPythonProbe } from '../worker/python.js';
import { stageRegistry } from '../stages/index.js';
import { commandArgs, lorafileOption } from './args.js';
import { openRemoteCache, REMOTE_HELP, remoteOptions, type RemoteCache } from '../cache/remote/remote-cache.js';

const HELP = `usage: lorabuild check [-f FILE] [--rebuild] [--json] [--remote-cache URL]

Verifies that lorafile.lock matches the lorafile and the inputs, and that every recorded artifact
(in out/ or the cache) has the recorded bytes. fetch, prepare and validate re-run; train and render
are only verified (--rebuild re-runs them too). Needs no cache: the lock and out/ are enough.

  -f, --file FILE   the lorafile (default ./lorafile.yaml)
  --rebuild         also re-run train and render and compare their outputs with the lock
  --json            one JSON object per stage, then a summary object
${REMOTE_HELP}                      check fetches artifacts that are not committed from the remote cache
                      by their recorded sha256 (it never uploads)

exit codes: 0 ok, 1 validation errors or other failure, 2 invalid lorafile,
            3 stale (an input changed since the lock was written), 4 tampered or missing artifact
`;

const VERDICT: Record<number, string> = {
  0: 'ok: the lock, the inputs and the artifacts agree',
  1: 'failed',
  3: 'stale: the lock does not describe the current inputs',
  4: 'tampered: artifacts differ from the lock',
};

export async function main(argv: string[]): Promise<number> {
  const args = commandArgs(argv, { ...lorafileOption, rebuild: { type: 'boolean' }, json: { type: 'boolean' }, ...remoteOptions, help: { type: 'boolean', short: 'h' } }, 'check', HELP);
  if (typeof args === 'number') return args;
  if (args.positionals.length > 0) {
    process.stderr.write(`lorabuild check: unexpected argument '${args.positionals[0]}' (check always covers the whole lorafile)\n\n${HELP}`);
    return 2;
  }
  let project;
  try {
    project = await openProject(args.values.file, []);
  } catch (err) {
    return reportConfigError(err);
  }
  // finding Python again (PATH or LORABUILD_PYTHON changed) takes seconds: say so on stderr
  onPythonProbe((message) => process.stderr.write(`${message}\n`));

  const json = Boolean(args.values.json);
  let remote: RemoteCache | undefined;
  try {
    // check only reads: what it verifies must come from the student's build, never from itself
    remote = openRemoteCache({ url: args.values['remote-cache'], readOnly: true }, { warn: (line) => process.stderr.write(`lorabuild: ${line}\n`) });
  } catch (err) {
    return reportConfigError(err);
  }
  const lock = await acquireWriterLock(project.cacheDir, 'lorabuild check', {
    onWait: (holder) => process.stderr.write(`lorabuild: waiting for ${holder.command} (pid ${holder.pid}) to finish with the cache ${project.cacheDir}\n`),
  });
  let result: CheckResult;
  try {
    result = await checkProject({
      config: project.config,
      plan: project.plan,
      registry: stageRegistry,
      cacheDir: project.cacheDir,
      lockFile: project.lockFile,
      rebuild: Boolean(args.values.rebuild),
      remote,
      onStage: (s) => process.stdout.write(json ? `${JSON.stringify(s)}\n` : stageLines(s)),
    });
  } finally {
    lock.release();
  }
  if (json) {
    process.stdout.write(`${JSON.stringify({ summary: true, exitCode: result.exitCode, general: result.general, verdict: VERDICT[result.exitCode] ?? 'failed' })}\n`);
  } else {
    for (const f of result.general) process.stdout.write(`${findingLine(f)}\n`);
    const hinted = [...result.general, ...result.stages.flatMap((st) => st.findings)].some((f) => f.message.endsWith(RUN_HINT));
    process.stdout.write(`${VERDICT[result.exitCode] ?? 'failed'}${hinted ? ` — ${RUN_HINT}` : ''}\n`);
  }
  return result.exitCode;
}

function stageLines(s: StageCheck): string {
  const how = s.mode === 'rerun' ? 're-ran' : s.mode === 'verified' ? 'verified' : '';
  const lines = [`${s.status.padEnd(9)}${s.stage}${how ? `  (${how})` : ''}`];
  for (const f of s.findings) lines.push(`  ${findingLine(f)}`);
  return `${lines.join('\n')}\n`;
}

/** One finding; the "run lorabuild run, then commit" advice is said once, on the verdict line. */
function findingLine(f: CheckFinding): string {
  return `${f.kind}: ${f.message.endsWith(`; ${RUN_HINT}`) ? f.message.slice(0, -`; ${RUN_HINT}`.length) : f.message}`;
}
