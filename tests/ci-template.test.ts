// The exercise template as a TA and a student get it: `lorabuild init --template one-line-art`
// makes a folder that installs lorabuild on its own (package.json + package-lock.json pinning
// lorabuild packed into vendor/), the student builds a (tiny) submission and commits it, and the
// template's GitHub workflow runs, step by step, as a script in a clean `git clone` of it: `npm ci`
// installs the pinned lorabuild (from npm's local cache: no download), then check and grade pass.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parse as parseYaml } from 'yaml';
import { makeTempDir, REPO_ROOT, runCli, writeFiles } from './helpers/cli.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const CAPTIONS = ['one-line-art, a face, side view', 'one-line-art, a cat sitting', 'one-line-art, a hand', 'one-line-art, a bird in flight'];

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, string>;
}
interface Workflow {
  jobs: Record<string, { env?: Record<string, string>; steps: Step[] }>;
}

const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-c', 'user.name=student', '-c', 'user.email=student@example.com', '-c', 'init.defaultBranch=main', ...args], { cwd, encoding: 'utf8' });

describe('the one-line-art template on a fresh machine', () => {
  it('init pins lorabuild; the workflow installs it, checks and grades a committed submission', async () => {
    const { dir, cleanup } = makeTempDir('lorabuild-ci-template-');
    try {
      // the TA makes the exercise repository
      const init = await runCli(['init', 'exercise', '--template', 'one-line-art'], { cwd: dir });
      expect(init.code, init.stderr).toBe(0);
      const exercise = join(dir, 'exercise');
      const pkg = JSON.parse(readFileSync(join(exercise, 'package.json'), 'utf8'));
      const version = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version;
      expect(pkg.devDependencies).toEqual({ lorabuild: `file:vendor/lorabuild-${version}.tgz` });
      expect(init.stdout).toContain(`lorabuild is pinned in package.json as file:vendor/lorabuild-${version}.tgz`);
      expect(init.stdout).toContain('dataset folders to fill: one-line-art/image, one-line-art/text');
      const lock = JSON.parse(readFileSync(join(exercise, 'package-lock.json'), 'utf8'));
      const tarball = readFileSync(join(exercise, 'vendor', `lorabuild-${version}.tgz`));
      expect(lock.packages['node_modules/lorabuild']).toMatchObject({ version, resolved: pkg.devDependencies.lorabuild, integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`, dev: true });
      expect(lock.packages['node_modules/sharp']).toMatchObject({ dev: true });
      expect(lock.packages['node_modules/vitest']).toBeUndefined(); // lorabuild's own dev tools stay out
      expect(readFileSync(join(exercise, '.github/workflows/grade.yml'), 'utf8')).toBe(readFileSync(join(REPO_ROOT, 'pipelines/one-line-art/github-workflow.yml'), 'utf8'));
      expect(readFileSync(join(exercise, 'lorafile.yaml'), 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=./lorafile.schema.json');
      expect(readFileSync(join(exercise, 'lorafile.schema.json'), 'utf8')).toBe((await runCli(['schema'], { cwd: dir })).stdout);
      expect(existsSync(join(exercise, 'one-line-art/image/.gitkeep')) && existsSync(join(exercise, 'one-line-art/text/.gitkeep'))).toBe(true);
      const again = await runCli(['init', 'exercise', '--template', 'one-line-art'], { cwd: dir });
      expect(again.code).toBe(2);
      expect(again.stderr).toContain('these files exist already; nothing was written');

      // the student's submission (the exercise shrunk: builtin tiny model, 4 steps), built and committed
      cpSync(join(REPO_ROOT, 'tests/fixtures/grade/lorafile.yaml'), join(exercise, 'lorafile.yaml'));
      cpSync(join(REPO_ROOT, 'tests/fixtures/grade/rubric.yaml'), join(exercise, 'rubric.yaml'));
      for (const [i, caption] of CAPTIONS.entries()) {
        const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="white"/><path d="M${8 + i * 6} 50 C 20 ${10 + i * 5}, 44 ${10 + i * 5}, 56 50" fill="none" stroke="black" stroke-width="2"/></svg>`;
        writeFiles(exercise, { [`one-line-art/image/${i}.jpeg`]: await sharp(Buffer.from(svg)).jpeg().toBuffer(), [`one-line-art/text/${i}.txt`]: `${caption}\n` });
      }
      const built = await runCli(['run'], { cwd: exercise, env: { ...ENV, LORABUILD_CACHE: undefined }, timeoutMs: 600_000 });
      expect(built.code, built.stderr).toBe(0);
      git(exercise, 'init', '-q');
      git(exercise, 'add', '-A');
      git(exercise, 'commit', '-qm', 'submission');
      const committed = git(exercise, 'ls-files').split('\n');
      expect(committed.some((f) => f.startsWith('cache/'))).toBe(false);
      expect(committed).toEqual(expect.arrayContaining(['package-lock.json', `vendor/lorabuild-${version}.tgz`, 'lorafile.lock', 'out/report.html']));

      // CI: a clean clone, the workflow's steps in order (actions are stood in for: the clone is the checkout)
      const ci = join(dir, 'ci');
      git(dir, 'clone', '-q', exercise, ci);
      const workflow = parseYaml(readFileSync(join(ci, '.github/workflows/grade.yml'), 'utf8')) as Workflow;
      const job = workflow.jobs.grade;
      const summary = join(dir, 'step-summary.md');
      writeFileSync(summary, '');
      const baseEnv: NodeJS.ProcessEnv = { ...process.env, ...job.env, GITHUB_STEP_SUMMARY: summary, CI: 'true', npm_config_offline: 'true' };
      delete baseEnv.LORABUILD_CACHE;
      const ran: string[] = [];
      for (const step of job.steps) {
        if (step.uses) continue;
        const r = spawnSync('bash', ['-eo', 'pipefail', '-c', step.run!], { cwd: ci, env: { ...baseEnv, ...step.env }, encoding: 'utf8', timeout: 600_000 });
        expect(r.status, `${step.name}\n${r.stdout}\n${r.stderr}`).toBe(0);
        ran.push(step.name ?? step.run!);
      }
      expect(ran).toEqual(['Install lorabuild (the version package-lock.json pins)', 'Python + torch (CPU) for the worker', 'lorabuild check', 'lorabuild grade (the table also goes to the job summary)']);
      // the lorabuild that ran is the pinned one, installed from the vendored tarball
      expect(lstatSync(join(ci, 'node_modules/lorabuild')).isSymbolicLink()).toBe(false);
      expect(JSON.parse(readFileSync(join(ci, 'node_modules/lorabuild/package.json'), 'utf8')).version).toBe(version);
      const grade = JSON.parse(readFileSync(join(ci, 'grade.json'), 'utf8'));
      expect(grade.checks.filter((c: { passed: boolean }) => !c.passed), readFileSync(summary, 'utf8')).toEqual([]);
      expect(readFileSync(summary, 'utf8')).toContain('| ✅ | reproducible:');
      const upload = job.steps.find((s) => s.uses?.startsWith('actions/upload-artifact'))!;
      for (const path of upload.with!.path.trim().split('\n')) expect(existsSync(join(ci, path.trim())), path).toBe(true);
      const cache = job.steps.find((s) => s.uses?.startsWith('actions/cache'))!;
      expect(cache.with!.path).toContain('~/.cache/huggingface');
      expect(existsSync(join(ci, 'cache'))).toBe(true); // lorabuild's cache, what the cache step keeps
    } finally {
      cleanup();
    }
  }, 900_000);
});
