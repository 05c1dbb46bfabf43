// Per-item caches of the frozen encoders: VAE latents per (model, image, resolution) and text
// contexts per (model, token ids, clip_skip), kept in the CAS through ctx.item. Editing one caption
// re-encodes that caption only; a new seed or learning rate re-encodes nothing.
import { join } from 'node:path';
import type { StageContext } from '../engine/types.js';
import type { ComputeWorker } from './client.js';
import { workerScratch, type ResolvedModel } from '../stages/model.js';

export interface EncodeScope {
  ctx: StageContext;
  worker: ComputeWorker;
  model: ResolvedModel;
  workerVersion: string;
}

async function encodeOne(scope: EncodeScope, op: 'encode_latents' | 'encode_text', args: Record<string, unknown>, item: Record<string, unknown>): Promise<{ sha256: string }> {
  const { ctx, worker, model } = scope;
  const scratch = await workerScratch(ctx, op);
  try {
    const out = join(scratch.dir, 'out.safetensors');
    await worker.request(
      op,
      { model: model.path, arch: model.arch, ...(model.allowPickle ? { allow_pickle: true } : {}), ...args, items: [{ ...item, out }] } as never,
      { signal: ctx.signal, log: (line) => ctx.log(line) },
    );
    const blob = await ctx.putBlob({ file: out });
    return { sha256: blob.sha256 };
  } finally {
    await scratch.cleanup();
  }
}

/** Latents ("latent", "latent_flipped") of one image; returns the CAS hash of the tensor file. */
export async function cachedLatents(scope: EncodeScope, label: string, image: { sha256: string; path: string }, resolution: number): Promise<string> {
  const key = { op: 'latents', model: scope.model.sha256, image: image.sha256, resolution, worker: scope.workerVersion };
  // quiet: an encoding is a step of the stage, not one of its items (the progress line counts them)
  const value = await scope.ctx.item(`latents ${label}`, key, () => encodeOne(scope, 'encode_latents', { resolution }, { image: image.path }), { quiet: true });
  return value.sha256;
}

/** Text-encoder context of one caption's padded ids; returns the CAS hash of the tensor file. */
export async function cachedContext(scope: EncodeScope, label: string, ids: number[], clipSkip: number): Promise<string> {
  const key = { op: 'context', model: scope.model.sha256, ids, clip_skip: clipSkip, worker: scope.workerVersion };
  const value = await scope.ctx.item(`caption ${label}`, key, () => encodeOne(scope, 'encode_text', { clip_skip: clipSkip }, { ids }), { quiet: true });
  return value.sha256;
}
