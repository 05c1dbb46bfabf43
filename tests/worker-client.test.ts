// The client against the real Python worker (Debian's python3 + torch): hello, a full tiny
// encode/train round trip with progress and checkpoint events, cancellation (resumable state,
// 'cancelled' error), a crash (SIGKILL mid-request) and a worker that cannot start.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { WorkerClient, WorkerCrashError, WorkerError, type HelloResult } from '../src/worker/client.js';
import type { WorkerEvent } from '../src/worker/protocol.js';
import { PROTOCOL_VERSION } from '../src/worker/protocol.js';
import { readSafetensorsHeader } from '../src/safetensors/io.js';
import { inspectSafetensors } from '../src/safetensors/inspect.js';
import { makeTempDir } from './helpers/cli.js';

const PYTHON = '/usr/bin/python3';
const ENV = { OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };

let tmp: { dir: string; cleanup: () => void };
let worker: WorkerClient;
let model: string;
let items: { latents: string; context: string }[];

const trainParams = { rank: 2, alpha: 2, learning_rate: 1e-3, batch_size: 1, seed: 0, resolution: 64, targets: 'attention', lr_scheduler: 'constant', warmup_steps: 0, gradient_accumulation: 1, clip_skip: 1, noise_offset: 0, caption_dropout: 0, flip: true, mixed_precision: 'no', gradient_checkpointing: 'off', compile: false, device: 'cpu' };

/** CLIP framing (BOS 49406, EOS 49407 padding) around the text's UTF-8 bytes as ids: distinct ids per text is all this needs. */
function byteIds(text: string): number[] {
  const ids = [49406, ...Buffer.from(text, 'utf8')];
  while (ids.length < 76) ids.push(49407);
  return [...ids.slice(0, 76), 49407];
}

beforeAll(() => {
  tmp = makeTempDir('lorabuild-worker-');
});
afterAll(() => tmp.cleanup());

async function setUpWorker(): Promise<void> {
  worker = await WorkerClient.start({ python: PYTHON, env: ENV });
  model = join(tmp.dir, 'tiny.safetensors');
  await worker.request('build_builtin', { arch: 'tiny', seed: 0, path: model });
  items = [];
  for (let i = 0; i < 2; i++) {
    const image = join(tmp.dir, `img${i}.png`);
    await sharp({ create: { width: 80, height: 64, channels: 3, background: { r: 200 * i, g: 40, b: 90 } } }).png().toFile(image);
    const latents = join(tmp.dir, `lat${i}.safetensors`);
    const context = join(tmp.dir, `ctx${i}.safetensors`);
    await worker.request('encode_latents', { model, arch: 'tiny', resolution: 64, items: [{ image, out: latents }] });
    await worker.request('encode_text', { model, arch: 'tiny', clip_skip: 1, items: [{ ids: byteIds(`a line drawing ${i}`), out: context }] });
    items.push({ latents, context });
  }
}

describe('WorkerClient with the real worker', () => {
  beforeAll(setUpWorker, 240_000);
  afterAll(async () => worker?.close());

  it('says hello with versions and device', async () => {
    const hello: HelloResult = await worker.hello();
    expect(hello.protocol).toBe(PROTOCOL_VERSION);
    expect(hello.worker_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(hello.torch).toMatch(/^\d+\.\d+/);
    expect(['cpu', 'cuda']).toContain(hello.device);
    expect(typeof hello.blas).toBe('string');
  });

  it('wrote the encoder outputs the protocol promises', async () => {
    const latents = await readSafetensorsHeader(items[0].latents);
    expect([...latents.tensors.keys()].sort()).toEqual(['latent', 'latent_flipped', 'logvar', 'logvar_flipped']);
    expect(latents.tensors.get('latent')!.shape.slice(-2)).toEqual([8, 8]);
    const context = await readSafetensorsHeader(items[0].context);
    expect(context.tensors.get('context')!.shape).toEqual([77, 64]);
  });

  it('trains with progress and checkpoint events routed to the request', async () => {
    const out = join(tmp.dir, 'train-a');
    const events: WorkerEvent[] = [];
    const result = (await worker.request(
      'train',
      { model, arch: 'tiny', items, params: trainParams, out_dir: out, checkpoint_every: 3, steps: 6, metadata: { ss_network_dim: '2', 'lorabuild.arch': 'tiny' } },
      { onEvent: (e) => events.push(e) },
    )) as { final: string; state: string; loss_curve: [number, number][] };
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ step: 6, total: 6 });
    const checkpoints = events.filter((e): e is Extract<WorkerEvent, { type: 'checkpoint' }> => e.type === 'checkpoint');
    expect(checkpoints.map((c) => c.step)).toContain(3);
    expect(existsSync(checkpoints[0].path)).toBe(true);
    expect(existsSync(result.final)).toBe(true);
    expect(existsSync(result.state)).toBe(true);
    expect(result.loss_curve.length).toBeGreaterThan(0);
    const lora = await readSafetensorsHeader(result.final);
    expect(lora.metadata.ss_network_dim).toBe('2');
    // the LoRA the worker wrote, read back by inspect: kohya names and shapes of the tiny UNet
    const info = await inspectSafetensors(result.final);
    expect(info.lora).toMatchObject({ format: 'kohya', modules: 128, ranks: [2], alphas: [2], targets: { attention: 128 } });
    expect(info.lora!.fit).toEqual({ arch: 'tiny', fits: true, unknown: [], mismatched: [] });
  }, 240_000);

  it('reports a bad request as a WorkerError with its code, and keeps serving', async () => {
    const err = await worker.request('encode_text', { model: join(tmp.dir, 'missing.safetensors'), arch: 'tiny', clip_skip: 1, items: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerError);
    expect(['bad_request', 'io', 'unsupported_model']).toContain((err as WorkerError).code);
    expect((await worker.hello()).protocol).toBe(PROTOCOL_VERSION);
  });

  it('cancels a training request: cancelled error, resumable state left behind', async () => {
    const out = join(tmp.dir, 'train-cancel');
    const controller = new AbortController();
    const pending = worker.request(
      'train',
      { model, arch: 'tiny', items, params: trainParams, out_dir: out, checkpoint_every: 1000, steps: 100000, metadata: {} },
      { signal: controller.signal, onEvent: (e) => e.type === 'progress' && e.step >= 2 && controller.abort() },
    );
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerError);
    expect((err as WorkerError).code).toBe('cancelled');
    expect(existsSync(join(out, 'state.safetensors'))).toBe(true);
    expect(worker.alive).toBe(true);
  }, 240_000);

  it('a worker killed mid-request rejects it with a crash error naming the signal', async () => {
    const doomed = await WorkerClient.start({ python: PYTHON, env: ENV });
    const out = join(tmp.dir, 'train-crash');
    const pending = doomed.request(
      'train',
      { model, arch: 'tiny', items, params: trainParams, out_dir: out, checkpoint_every: 1000, steps: 100000, metadata: {} },
      { onEvent: (e) => e.type === 'progress' && process.kill(doomed.pid!, 'SIGKILL') },
    );
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkerCrashError);
    expect((err as Error).message).toContain("was killed by SIGKILL during 'train'");
    expect(doomed.alive).toBe(false);
    await expect(doomed.request('hello', {})).rejects.toBeInstanceOf(WorkerCrashError);
    expect(existsSync(join(out, 'lora.safetensors'))).toBe(false);
  }, 240_000);
});

describe('worker failures', () => {
  it('a worker that cannot start fails with what happened', async () => {
    const missing = await WorkerClient.start({ python: join(tmp.dir, 'no-such-python') }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(WorkerCrashError);
    expect((missing as Error).message).toContain('could not start');
    const exits = await WorkerClient.start({ python: '/bin/false' }).catch((e: unknown) => e);
    expect(exits).toBeInstanceOf(WorkerCrashError);
    expect((exits as Error).message).toContain("exited with code 1 during 'hello'");
  });
});
