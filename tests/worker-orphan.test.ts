// kill -9 of lorabuild while its Python worker trains: the worker must be gone within seconds (its
// stdin ends and its parent changes; it stops mid-step) and must write nothing after that.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, startCli, waitForLine } from './helpers/cli.js';
import { GRADE_ENV, GRADE_FIXTURE, makeSubmission } from './helpers/grade-fixture.js';

let tmp: { dir: string; cleanup: () => void };
afterAll(() => tmp?.cleanup());
beforeAll(() => {
  tmp = makeTempDir('lorabuild-orphan-');
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** every file under a folder with its size and mtime, to see whether anything was written */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      try {
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else out.push(`${p} ${st.size} ${st.mtimeMs}`);
      } catch {
        // removed meanwhile
      }
    }
  };
  walk(dir);
  return out.sort();
}

describe('kill -9 of lorabuild mid-training', () => {
  for (const iteration of [1, 2, 3]) {
    it(`the worker exits within 5 s and writes nothing more (run ${iteration})`, async () => {
      const dir = join(tmp.dir, `run-${iteration}`);
      mkdirSync(dir);
      await makeSubmission(dir);
      const lorafile = readFileSync(join(GRADE_FIXTURE, 'lorafile.yaml'), 'utf8').replace('steps: 4', 'steps: 20000').replace('checkpoint_every: 2', 'checkpoint_every: 10000');
      writeFileSync(join(dir, 'lorafile.yaml'), lorafile);
      const cli = startCli(['run', '--json', 'one_line_art'], { cwd: dir, env: GRADE_ENV, timeoutMs: 300_000 });
      // wait for training steps, then a little more so the kill lands at a different point each time
      await waitForLine(cli, (line) => line.includes('"stage":"train:one_line_art"') && line.includes('"progress"'), 240_000);
      await new Promise((r) => setTimeout(r, 300 * iteration));
      const workers = execFileSync('ps', ['-o', 'pid=', '--ppid', String(cli.pid)], { encoding: 'utf8' })
        .split('\n')
        .map((l) => Number(l.trim()))
        .filter((pid) => pid > 0);
      expect(workers.length).toBeGreaterThan(0);
      cli.kill('SIGKILL');
      await cli.result;
      const killed = Date.now();
      while (workers.some(alive) && Date.now() - killed < 5_000) await new Promise((r) => setTimeout(r, 50));
      const survivors = workers.filter(alive);
      for (const pid of survivors) process.kill(pid, 'SIGKILL');
      expect(survivors, 'worker still alive 5 s after lorabuild was killed').toEqual([]);
      // nothing is written after the worker is gone
      const after = snapshot(join(dir, 'cache'));
      await new Promise((r) => setTimeout(r, 1000));
      expect(snapshot(join(dir, 'cache'))).toEqual(after);
    });
  }
});
