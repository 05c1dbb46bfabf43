// lorabuild grade --rubric rubric.yaml [-f FILE] [--junit FILE] [--json FILE] [--markdown FILE] [--reproduce]
// Grades a lab submission: runs `lorabuild check`, gathers facts (grade/facts.ts) and scores the
// rubric's checks. Exit codes: 0 every check passed, 1 some failed, 2 bad rubric or lorafile.
import { appendFileSync, statSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { writeFileAtomic } from '../cache/atomic.js';
import { acquireWriterLock } from '../cache/writer-lock.js';
import { ConfigError } from '../config/errors.js';
import { reportConfigError } from '../config/format.js';
import { checkProject } from '../engine/check.js';
import { openProject } from '../engine/project.js';
import { onPythonProbe } from '../worker/python.js';
import type { Json } from '../engine/types.js';
import { gatherFacts } from '../grade/facts.js';
import { junitXml } from '../grade/junit.js';
import { gradeMarkdown } from '../grade/markdown.js';
import { reproduceLoras } from '../grade/reproduce.js';
import { loadRubric } from '../grade/rubric.js';
import { scoreRubric } from '../grade/score.js';
import { gradeTable } from '../grade/table.js';
import { stageRegistry } from '../stages/index.js';
import { UsageError, commandArgs, lorafileOption } from './args.js';

const HELP = `usage: lorabuild grade --rubric RUBRIC [-f FILE] [--junit FILE] [--json FILE] [--markdown FILE] [--reproduce]

Grades the submission in the lorafile's folder: runs the same verification as \`lorabuild check\`,
reads the lock, the validation report, the LoRA file and the renders, and scores each rubric check.
The Markdown summary is also appended to $GITHUB_STEP_SUMMARY when it is set.

  --rubric FILE     the rubric (YAML: title, checks: [{ id, title, points, expect }])
  -f, --file FILE   the lorafile (default ./lorafile.yaml)
  --junit FILE      write JUnit XML (one testcase per check)
  --json FILE       write the grade and the facts as JSON
  --markdown FILE   write the Markdown summary
  --reproduce       re-train every LoRA on this machine (temporary cache) and compare it with the
                    submitted file: facts reproduce.NAME.identical / within_tolerance

exit codes: 0 all checks passed, 1 some failed, 2 bad rubric, lorafile or usage
`;

export async function main(argv: string[]): Promise<number> {
  const args = commandArgs(
    argv,
    {
      ...lorafileOption,
      rubric: { type: 'string' },
      junit: { type: 'string' },
      json: { type: 'string' },
      markdown: { type: 'string' },
      reproduce: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    'grade',
    HELP,
    (parsed) => {
      if (!parsed.values.rubric) throw new UsageError('lorabuild grade: --rubric FILE is required');
      if (parsed.positionals.length > 0) throw new UsageError(`lorabuild grade: unexpected argument '${parsed.positionals[0]}'`);
    },
  );
  if (typeof args === 'number') return args;
  let rubric;
  let project;
  try {
    const rubricFile = args.values.rubric!;
    rubric = loadRubric(rubricFile, shown(rubricFile));
    project = await openProject(args.values.file, []);
  } catch (err) {
    if (err instanceof ConfigError) return reportConfigError(err);
    throw err;
  }
  // finding Python again (PATH or LORABUILD_PYTHON changed) takes seconds: say so on stderr
  onPythonProbe((message) => process.stderr.write(`${message}\n`));

  const lock = await acquireWriterLock(project.cacheDir, 'lorabuild grade', {
    onWait: (holder) => process.stderr.write(`lorabuild: waiting for ${holder.command} (pid ${holder.pid}) to finish with the cache ${project.cacheDir}\n`),
  });
  let facts: { [key: string]: Json };
  try {
    const check = await checkProject({ config: project.config, plan: project.plan, registry: stageRegistry, cacheDir: project.cacheDir, lockFile: project.lockFile });
    facts = await gatherFacts(project.config, check);
    if (args.values.reproduce) facts.reproduce = await reproduceLoras(project.config, check.lock, (line) => process.stderr.write(`${line}\n`));
  } finally {
    lock.release();
  }

  const report = scoreRubric(rubric, facts);
  process.stdout.write(gradeTable(report));
  const markdown = gradeMarkdown(report);
  if (args.values.junit) writeReport(args.values.junit, junitXml(report));
  if (args.values.markdown) writeReport(args.values.markdown, markdown);
  if (args.values.json) writeReport(args.values.json, `${JSON.stringify({ ...report, facts }, null, 2)}\n`);
  const summary = process.env.GITHUB_STEP_SUMMARY;
  if (summary) {
    try {
      appendFileSync(summary, markdown);
    } catch (err) {
      process.stderr.write(`lorabuild grade: could not append to $GITHUB_STEP_SUMMARY (${summary}): ${(err as Error).message}\n`);
    }
  }
  return report.passed ? 0 : 1;
}

/** Regular files are replaced atomically; anything else (/dev/stdout, a pipe) is written to, never renamed over. */
function writeReport(file: string, text: string): void {
  let special = false;
  try {
    special = !statSync(file).isFile();
  } catch {
    // does not exist yet
  }
  if (special) writeFileSync(file, text);
  else writeFileAtomic(file, text);
}

function shown(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}
