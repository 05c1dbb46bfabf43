// Runs the Python worker's unittest suite (tests/worker_py) under Debian's python3 + torch, so
// `npm test` covers the worker's models, safetensors, LoRA, training and JSON-lines server.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const PYTHON = process.env.LORABUILD_TEST_PYTHON ?? '/usr/bin/python3';

describe('python worker unittests', () => {
  it('pass', () => {
    const run = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-s', 'tests/worker_py', '-t', '.'], {
      cwd: ROOT,
      env: { ...process.env, PYTHONPATH: join(ROOT, 'src', 'worker'), LORABUILD_THREADS: '1', OMP_NUM_THREADS: '1' },
      encoding: 'utf8',
      timeout: 900_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const output = `${run.stdout}\n${run.stderr}`;
    if (run.error) throw run.error;
    // unittest prints "Ran N tests" and "OK" (or FAILED with the tracebacks above it) on stderr
    expect(output, output.slice(-6000)).toMatch(/Ran \d+ tests?/);
    expect(run.status, output.slice(-6000)).toBe(0);
    expect(output).toMatch(/\nOK( \(skipped=\d+\))?\s*$/);
    const ran = Number(/Ran (\d+) tests?/.exec(output)?.[1] ?? 0);
    expect(ran).toBeGreaterThan(50);
  }, 960_000);
});
