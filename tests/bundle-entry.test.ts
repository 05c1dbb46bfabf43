// bin/lorabuild.js's two entries: the bundle (dist/lorabuild.cjs, scripts/bundle.mjs) compiled with
// a V8 code cache (bin/code-cache.js), and the ES modules of dist/ when the bundle is missing or
// older than dist/cli/main.js. Each test runs a copy of the package (bin/, dist/, package.json,
// scripts/bundle.mjs; node_modules and assets linked), so that its cache files and mtimes are its own.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeLabDataset } from '../bench/lab-dataset.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('bin/lorabuild.js: the bundle, its code cache, the ES modules', () => {
  let tmp: { dir: string; cleanup: () => void };
  let pkg: string;
  let project: string;

  beforeEach(() => {
    tmp = makeTempDir('lorabuild-bundle-');
    pkg = join(tmp.dir, 'lorabuild');
    mkdirSync(join(pkg, 'scripts'), { recursive: true });
    cpSync(join(REPO_ROOT, 'package.json'), join(pkg, 'package.json'));
    cpSync(join(REPO_ROOT, 'bin'), join(pkg, 'bin'), { recursive: true });
    cpSync(join(REPO_ROOT, 'scripts', 'bundle.mjs'), join(pkg, 'scripts', 'bundle.mjs'));
    cpSync(join(REPO_ROOT, 'dist'), join(pkg, 'dist'), { recursive: true, filter: (from) => !from.includes('.code-cache') });
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(pkg, 'node_modules'));
    symlinkSync(join(REPO_ROOT, 'assets'), join(pkg, 'assets'));
    // a checkout: bin holds the bundle to dist/cli/main.js's mtime only where sources can be compiled
    mkdirSync(join(pkg, 'src', 'cli'), { recursive: true });
    cpSync(join(REPO_ROOT, 'src', 'cli', 'main.ts'), join(pkg, 'src', 'cli', 'main.ts'));
    expect(existsSync(join(pkg, 'dist', 'lorabuild.cjs')), 'build first: npm run build').toBe(true);
    project = join(tmp.dir, 'project');
    writeLabDataset(join(project, 'data'), 3);
    writeFileSync(join(project, 'lorafile.yaml'), 'version: 1\ndatasets:\n  bench:\n    folder: data\n    rules: { too_small: off }\n');
  });
  afterEach(() => tmp.cleanup());

  const bundle = () => join(pkg, 'dist', 'lorabuild.cjs');
  /** dates the bundle `ms` before dist/cli/main.js (a bare tsc after it; npm extracting in another order) */
  const bundleOlderThanMain = (ms: number) => {
    const main = statSync(join(pkg, 'dist', 'cli', 'main.js'));
    utimesSync(bundle(), main.atime, new Date(main.mtimeMs - ms));
  };
  const cacheFile = (name: string) => join(pkg, 'dist', `lorabuild.${name}.code-cache`);

  function lb(args: string[], env: Record<string, string> = {}, nodeFlags: string[] = []): Ran {
    const r = spawnSync(process.execPath, [...nodeFlags, join(pkg, 'bin', 'lorabuild.js'), ...args], {
      cwd: project,
      encoding: 'utf8',
      timeout: 60_000,
      env: { ...process.env, NODE_OPTIONS: '', LORABUILD_CACHE: join(project, 'cache'), NO_COLOR: '1', LORABUILD_DEBUG_ENTRY: '1', ...env },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** stderr less bin's debug lines */
  const ownStderr = (r: Ran) => r.stderr.replace(/^lorabuild: (entry|code cache) .*\n/gm, '');

  it('runs the bundle: a command writes its code cache on its first run and compiles from it on the next', () => {
    const first = lb(['--version']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(first.stderr).toContain(`lorabuild: entry bundle, code cache missing (${cacheFile('other')})`);
    expect(first.stderr).toContain(`lorabuild: code cache written (${cacheFile('other')})`);
    expect(readFileSync(cacheFile('other')).subarray(0, 22).toString()).toBe('lorabuild-code-cache 1');

    const second = lb(['--version']);
    expect(second.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(second.stderr).toContain('code cache accepted');
    expect(second.stderr).not.toContain('written');

    // run and plan keep caches of their own (run's also proves the bundle finds the package's
    // worker scripts and assets: validate decodes images and counts tokens)
    const other = readFileSync(cacheFile('other'));
    for (const command of ['run', 'plan']) {
      const a = lb([command]);
      expect(a.code, a.stderr).toBe(0);
      expect(a.stderr).toContain(`code cache missing (${cacheFile(command)})`);
      const b = lb([command]);
      expect(b.code, b.stderr).toBe(0);
      expect(b.stderr).toContain(`code cache accepted (${cacheFile(command)})`);
    }
    expect(readFileSync(cacheFile('other')).equals(other)).toBe(true);
    expect(lb(['status']).stdout).toMatch(/validate:bench\s+fresh/);
  });

  it('the bundle file is what runs while it is not older than dist/cli/main.js, and never after', () => {
    writeFileSync(bundle(), "process.stdout.write('the bundle ran\\n');\n");
    const fresh = lb(['--version']);
    expect(fresh.stdout).toBe('the bundle ran\n');

    // a bare tsc rewrites dist/cli/main.js: the bundle is then older and holds old code
    bundleOlderThanMain(2000);
    const stale = lb(['--version']);
    expect(stale.code, stale.stderr).toBe(0);
    expect(stale.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(stale.stderr).toBe('lorabuild: entry dist/cli/main.js\n');
  });

  it('an installed package (no sources) runs its bundle even when npm extracted it before dist/cli/main.js', () => {
    rmSync(join(pkg, 'src'), { recursive: true });
    bundleOlderThanMain(700);
    const installed = lb(['--version']);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(installed.stderr).toContain('lorabuild: entry bundle');
    // and the ES modules still when there is no bundle at all
    rmSync(bundle());
    const none = lb(['--version']);
    expect(none.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(none.stderr).toBe('lorabuild: entry dist/cli/main.js\n');
  });

  it('a checkout that was never built says so and how to build, with no resolver stack', () => {
    rmSync(join(pkg, 'dist'), { recursive: true });
    const r = lb(['run']);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(ownStderr(r)).toBe(`lorabuild: ${join(pkg, 'dist', 'cli', 'main.js')} is missing: lorabuild is not built; run \`npm run build\` in ${pkg} (or \`bash scripts/setup.sh\`)\n`);
  });

  it('a damaged, truncated or foreign cache is never used: the command succeeds and the cache is written anew', () => {
    expect(lb(['plan']).code).toBe(0);
    const good = readFileSync(cacheFile('plan'));
    const newline = good.indexOf(10);
    const flipped = Buffer.from(good);
    for (let i = newline + 100; i < flipped.length; i += 997) flipped[i] ^= 0x5a;
    const otherNode = Buffer.concat([Buffer.from(good.subarray(0, newline).toString().replace(process.version, 'v20.0.0')), good.subarray(newline)]);
    const cases: [string, Buffer, string][] = [
      ['bytes flipped', flipped, 'damaged'],
      ['truncated', good.subarray(0, Math.floor(good.length / 2)), 'damaged'],
      ['empty', Buffer.alloc(0), 'damaged'],
      ['not a cache', Buffer.from('\0'.repeat(3000)), 'damaged'],
      ['made by another Node', otherNode, 'outdated'],
    ];
    const plan = lb(['plan', '--json']);
    for (const [what, bytes, state] of cases) {
      writeFileSync(cacheFile('plan'), bytes);
      const r = lb(['plan', '--json']);
      expect(r.code, `${what}: ${r.stderr}`).toBe(0);
      expect(r.stdout, what).toBe(plan.stdout);
      expect(r.stderr, what).toContain(`code cache ${state}`);
      expect(r.stderr, what).toContain('code cache written');
      expect(lb(['plan']).stderr, what).toContain('code cache accepted');
    }
  });

  it('a cache that V8 rejects (made under other V8 flags) is written anew', () => {
    expect(lb(['--version']).code).toBe(0);
    const flagged = lb(['--version'], {}, ['--stack-trace-limit=50']);
    expect(flagged.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(flagged.stderr).toContain('code cache rejected');
    expect(flagged.stderr).toContain('code cache written');
    expect(lb(['--version'], {}, ['--stack-trace-limit=50']).stderr).toContain('code cache accepted');
  });

  it('LORABUILD_NO_CODE_CACHE=1 runs the bundle without a cache; a cache that cannot be written costs nothing', () => {
    const off = lb(['--version'], { LORABUILD_NO_CODE_CACHE: '1' });
    expect(off.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(off.stderr).toBe(`lorabuild: entry bundle, code cache off (${cacheFile('other')})\n`);
    expect(readdirSync(join(pkg, 'dist')).filter((n) => n.includes('code-cache'))).toEqual([]);

    mkdirSync(cacheFile('other')); // in the cache's place: nothing can be read or written there
    const blocked = lb(['--version']);
    expect(blocked.code, blocked.stderr).toBe(0);
    expect(blocked.stdout).toBe(`lorabuild ${VERSION}\n`);
    expect(blocked.stderr).toContain('code cache not written');
    expect(readdirSync(join(pkg, 'dist')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('says and exits the same from the bundle, from the ES modules, and without a bundle', () => {
    const calls = [['--version'], ['help'], [], ['frob'], ['--frob'], ['plan', '--frob'], ['help', 'plan'], ['plan', '--json'], ['check']];
    const seen = (env: Record<string, string>) => calls.map((args) => {
      const r = lb(args, env);
      return { args, code: r.code, stdout: r.stdout, stderr: ownStderr(r) };
    });
    const fromBundle = seen({});
    expect(fromBundle.map((r) => r.code)).toEqual([0, 0, 2, 2, 2, 2, 0, 0, 3]);
    expect(seen({ LORABUILD_NO_BUNDLE: '1' })).toEqual(fromBundle);
    rmSync(bundle());
    expect(lb(['--version']).stderr).toBe('lorabuild: entry dist/cli/main.js\n');
    expect(seen({})).toEqual(fromBundle);
  });

  it('a watch stops on Ctrl-C with exit 130 from the bundle as from the ES modules, its code cache written', async () => {
    for (const env of [{}, { LORABUILD_NO_BUNDLE: '1' }]) {
      const child = spawn(process.execPath, [join(pkg, 'bin', 'lorabuild.js'), 'watch', '--json'], {
        cwd: project,
        env: { ...process.env, NODE_OPTIONS: '', LORABUILD_CACHE: join(project, 'cache'), LORABUILD_DEBUG_ENTRY: '1', ...env },
      });
      let stdout = '';
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const closed = new Promise<number | null>((done) => child.on('close', (code) => done(code)));
      await new Promise<void>((idle) => {
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          stdout += chunk;
          if (stdout.includes('"watch":"idle"')) idle();
        });
      });
      child.kill('SIGINT');
      expect(await closed, stderr).toBe(130);
      expect(stderr).toContain(env.LORABUILD_NO_BUNDLE ? 'entry dist/cli/main.js' : `code cache written (${cacheFile('watch')})`);
    }
  });

  it('scripts/bundle.mjs refuses a module that reads import.meta outside package-root.js, and leaves the old bundle', () => {
    const before = readFileSync(bundle());
    writeFileSync(join(pkg, 'dist', 'probe.js'), 'export const here = import.meta.url;\n');
    writeFileSync(join(pkg, 'dist', 'cli', 'main.js'), `import { here } from '../probe.js';\nconsole.log(here);\n${readFileSync(join(pkg, 'dist', 'cli', 'main.js'), 'utf8')}`);
    const r = spawnSync(process.execPath, [join(pkg, 'scripts', 'bundle.mjs')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('dist/probe.js');
    expect(r.stderr).toContain('src/package-root.ts');
    expect(readFileSync(bundle()).equals(before)).toBe(true);
    expect(readdirSync(join(pkg, 'dist')).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
