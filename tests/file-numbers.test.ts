// The walk's lstat without Stats objects (src/datasets/local/file-numbers.ts): for a regular file
// it gives exactly fs.lstatSync's size, mtimeMs and ino (nanosecond mtimes included, which the
// stat memo keys on); for anything else it answers false and leaves the numbers alone, so the
// walk asks fs.lstatSync (folders, links, FIFOs, missing names, errors). It is off under
// LORABUILD_PLAIN_LSTAT=1 and --pending-deprecation (no warning printed), and a walk through the
// CLI lists the same files with it as without it.
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { fastLstatState, regularFileNumbers } from '../src/datasets/local/file-numbers.js';
import { makeTempDir, REPO_ROOT, runCli } from './helpers/cli.js';
import { writeOldLabFolder } from './helpers/lab-folder.js';

const tmp = makeTempDir('lorabuild-file-numbers-');
afterAll(tmp.cleanup);

// Node 20 (what lorabuild is built and tested on) calls its binding the way file-numbers.ts does:
// there the fast path must be taken; another Node may or may not allow it, and either is right
const hasBinding = Number(process.versions.node.split('.')[0]) === 20 || fastLstatAllowedHere();

function fastLstatAllowedHere(): boolean {
  const probe = join(tmp.dir, 'probe.txt');
  writeFileSync(probe, 'probe');
  return regularFileNumbers(probe, new Float64Array(3), 0);
}

/** a child node that imports the built module, asks for `file`, and prints its state and numbers */
function childState(file: string, env: NodeJS.ProcessEnv, execArgv: string[] = []) {
  const module = pathToFileURL(join(REPO_ROOT, 'dist', 'datasets', 'local', 'file-numbers.js')).href;
  const script = `import(${JSON.stringify(module)}).then((m) => { const n = new Float64Array(3); const ok = m.regularFileNumbers(${JSON.stringify(file)}, n, 0); console.log(JSON.stringify({ ok, state: m.fastLstatState(), n: [...n] })); })`;
  const r = spawnSync(process.execPath, [...execArgv, '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return { ...(JSON.parse(r.stdout) as { ok: boolean; state: string; n: number[] }), stderr: r.stderr };
}

describe('regular file numbers without Stats objects', () => {
  const dir = join(tmp.dir, 'files');
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < 300; i++) {
    const file = join(dir, `${i}.txt`);
    writeFileSync(file, 'x'.repeat(i * 7));
    files.push(file);
  }
  // mtimes down to the nanosecond (what `touch` sets), where a wrong formula would show
  execFileSync('touch', ['-m', '-d', '@1700000000.123456789', files[1]]);
  execFileSync('touch', ['-m', '-d', '@1999999999.987654321', files[2]]);
  execFileSync('touch', ['-m', '-d', '@86400.000000001', files[3]]);

  it('gives fs.lstatSync size, mtimeMs and ino of every regular file, to the bit', () => {
    const numbers = new Float64Array(files.length * 3);
    for (let i = 0; i < files.length; i++) expect(regularFileNumbers(files[i], numbers, i * 3)).toBe(hasBinding);
    if (!hasBinding) return; // a Node without the binding: fs.lstatSync does everything
    expect(fastLstatState()).toBe('fast');
    for (let i = 0; i < files.length; i++) {
      const st = lstatSync(files[i]);
      expect([numbers[i * 3], numbers[i * 3 + 1], numbers[i * 3 + 2]]).toEqual([st.size, st.mtimeMs, st.ino]);
    }
    expect(numbers[1 * 3 + 1]).toBe(lstatSync(files[1]).mtimeMs);
    expect(numbers[1 * 3 + 1] % 1000).toBeGreaterThan(123); // the nanoseconds are there
  });

  it('answers false, writing nothing, for what is not a regular file', () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    const link = join(dir, 'link.txt');
    symlinkSync(files[5], link); // a link to a regular file is not followed
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // decided first on a regular file, as a walk would be
    expect(regularFileNumbers(files[4], new Float64Array(3), 0)).toBe(hasBinding);
    const numbers = new Float64Array(3).fill(-1);
    for (const path of [sub, link, fifo, join(dir, 'missing.txt'), join(files[0], 'under-a-file.txt'), join(dir, 'no-dir', 'x.txt')]) {
      expect(regularFileNumbers(path, numbers, 0)).toBe(false);
      expect([...numbers]).toEqual([-1, -1, -1]);
    }
  });

  it('is off under LORABUILD_PLAIN_LSTAT=1 and --pending-deprecation, without a warning', () => {
    const st = lstatSync(files[1]);
    const on = childState(files[1], {});
    expect(on.state).toBe(hasBinding ? 'fast' : 'plain');
    if (hasBinding) expect(on.n).toEqual([st.size, st.mtimeMs, st.ino]);
    expect(childState(files[1], { LORABUILD_PLAIN_LSTAT: '1' })).toMatchObject({ ok: false, state: 'plain' });
    for (const how of [childState(files[1], {}, ['--pending-deprecation']), childState(files[1], { NODE_OPTIONS: '--pending-deprecation' })]) {
      expect(how).toMatchObject({ ok: false, state: 'plain' });
      expect(how.stderr).not.toMatch(/Deprecation/);
    }
  });

  it('decides on the first regular file: a folder asked first leaves it undecided', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `import(${JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist', 'datasets', 'local', 'file-numbers.js')).href)}).then((m) => { const n = new Float64Array(3); const a = m.regularFileNumbers(${JSON.stringify(dir)}, n, 0); const s1 = m.fastLstatState(); const b = m.regularFileNumbers(${JSON.stringify(files[9])}, n, 0); console.log(JSON.stringify([a, s1, b, m.fastLstatState(), n[0]])); })`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(hasBinding ? [false, 'undecided', true, 'fast', 63] : [false, 'plain', false, 'plain', 0]);
  });

  it('through the CLI: a run with it after a run without it is a no-op, and it sees a same-size edit', async () => {
    const base = join(tmp.dir, 'project');
    // two folders of more names than PARALLEL_MIN: the stat thread takes part too
    writeOldLabFolder(join(base, 'data'), 4200);
    writeFileSync(join(base, 'lorafile.yaml'), 'version: 1\ndatasets:\n  big:\n    folder: data\n    rules: { too_small: off }\n');
    const run = (env: NodeJS.ProcessEnv) => runCli(['run', 'fetch:big', '--json'], { cwd: base, env });
    const summary = (r: Awaited<ReturnType<typeof run>>) => r.events.find((e) => e.summary)?.summary as { ran: number; hashing: { filesHashed: number } };
    const cold = await run({ LORABUILD_PLAIN_LSTAT: '1' });
    expect(cold.code, cold.stderr).toBe(0);
    expect(summary(cold).hashing.filesHashed).toBeGreaterThanOrEqual(8400);
    for (const env of [{}, { LORABUILD_PLAIN_LSTAT: '1' }, {}]) {
      const noop = await run(env);
      expect(noop.code, noop.stderr).toBe(0);
      expect(summary(noop)).toMatchObject({ ran: 0, hashing: { filesHashed: 0 } });
    }
    // same size, an old date (not racy) with nanoseconds: only size, mtime and inode tell
    const caption = join(base, 'data', 'text', '4100.txt');
    writeFileSync(caption, 'caption XXXX\n');
    execFileSync('touch', ['-m', '-d', '@1704067201.000000123', caption]);
    const edit = await run({});
    expect(edit.code, edit.stderr).toBe(0);
    expect(summary(edit).ran).toBeGreaterThan(0);
    expect(summary(edit).hashing.filesHashed).toBe(1);
  }, 180_000);
});
