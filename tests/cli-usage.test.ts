// The command line itself: help for every command, and did-you-mean for mistyped commands,
// options, subcommands and templates instead of Node's parser text.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, makeTempDir, runCli } from './helpers/cli.js';

describe('lorabuild usage', () => {
  it('`help CMD` and `CMD --help` print the command\'s own help', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      for (const command of ['run', 'status', 'init', 'grade', 'schema', 'doctor']) {
        const viaHelp = await runCli(['help', command], { cwd: dir });
        const viaFlag = await runCli([command, '--help'], { cwd: dir });
        expect(viaHelp.code, command).toBe(0);
        expect(viaHelp.stdout).toMatch(new RegExp(`^usage: lorabuild ${command}`));
        expect(viaHelp.stdout).toBe(viaFlag.stdout);
      }
      const general = await runCli(['help'], { cwd: dir });
      expect(general.code).toBe(0);
      expect(general.stdout).toContain('lorabuild help <command>');
    } finally {
      cleanup();
    }
  });

  it('mistyped commands, options, subcommands and templates get the closest one, exit 2', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const command = await runCli(['stauts'], { cwd: dir });
      expect(command.code).toBe(2);
      expect(command.stderr).toMatch(/^lorabuild: unknown command 'stauts'; did you mean 'lorabuild status'\?\n\nusage: lorabuild <command>/);

      const helpTypo = await runCli(['help', 'rnu'], { cwd: dir });
      expect(helpTypo.code).toBe(2);
      expect(helpTypo.stderr).toMatch(/^lorabuild: unknown command 'rnu'; did you mean 'lorabuild run'\?/);

      const nothingClose = await runCli(['frobnicate'], { cwd: dir });
      expect(nothingClose.stderr).toMatch(/^lorabuild: unknown command 'frobnicate'; 'lorabuild help' lists the commands\n/);

      const option = await runCli(['status', '--jsno'], { cwd: dir });
      expect(option.code).toBe(2);
      expect(option.stderr).toMatch(/^lorabuild status: unknown option '--jsno'; did you mean '--json'\?\n\nusage: lorabuild status /);
      expect(option.stderr).not.toContain('To specify a positional argument');

      const value = await runCli(['run', '-f'], { cwd: dir });
      expect(value.code).toBe(2);
      expect(value.stderr).toMatch(/^lorabuild run: --file needs a value, e.g. --file VALUE\n/);

      const switchValue = await runCli(['run', '--json=yes'], { cwd: dir });
      expect(switchValue.stderr).toMatch(/^lorabuild run: --json is a switch and takes no value: write --json alone\n/);

      const sub = await runCli(['cache', 'lss'], { cwd: dir });
      expect(sub.code).toBe(2);
      expect(sub.stderr).toMatch(/^lorabuild cache: unknown subcommand 'lss' \(expected ls, verify or gc\); did you mean 'ls'\?/);

      const template = await runCli(['init', 'x', '--template', 'one-line-arts'], { cwd: dir });
      expect(template.code).toBe(2);
      expect(template.stderr).toMatch(/^lorabuild init: unknown template 'one-line-arts'; did you mean 'one-line-art'\?/);
    } finally {
      cleanup();
    }
  });

  it('--version prints the version of package.json', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
      const result = await runCli(['--version'], { cwd: dir });
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(`lorabuild ${version}\n`);
    } finally {
      cleanup();
    }
  });
});
