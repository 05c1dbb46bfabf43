// Runs the built CLI (bin/lorabuild.js -> dist/) as a real child process in a temp folder.
// Build first: `npx tsc -p tsconfig.json` (npm test does it). Every suite that drives the CLI uses
// this, so keep it small and dependency-free.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO_ROOT, 'bin', 'lorabuild.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout lines that parse as JSON objects (the --json event stream) */
  events: Record<string, unknown>[];
}

export interface CliOptions {
  /** working directory (default: the temp folder the test made) */
  cwd: string;
  /** extra environment; LORABUILD_CACHE defaults to <cwd>/cache */
  env?: Record<string, string | undefined>;
  /** kill the process after this long (default 120 s) */
  timeoutMs?: number;
  stdin?: string;
  /** start it as the leader of its own process group (pgid = pid), as a terminal's foreground job is */
  detached?: boolean;
}

/** A fresh temp folder; removed by the returned cleanup function. */
export function makeTempDir(prefix = 'lorabuild-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Temp folders made one by one in a test file, all removed by `cleanup` (afterAll). */
export function tempDirs(): { make: (prefix?: string) => string; cleanup: () => void } {
  const made: string[] = [];
  return {
    make: (prefix = 'lorabuild-test-') => {
      const dir = mkdtempSync(join(tmpdir(), prefix));
      made.push(dir);
      return dir;
    },
    cleanup: () => {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Writes files given as { 'relative/path': content } under root, creating folders. */
export function writeFiles(root: string, files: Record<string, string | Buffer>): void {
  for (const [rel, content] of Object.entries(files)) {
    const abs = join(root, rel);
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, content);
  }
}

/** Parses the JSON-object lines of a --json output, ignoring anything else. */
export function jsonLines(text: string): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('{')) continue;
    try {
      const value: unknown = JSON.parse(trimmed);
      if (value && typeof value === 'object' && !Array.isArray(value)) events.push(value as Record<string, unknown>);
    } catch {
      // not an event line
    }
  }
  return events;
}

function assertBuilt(): void {
  if (!existsSync(join(REPO_ROOT, 'dist', 'cli', 'main.js'))) {
    throw new Error('dist/cli/main.js is missing: build with `npx tsc -p tsconfig.json` before running CLI tests');
  }
}

function cliEnv(options: CliOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LORABUILD_CACHE: join(options.cwd, 'cache'), NO_COLOR: '1', FORCE_COLOR: '0' };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

/** Starts the CLI without waiting (for kill / concurrency tests). */
export function startCli(args: string[], options: CliOptions): ChildProcess & { result: Promise<CliResult> } {
  assertBuilt();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd, env: cliEnv(options), stdio: ['pipe', 'pipe', 'pipe'], detached: options.detached ?? false });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin!.end(options.stdin ?? '');
  const killAll = () => {
    if (!options.detached || child.pid === undefined) return child.kill('SIGKILL');
    try {
      process.kill(-child.pid, 'SIGKILL'); // the worker too
    } catch {
      // the group is gone already
    }
  };
  const timer = setTimeout(killAll, options.timeoutMs ?? 120_000);
  const result = new Promise<CliResult>((resolvePromise, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr, events: jsonLines(stdout) });
    });
  });
  return Object.assign(child, { result });
}

/** Runs the CLI to completion. */
export function runCli(args: string[], options: CliOptions): Promise<CliResult> {
  return startCli(args, options).result;
}

/** Resolves once the child's stdout contains a line for which `match` is true (rejects if it exits first). */
export function waitForLine(child: ChildProcess, match: (line: string) => boolean, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let buffer = '';
    const timer = setTimeout(() => finish(new Error(`no matching output line within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer | string) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      const hit = lines.find(match);
      if (hit !== undefined) finish(undefined, hit);
    };
    const onClose = () => finish(new Error('the process exited before printing a matching line'));
    function finish(err?: Error, line?: string) {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('close', onClose);
      if (err) reject(err);
      else resolvePromise(line!);
    }
    child.stdout!.on('data', onData);
    child.on('close', onClose);
  });
}
