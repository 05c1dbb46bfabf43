// Interpreter discovery: real interpreters, no mocks. A "python without torch" is Debian's python3
// started with -S (no site-packages), which is exactly what a bare python looks like to lorabuild.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findPython, comfyEmbeddedPythons, PythonNotFoundError } from '../src/worker/python.js';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';

const DEBIAN_PYTHON = '/usr/bin/python3';
let tmp: { dir: string; cleanup: () => void };
let noTorch: string;

beforeAll(() => {
  tmp = makeTempDir('lorabuild-python-');
  const bin = join(tmp.dir, 'bare-bin');
  mkdirSync(bin);
  noTorch = join(bin, 'python3');
  writeFileSync(noTorch, `#!/bin/sh\nexec ${DEBIAN_PYTHON} -S "$@"\n`);
  chmodSync(noTorch, 0o755);
});
afterAll(() => tmp.cleanup());

describe('findPython', () => {
  it('takes LORABUILD_PYTHON when it imports torch', async () => {
    const info = await findPython({ env: { PATH: '', LORABUILD_PYTHON: DEBIAN_PYTHON }, systemPythons: [] });
    expect(info).toMatchObject({ path: DEBIAN_PYTHON, source: 'LORABUILD_PYTHON' });
    expect(info.torch).toMatch(/^\d+\.\d+/);
  });

  it('never replaces an explicitly named interpreter that lacks torch', async () => {
    const err = await findPython({ env: { PATH: '', LORABUILD_PYTHON: noTorch } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PythonNotFoundError);
    expect((err as Error).message).toContain(`LORABUILD_PYTHON names ${noTorch}, which runs, but cannot import torch`);
    expect((err as Error).message).toContain('apt-get install python3-torch libopenblas0-pthread');
    expect((err as Error).message).toContain('python_embeded');
  });

  it('lorafile python: wins over LORABUILD_PYTHON and reports a missing file', async () => {
    const missing = join(tmp.dir, 'nope', 'python.exe');
    const err = await findPython({ configured: missing, env: { LORABUILD_PYTHON: DEBIAN_PYTHON } }).catch((e: unknown) => e);
    expect((err as Error).message).toContain(`\`python:\` in the lorafile names ${missing}, which does not exist`);
  });

  it('lists every candidate it tried when none has torch', async () => {
    const err = await findPython({ env: { PATH: join(tmp.dir, 'bare-bin') }, systemPythons: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PythonNotFoundError);
    expect((err as Error).message).toMatch(/^no Python with PyTorch found\. Tried:/);
    expect((err as Error).message).toContain(`${noTorch} (PATH): runs, but cannot import torch`);
    expect((err as PythonNotFoundError).tried).toHaveLength(1);
  });

  it("finds a ComfyUI portable install's python_embeded from the model path", async () => {
    const portable = join(tmp.dir, 'ComfyUI_windows_portable');
    writeFiles(portable, { 'ComfyUI/models/checkpoints/DreamShaper_8_pruned.safetensors': 'x' });
    mkdirSync(join(portable, 'python_embeded'));
    symlinkSync(DEBIAN_PYTHON, join(portable, 'python_embeded', 'python'));
    const model = join(portable, 'ComfyUI/models/checkpoints/DreamShaper_8_pruned.safetensors');
    expect(comfyEmbeddedPythons([model])).toEqual([join(portable, 'python_embeded', 'python')]);
    const info = await findPython({ modelPaths: [model], env: { PATH: '' } });
    expect(info).toMatchObject({ path: join(portable, 'python_embeded', 'python'), source: 'comfyui' });
  });
});

describe('lorabuild doctor without a usable python', () => {
  it('exits 1 and says how to install torch', async () => {
    const r = await runCli(['doctor'], { cwd: tmp.dir, env: { LORABUILD_PYTHON: noTorch } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('which runs, but cannot import torch');
    expect(r.stderr).toContain('sudo apt-get install python3-torch libopenblas0-pthread');
    expect(r.stderr).toContain('not usable');
  });

  it('reads python: from the lorafile', async () => {
    const project = join(tmp.dir, 'proj');
    writeFiles(project, { 'lorafile.yaml': `version: 1\npython: ./bare-python\n` });
    const r = await runCli(['doctor'], { cwd: project, env: { LORABUILD_PYTHON: DEBIAN_PYTHON } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`\`python:\` in the lorafile names ${join(project, 'bare-python')}, which does not exist`);
  });
});
