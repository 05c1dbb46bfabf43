// The remembered hello: fingerprinting must not start Python, but a changed interpreter, torch or
// worker must invalidate what was remembered. Deferred clients start the process on first request.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HelloMemo, type InterpreterSelection } from '../src/worker/hello-memo.js';
import { SharedWorker, WorkerClient, type HelloResult } from '../src/worker/client.js';
import { makeTempDir } from './helpers/cli.js';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-memo-');
});
afterAll(() => tmp.cleanup());

const selection: InterpreterSelection = { configured: null, envPython: '/usr/bin/python3', modelPaths: [], path: '/usr/bin' };
const hello: HelloResult = { worker_version: '0.1.0', protocol: 1, python: '3.11.2', torch: '1.13.0', numpy: '1.24', cuda: false, device: 'cpu', blas: 'x', threads: 1 };

describe('HelloMemo', () => {
  it('answers for the same selection until torch changes', () => {
    const torchDir = join(tmp.dir, 'site-packages', 'torch');
    mkdirSync(torchDir, { recursive: true });
    writeFileSync(join(torchDir, 'version.py'), "__version__ = '1.13.0'\n");
    const memo = new HelloMemo(join(tmp.dir, 'cache'));
    expect(memo.lookup(selection)).toBeNull();
    memo.remember(selection, '/usr/bin/python3', join(torchDir, '__init__.py'), hello);
    expect(memo.lookup(selection)).toEqual({ python: '/usr/bin/python3', hello });
    expect(memo.lookup({ ...selection, envPython: null })).toBeNull();
    writeFileSync(join(torchDir, 'version.py'), "__version__ = '2.11.0'  # upgraded\n");
    expect(memo.lookup(selection)).toBeNull();
  });

  it('does not remember what it cannot stamp', () => {
    const memo = new HelloMemo(join(tmp.dir, 'cache2'));
    memo.remember(selection, '/usr/bin/python3', join(tmp.dir, 'nowhere', '__init__.py'), hello);
    expect(memo.lookup(selection)).toBeNull();
  });
});

describe('deferred WorkerClient', () => {
  it('answers hello without a process and starts the worker on the first request', async () => {
    const client = WorkerClient.deferred({ python: '/usr/bin/python3', env: { OMP_NUM_THREADS: '1' } }, hello);
    expect(await client.hello()).toBe(hello);
    expect(client.pid).toBeUndefined();
    const real = (await client.request('hello', {})) as unknown as HelloResult;
    expect(client.pid).toBeGreaterThan(0);
    expect(real.protocol).toBe(1);
    await client.close();
    expect(client.alive).toBe(false);
  }, 120_000);

  it('refuses a remembered hello of another protocol', () => {
    expect(() => WorkerClient.deferred({ python: '/usr/bin/python3' }, { ...hello, protocol: 99 })).toThrow(/speaks protocol 99/);
  });
});

describe('SharedWorker', () => {
  it('starts once, hands out the same client, and replaces a worker that died', async () => {
    let starts = 0;
    const shared = new SharedWorker(() => {
      starts++;
      return WorkerClient.start({ python: '/usr/bin/python3', env: { OMP_NUM_THREADS: '1' } });
    });
    const [a, b] = await Promise.all([shared.get(), shared.get()]);
    expect(a).toBe(b);
    expect(starts).toBe(1);
    process.kill(a.pid!, 'SIGKILL');
    while (a.alive) await new Promise((r) => setTimeout(r, 20));
    const c = await shared.get();
    expect(c).not.toBe(a);
    expect(c.alive).toBe(true);
    expect(starts).toBe(2);
    await shared.close();
    expect(c.alive).toBe(false);
  }, 120_000);
});
