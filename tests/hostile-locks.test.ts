// Hostile lorafile.lock files, generated: YAML aliases (one, a bomb), syntax damage, every field of
// an entry given a wrong type, a FIFO or a folder in its place. Reading one never throws and never
// hangs: it is ignored with a positioned reason (`run` warns and rewrites it, `check` says tampered,
// exit 4).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { readLockfile } from '../src/engine/lockfile.js';
import { makeTempDir, runCli } from './helpers/cli.js';
import { Tally } from './helpers/hostile.js';

const SHA = 'ab'.repeat(32);
const ENTRY = { fingerprint: SHA, implVersion: 1, params: { folder: 'ds' }, files: { 'ds/0.txt': SHA }, upstream: {}, outputs: { 'listing.json': { sha256: SHA, size: 10 } }, meta: { items: 1 } };
const LOCK = { version: 1, stages: { 'fetch:ds': ENTRY } };

function lockCases(): [string, string][] {
  const cases: [string, string][] = [];
  const base = stringify(LOCK);
  cases.push(['an alias', base.replace('  "fetch:ds":', '  "fetch:ds": &e').concat('  "prepare:ds": *e\n')]);
  const bomb = ['version: 1', 'a0: &a0 [x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i <= 8; i++) bomb.push(`a${i}: &a${i} [${Array(9).fill(`*a${i - 1}`).join(', ')}]`);
  cases.push(['an alias bomb', `${bomb.join('\n')}\nstages: {}\n`]);
  cases.push(['an unresolved alias', 'version: 1\nstages: *nope\n']);
  cases.push(['a YAML syntax error', base.replace('version: 1', 'version: [1')]);
  cases.push(['tabs', base.replace('  "fetch:ds":', '\t"fetch:ds":')]);
  cases.push(['a duplicate stage', `${base}  "fetch:ds": {}\n`]);
  cases.push(['version 2', base.replace('version: 1', 'version: 2')]);
  cases.push(['not a mapping', '- 1\n- 2\n']);
  cases.push(['empty', '']);
  cases.push(['binary', '\u0000\u0001\u0002garbage\u00ff']);
  const wrong: [string, unknown][] = [['a string', 'x'], ['a number', 5], ['a list', [1]], ['null', null], ['a mapping', { a: 1 }], ['infinity', Infinity]];
  for (const field of Object.keys(ENTRY)) {
    for (const [what, value] of wrong) {
      const entry = { ...ENTRY, [field]: value };
      cases.push([`${field} is ${what}`, stringify({ version: 1, stages: { 'fetch:ds': entry } })]);
    }
  }
  for (const [what, value] of wrong) cases.push([`an output's size is ${what}`, stringify({ version: 1, stages: { 'fetch:ds': { ...ENTRY, outputs: { 'listing.json': { sha256: SHA, size: value } } } } })]);
  cases.push(['an output named ../../x', stringify({ version: 1, stages: { 'fetch:ds': { ...ENTRY, outputs: { '../../x': { sha256: SHA, size: 1 } } } } })]);
  return cases;
}

const tally = new Tally('lorafile.lock files');
let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-hostile-lock-');
});
afterAll(() => {
  tally.report('as damaged, with the reason (and a position where YAML has one)');
  tmp?.cleanup();
});

describe('hostile lorafile.lock', () => {
  it('every generated lock is read without a throw or a hang: valid, or ignored with its reason', () => {
    for (const [i, [name, text]] of lockCases().entries()) {
      const file = join(tmp.dir, `case-${i}.lock`);
      writeFileSync(file, text);
      const started = process.cpuUsage();
      try {
        const loaded = readLockfile(file, join(tmp.dir, `cache-${i}`));
        const used = process.cpuUsage(started);
        if ((used.user + used.system) / 1000 > 5000) tally.add(name, 'hung');
        else if (loaded.problem) tally.add(name, loaded.problem.startsWith(file) ? 'rejected' : 'crashed', loaded.problem);
        else tally.add(name, 'accepted');
      } catch (err) {
        tally.add(name, 'crashed', String(err));
      }
    }
    mkdirSync(join(tmp.dir, 'folder.lock'));
    execFileSync('mkfifo', [join(tmp.dir, 'fifo.lock')]);
    for (const name of ['folder.lock', 'fifo.lock']) {
      const loaded = readLockfile(join(tmp.dir, name), join(tmp.dir, 'cache-special'));
      tally.add(name, loaded.problem?.includes('not a lock file') ? 'rejected' : 'crashed', loaded.problem);
    }
    expect(tally.failures()).toEqual([]);
    const result = (name: string) => tally.results.find((r) => r.name === name)!;
    expect(result('an alias').detail).toMatch(/case-0\.lock:\d+:\d+: alias '\*e': lorabuild never writes YAML aliases here/);
    expect(result('meta is infinity').verdict).toBe('rejected');
    expect(result('an alias bomb').verdict).toBe('rejected');
    expect(result('params is infinity').verdict).toBe('rejected');
  });

  it('through the CLI: run warns at the alias position and rewrites the lock; check says tampered (exit 4)', async () => {
    const dir = join(tmp.dir, 'project');
    mkdirSync(dir);
    writeFileSync(join(dir, 'lorafile.yaml'), 'version: 1\n');
    const built = await runCli(['run'], { cwd: dir });
    expect(built.code).toBe(0);
    writeFileSync(join(dir, 'lorafile.lock'), 'version: 1\nstages: &s {}\nx: *s\n');
    const check = await runCli(['check'], { cwd: dir });
    expect(check.code).toBe(4);
    expect(check.stdout).toMatch(/lorafile\.lock:3:4: alias '\*s': lorabuild never writes YAML aliases here — lorafile\.lock was damaged or edited by hand/);
    expect(check.stdout + check.stderr).not.toContain('internal error');
    const run = await runCli(['run'], { cwd: dir });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning: .*lorafile\.lock:3:4: alias '\*s'/);
    expect((await runCli(['check'], { cwd: dir })).code).toBe(0);
  });
});
