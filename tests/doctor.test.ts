// lorabuild doctor against the real interpreter, and the BLAS classification it relies on.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { blasFromBuildInfo, blasFromMaps } from '../src/worker/blas.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tinyPng } from '../bench/lab-dataset.js';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-doctor-');
});
afterAll(() => tmp.cleanup());

describe('lorabuild doctor', () => {
  it('reports python, torch, CUDA, BLAS and the worker, and exits 0 when usable', async () => {
    const r = await runCli(['doctor'], { cwd: tmp.dir, env: { LORABUILD_PYTHON: '/usr/bin/python3' } });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^python {3}\/usr\/bin\/python3 \(Python 3\.\d+\.\d+; found through the LORABUILD_PYTHON variable\)$/m);
    expect(r.stdout).toMatch(/^torch {4}\d+\.\d+/m);
    expect(r.stdout).toMatch(/^CUDA {5}(available|not available)/m);
    expect(r.stdout).toMatch(/^BLAS {5}\S/m);
    expect(r.stdout).toMatch(/^worker {3}lorabuild_worker \d+\.\d+\.\d+ \(protocol 1\)$/m);
    expect(r.stdout).toContain('ok: this machine can train and render');
  }, 120_000);

  it('with a lorafile, checks every input it names and lists the missing ones at once (exit 1)', async () => {
    writeFiles(join(tmp.dir, 'proj'), {
      'lorafile.yaml': `version: 1
models:
  ds8: { checkpoint: models/DreamShaper8_pruned.safetensors }
datasets:
  art: { folder: one-line-art }
loras:
  art_lora: { model: ds8, dataset: art, steps: 100, publish: comfy/models/loras/art.safetensors }
`,
      'models/DreamShaper_8_pruned.safetensors': 'x',
    });
    const r = await runCli(['doctor'], { cwd: join(tmp.dir, 'proj'), env: { LORABUILD_PYTHON: '/usr/bin/python3' } });
    expect(r.code).toBe(1);
    // what it is doing, while it does it
    expect(r.stdout.split('\n')[0]).toBe('lorabuild doctor: looking for Python with PyTorch for lorafile.yaml…');
    expect(r.stderr).toContain('lorabuild: checking /usr/bin/python3 for PyTorch (starts Python and imports torch)…');
    expect(r.stderr).toContain('lorabuild: starting the worker on /usr/bin/python3 (imports torch)…');
    expect(r.stdout).toMatch(/^torch {4}\d+\.\d+/m);
    expect(r.stderr).toContain('inputs   3 missing:');
    expect(r.stderr).toContain("lorafile.yaml:3:22: error: model 'ds8': checkpoint models/DreamShaper8_pruned.safetensors does not exist");
    expect(r.stderr).toContain("hint: did you mean 'models/DreamShaper_8_pruned.safetensors'?");
    expect(r.stderr).toContain("lorafile.yaml:5:18: error: dataset 'art': folder one-line-art does not exist");
    expect(r.stderr).toContain("lorafile.yaml:7:62: error: lora 'art_lora': publish: the folder comfy/models/loras does not exist");
    expect(r.stderr).toMatch(/not ready: fix the inputs above, then run lorabuild doctor again\n$/);
    expect(existsSync(join(tmp.dir, 'proj', 'comfy'))).toBe(false);
  }, 120_000);

  it('status says when it has to look for Python again, and is silent once it remembers', async () => {
    writeFiles(join(tmp.dir, 'st'), {
      'lorafile.yaml': 'version: 1\nmodels:\n  tiny: { builtin: tiny }\ndatasets:\n  d: { folder: d, rules: { too_small: off } }\nloras:\n  l: { model: tiny, dataset: d, steps: 2 }\n',
      'd/image/0.png': tinyPng(0),
      'd/text/0.txt': 'a',
    });
    // the dataset is built (no Python needed), so status fingerprints train:l, which needs the worker's versions
    expect((await runCli(['run', 'd'], { cwd: join(tmp.dir, 'st') })).code).toBe(0);
    const first = await runCli(['status'], { cwd: join(tmp.dir, 'st'), env: { LORABUILD_PYTHON: undefined, PATH: '/usr/bin:/bin' } });
    expect(first.stderr).toContain('lorabuild: checking /usr/bin/python3 for PyTorch (starts Python and imports torch)…');
    expect(first.stderr).toContain('lorabuild: starting the worker on /usr/bin/python3');
    const again = await runCli(['status'], { cwd: join(tmp.dir, 'st'), env: { LORABUILD_PYTHON: undefined, PATH: '/usr/bin:/bin' } });
    expect(again.stderr).toBe('');
    const moved = await runCli(['status'], { cwd: join(tmp.dir, 'st'), env: { LORABUILD_PYTHON: undefined, PATH: '/bin:/usr/bin' } });
    expect(moved.stderr).toContain('lorabuild: checking /usr/bin/python3 for PyTorch');
  }, 120_000);

  it('--json gives the same facts as an object', async () => {
    const r = await runCli(['doctor', '--json'], { cwd: tmp.dir, env: { LORABUILD_PYTHON: '/usr/bin/python3' } });
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { usable: boolean; python: { source: string }; hello: { protocol: number }; blas: { name: string } };
    expect(report).toMatchObject({ usable: true, python: { source: 'LORABUILD_PYTHON' }, hello: { protocol: 1 } });
    expect(typeof report.blas.name).toBe('string');
  }, 120_000);
});

describe('BLAS classification', () => {
  const line = (path: string) => `7f3a1c000000-7f3a1c200000 r-xp 00000000 08:01 1234 ${path}`;
  const identity = (p: string) => p;

  it('recognises OpenBLAS behind a generic libblas.so.3 alternative', () => {
    const maps = [line('/usr/lib/x86_64-linux-gnu/libtorch_cpu.so.1.13'), line('/usr/lib/x86_64-linux-gnu/libblas.so.3')].join('\n');
    const resolve = (p: string) => (p.endsWith('libblas.so.3') ? '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3' : p);
    expect(blasFromMaps(maps, resolve)).toEqual({ name: 'OpenBLAS', fast: true, evidence: '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3' });
  });

  it('flags the reference BLAS as slow', () => {
    const maps = line('/usr/lib/x86_64-linux-gnu/libblas.so.3');
    const resolve = () => '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0';
    expect(blasFromMaps(maps, resolve)).toEqual({ name: 'reference BLAS', fast: false, evidence: '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0' });
  });

  it('finds MKL in pip wheels and says nothing when no BLAS is mapped', () => {
    expect(blasFromMaps(line('/venv/lib/python3.11/site-packages/torch/lib/libmkl_core.so.2'), identity)?.name).toBe('MKL');
    expect(blasFromMaps(line('/usr/lib/libc.so.6'), identity)).toBeNull();
  });

  it('does not mistake MKL-DNN in the build string for MKL', () => {
    expect(blasFromBuildInfo('BLAS_INFO=generic, LAPACK_INFO=generic, MKL').fast).toBeNull();
    expect(blasFromBuildInfo('BLAS_INFO=mkl, LAPACK_INFO=mkl').name).toBe('MKL');
    expect(blasFromBuildInfo('BLAS_INFO=open, LAPACK_INFO=open').name).toBe('OpenBLAS');
  });
});
