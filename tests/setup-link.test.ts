// scripts/setup.sh's last step (scripts/link-bin.sh): `lorabuild` on the PATH, and a clear word
// when the folder it could use is not on the PATH. Run with a temp HOME and a controlled PATH.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const NODE_DIR = dirname(process.execPath);
const run = (command: string, args: string[], env: Record<string, string>) => spawnSync(command, args, { env, encoding: 'utf8' });

describe('setup puts lorabuild on the PATH', () => {
  it('links it into ~/.local/bin when that is on the PATH, and `lorabuild` runs', () => {
    const { dir: home, cleanup } = makeTempDir('lorabuild-home-');
    try {
      mkdirSync(join(home, '.local', 'bin'), { recursive: true });
      const env = { HOME: home, PATH: `${join(home, '.local', 'bin')}:${NODE_DIR}:/usr/bin:/bin` };
      const r = run('bash', [join(REPO_ROOT, 'scripts/link-bin.sh')], env);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(`setup: lorabuild is on the PATH: ${home}/.local/bin/lorabuild -> ${REPO_ROOT}/bin/lorabuild.js\n`);
      expect(readlinkSync(join(home, '.local', 'bin', 'lorabuild'))).toBe(join(REPO_ROOT, 'bin', 'lorabuild.js'));
      const version = run('bash', ['-c', 'lorabuild --version'], env);
      expect(version.status, version.stderr).toBe(0);
      expect(version.stdout).toMatch(/^lorabuild \d+\.\d+\.\d+\n$/);
      // again: replaces its own link, says the same
      expect(run('bash', [join(REPO_ROOT, 'scripts/link-bin.sh')], env).stdout).toBe(r.stdout);
    } finally {
      cleanup();
    }
  });

  it('says how to add the folder when none of its folders is on the PATH', () => {
    const { dir: home, cleanup } = makeTempDir('lorabuild-home-');
    try {
      const r = run('bash', [join(REPO_ROOT, 'scripts/link-bin.sh')], { HOME: home, PATH: `${NODE_DIR}:/usr/bin:/bin` });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`setup: linked ${home}/.local/bin/lorabuild -> ${REPO_ROOT}/bin/lorabuild.js, but ${home}/.local/bin is not on your PATH.`);
      expect(r.stdout).toContain(`echo 'export PATH="${home}/.local/bin:$PATH"' >> ~/.bashrc`);
      expect(readlinkSync(join(home, '.local', 'bin', 'lorabuild'))).toBe(join(REPO_ROOT, 'bin', 'lorabuild.js'));
    } finally {
      cleanup();
    }
  });
});
