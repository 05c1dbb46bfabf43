// Finding a Python interpreter that can run the worker (one that imports torch). Order: the
// lorafile's `python:`, then LORABUILD_PYTHON, then candidates: a ComfyUI portable install's
// python_embeded next to the model file, Debian's /usr/bin/python3, python3/python on PATH.
// An interpreter the user named explicitly is never silently replaced by another one.
import { existsSync } from 'node:fs';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';

export type PythonSource = 'lorafile' | 'LORABUILD_PYTHON' | 'comfyui' | 'system' | 'PATH';

export interface PythonInfo {
  /** absolute path (or command name found on PATH) of the interpreter */
  path: string;
  source: PythonSource;
  /** python version string */
  python: string;
  torch: string;
  /** torch/__init__.py of that interpreter (its folder changes when torch is reinstalled) */
  torchFile: string;
}

export interface FindPythonOptions {
  /** `python:` from the lorafile, already resolved against the lorafile folder */
  configured?: string;
  /** model files the run uses: a ComfyUI install around them may hold python_embeded */
  modelPaths?: string[];
  env?: NodeJS.ProcessEnv;
  /** fixed interpreter locations tried before PATH (default: Debian's /usr/bin/python3) */
  systemPythons?: string[];
}

export class PythonNotFoundError extends Error {
  constructor(
    message: string,
    readonly tried: { path: string; source: PythonSource; problem: string }[],
  ) {
    super(message);
    this.name = 'PythonNotFoundError';
  }
}

export const INSTALL_HINT = [
  'lorabuild trains and renders through a Python worker that needs PyTorch. Any one of these works:',
  '  - Debian/Ubuntu: sudo apt-get install python3-torch libopenblas0-pthread',
  '  - pip: python3 -m pip install torch numpy pillow',
  '  - ComfyUI users: set `python:` in lorafile.yaml to ComfyUI\'s embedded interpreter,',
  '    e.g. python: D:\\ComfyUI_windows_portable\\python_embeded\\python.exe',
  '  - or set LORABUILD_PYTHON=/path/to/python',
].join('\n');

/** The folder that holds the lorabuild_worker package (src/worker, also when running from dist/). */
export function workerPackageDir(): string {
  return join(PACKAGE_ROOT, 'src', 'worker');
}

const PROBE = 'import sys, torch; print(sys.version.split()[0]); print(torch.__version__); print(torch.__file__)';

/** Runs the interpreter once to read its python and torch versions; the problem text on failure. */
export async function probePython(path: string, timeoutMs = 60_000): Promise<{ python: string; torch: string; torchFile: string } | { problem: string }> {
  // node:child_process loads only when an interpreter is probed (never on a no-op run)
  const { execFile } = await import('node:child_process');
  return new Promise((done) => {
    execFile(path, ['-c', PROBE], { timeout: timeoutMs, windowsHide: true }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return done({ problem: 'does not exist' });
        if (code === 'EACCES') return done({ problem: 'is not executable' });
        if (/No module named ['"]?torch/.test(stderr)) return done({ problem: 'runs, but cannot import torch' });
        const last = stderr.trim().split('\n').pop() ?? err.message;
        return done({ problem: `failed to run: ${last}` });
      }
      const [python, torch, torchFile] = stdout.trim().split('\n').map((l) => l.trim());
      done({ python, torch, torchFile });
    });
  });
}

/** python_embeded folders of ComfyUI portable installs that contain one of the model files. */
export function comfyEmbeddedPythons(modelPaths: string[]): string[] {
  const found = new Set<string>();
  for (const model of modelPaths) {
    let dir = dirname(resolve(model));
    for (;;) {
      for (const exe of ['python.exe', 'python', 'python3']) {
        const candidate = join(dir, 'python_embeded', exe);
        if (existsSync(candidate)) found.add(candidate);
      }
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return [...found];
}

function onPath(names: string[], env: NodeJS.ProcessEnv): string[] {
  const found: string[] = [];
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    for (const name of names) {
      const candidate = join(dir, name);
      if (existsSync(candidate) && !found.includes(candidate)) found.push(candidate);
    }
  }
  return found;
}

let probeNotice: ((message: string) => void) | undefined;

/**
 * Where a command shows what it is doing while it looks for Python: importing torch takes seconds,
 * and a broken interpreter on PATH can take up to the probe timeout, so a silent wait looks hung.
 */
export function onPythonProbe(notice: ((message: string) => void) | undefined): void {
  probeNotice = notice;
}

/** Says something about a slow step of starting Python (see onPythonProbe); silent when nobody listens. */
export function pythonNotice(message: string): void {
  probeNotice?.(message);
}

const found = new Map<string, Promise<PythonInfo>>();

/**
 * The interpreter the worker runs on (see the top of this file). Asked twice in one process with
 * the same options (the pre-flight check, then the worker start), it probes once.
 */
export function findPython(options: FindPythonOptions = {}): Promise<PythonInfo> {
  const env = options.env ?? process.env;
  const key = JSON.stringify([options.configured, options.modelPaths, options.systemPythons, env.LORABUILD_PYTHON, env.PATH]);
  let result = found.get(key);
  if (!result) {
    result = searchPython(options, env);
    found.set(key, result);
    result.catch(() => found.delete(key));
  }
  return result;
}

async function probeWithNotice(path: string): ReturnType<typeof probePython> {
  probeNotice?.(`lorabuild: checking ${path} for PyTorch (starts Python and imports torch)…`);
  const started = Date.now();
  const result = await probePython(path);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  probeNotice?.(`lorabuild:   ${'torch' in result ? `torch ${result.torch} (${seconds} s)` : `${result.problem} (${seconds} s)`}`);
  return result;
}

async function searchPython(options: FindPythonOptions, env: NodeJS.ProcessEnv): Promise<PythonInfo> {
  const tried: PythonNotFoundError['tried'] = [];
  const explicit: [string | undefined, PythonSource][] = [
    [options.configured, 'lorafile'],
    [env.LORABUILD_PYTHON || undefined, 'LORABUILD_PYTHON'],
  ];
  for (const [path, source] of explicit) {
    if (!path) continue;
    const result = await probeWithNotice(path);
    if ('torch' in result) return { path, source, ...result };
    const where = source === 'lorafile' ? '`python:` in the lorafile' : 'LORABUILD_PYTHON';
    throw new PythonNotFoundError(`${where} names ${path}, which ${result.problem}.\n${INSTALL_HINT}`, [{ path, source, problem: result.problem }]);
  }
  const candidates: [string, PythonSource][] = [
    ...comfyEmbeddedPythons(options.modelPaths ?? []).map((p): [string, PythonSource] => [p, 'comfyui']),
    ...(options.systemPythons ?? ['/usr/bin/python3']).map((p): [string, PythonSource] => [p, 'system']),
    ...onPath(process.platform === 'win32' ? ['python.exe', 'python3.exe'] : ['python3', 'python'], env).map((p): [string, PythonSource] => [p, 'PATH']),
  ];
  const seen = new Set<string>();
  for (const [path, source] of candidates) {
    if (seen.has(path) || (isAbsolute(path) && !existsSync(path))) continue;
    seen.add(path);
    const result = await probeWithNotice(path);
    if ('torch' in result) return { path, source, ...result };
    tried.push({ path, source, problem: result.problem });
  }
  const list = tried.length ? tried.map((t) => `  ${t.path} (${t.source}): ${t.problem}`).join('\n') : '  (no python interpreter found at all)';
  throw new PythonNotFoundError(`no Python with PyTorch found. Tried:\n${list}\n${INSTALL_HINT}`, tried);
}
