// Runs the worker's sampling unit tests (tests/worker_py/test_sample*.py: samplers against an
// analytic Gaussian denoiser, fairness of the initial noise, the `sample` op on the tiny model)
// under Debian's python3 with torch, so `npm test` covers them.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { REPO_ROOT } from './helpers/cli.js';

const PYTHON = process.env.LORABUILD_PYTHON || '/usr/bin/python3';

function unittest(pattern: string) {
  return spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-s', 'tests/worker_py', '-t', '.', '-p', pattern, '-v'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' },
    timeout: 300_000,
  });
}

describe('python worker: sampling', () => {
  for (const file of ['test_sample_samplers.py', 'test_sample_op.py']) {
    it(file, () => {
      const result = unittest(file);
      expect(result.status, result.stderr.slice(-4000)).toBe(0);
      // unittest reports on stderr: "Ran N tests" then "OK"
      const ran = /Ran (\d+) tests?/.exec(result.stderr);
      expect(Number(ran?.[1] ?? 0)).toBeGreaterThan(5);
      expect(result.stderr).toMatch(/\nOK\b/);
    }, 300_000); // as long as the unittest run may take (spawnSync's timeout above)
  }
});
