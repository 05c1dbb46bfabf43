// The graded submission the check/grade suites share: the tiny one-line-art fixture
// (tests/fixtures/grade) with a generated 4-image dataset, built by `lorabuild run` on "the
// student's machine", then copied the way a fresh clone has it (lorafile, lock, dataset, out/).
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT, runCli, writeFiles, type CliResult } from './cli.js';

export const GRADE_FIXTURE = join(REPO_ROOT, 'tests', 'fixtures', 'grade');
export const GRADE_ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1', GITHUB_STEP_SUMMARY: undefined };
export const CAPTIONS = ['one-line-art, a face, side view', 'one-line-art, a cat sitting', 'one-line-art, a hand', 'one-line-art, a bird in flight'];
export const LORA = 'out/loras/one_line_art/one_line_art.safetensors';
/** the entries a student commits */
export const COMMITTED = ['lorafile.yaml', 'lorafile.lock', 'one-line-art', 'out'];

/** The fixture lorafile and a dataset of 4 line drawings with their captions. */
export async function makeSubmission(dir: string, lorafile = join(GRADE_FIXTURE, 'lorafile.yaml')): Promise<void> {
  cpSync(lorafile, join(dir, 'lorafile.yaml'));
  for (const [i, caption] of CAPTIONS.entries()) {
    const svg =
      `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/>` +
      `<path d="M${8 + i * 6} 50 C 20 ${10 + i * 5}, 44 ${10 + i * 5}, 56 50" fill="none" stroke="black" stroke-width="2"/></svg>`;
    writeFiles(dir, { [`one-line-art/image/${i}.jpeg`]: await sharp(Buffer.from(svg)).jpeg().toBuffer(), [`one-line-art/text/${i}.txt`]: `${caption}\n` });
  }
}

/** A python that reports another torch version: the student's machine is not the CI machine. */
export function fakeTorchPython(dir: string, version: string): string {
  const site = join(dir, 'fake-torch-site');
  writeFiles(site, { 'sitecustomize.py': `import torch\ntorch.__version__ = ${JSON.stringify(version)}\n` });
  const wrapper = join(dir, 'python3-student');
  writeFileSync(wrapper, `#!/bin/sh\nPYTHONPATH=${site}\${PYTHONPATH:+:\$PYTHONPATH} exec /usr/bin/python3 "$@"\n`);
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/** What CI sees: the committed files of the submission in a new folder (no cache), plus the test rubric. */
export function cloneSubmission(student: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  for (const entry of COMMITTED) cpSync(join(student, entry), join(dir, entry), { recursive: true });
  cpSync(join(GRADE_FIXTURE, 'rubric.yaml'), join(dir, 'rubric.yaml'));
  return dir;
}

export const lorabuildIn = (cwd: string, args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> =>
  runCli(args, { cwd, env: { ...GRADE_ENV, ...env }, timeoutMs: 400_000 });

export interface StageLine {
  stage: string;
  mode: string;
  status: string;
  findings: { kind: string; message: string; file?: string }[];
}
export const stageLines = (r: CliResult): StageLine[] => r.events.filter((e) => typeof e.stage === 'string') as unknown as StageLine[];
