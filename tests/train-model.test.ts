// resolveModel on user checkpoints: real files with real headers; refusals name the file and the fix.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveModel, modelIdentity, ModelError } from '../src/stages/model.js';
import { writeSafetensors, type TensorData } from '../src/safetensors/io.js';
import { ModelSchema, type Config } from '../src/config/schema.js';
import type { StageContext } from '../src/engine/types.js';
import { makeTempDir } from './helpers/cli.js';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-model-');
});
afterAll(() => tmp.cleanup());

const zeros = (shape: number[]): TensorData => ({ dtype: 'F16', shape, data: Buffer.alloc(shape.reduce((a, b) => a * b, 1) * 2) });
const TO_K = 'model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight';

/** Just what resolveModel reads from a stage context: the lorafile's models, its folder, hashing. */
function contextFor(models: Record<string, Record<string, unknown>>): StageContext {
  const config = { models: Object.fromEntries(Object.entries(models).map(([k, v]) => [k, ModelSchema.parse(v)])), root: tmp.dir } as unknown as Config;
  const hashFile = async (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
  return { config, root: tmp.dir, hashFile, options: {}, signal: new AbortController().signal } as unknown as StageContext;
}

describe('resolveModel for checkpoints', () => {
  it('accepts an SD1 checkpoint relative to the lorafile and hashes it', async () => {
    await writeSafetensors(join(tmp.dir, 'sd1.safetensors'), { [TO_K]: zeros([320, 768]) });
    const ctx = contextFor({ m: { checkpoint: 'sd1.safetensors' } });
    const model = await resolveModel(ctx, 'm');
    expect(model).toEqual({ path: join(tmp.dir, 'sd1.safetensors'), arch: 'sd15', sha256: createHash('sha256').update(readFileSync(join(tmp.dir, 'sd1.safetensors'))).digest('hex') });
    expect(await modelIdentity(ctx, 'm', '0.1.0')).toBe(`sha256:${model.sha256}`);
  });

  it('refuses SDXL and SD2 checkpoints, saying what they are', async () => {
    await writeSafetensors(join(tmp.dir, 'xl.safetensors'), { [TO_K]: zeros([320, 2048]), 'conditioner.embedders.0.x.weight': zeros([2]) });
    await writeSafetensors(join(tmp.dir, 'sd2.safetensors'), { [TO_K]: zeros([320, 1024]) });
    await expect(resolveModel(contextFor({ m: { checkpoint: 'xl.safetensors' } }), 'm')).rejects.toThrow("model 'm': xl.safetensors is an SDXL checkpoint; lorabuild trains SD1.x");
    await expect(resolveModel(contextFor({ m: { checkpoint: 'sd2.safetensors' } }), 'm')).rejects.toThrow('is an SD2.x checkpoint');
  });

  it('refuses a LoRA given as a base model', async () => {
    await writeSafetensors(join(tmp.dir, 'lora.safetensors'), { 'lora_unet_x.lora_down.weight': zeros([2, 2]), 'lora_unet_x.lora_up.weight': zeros([2, 2]) });
    await expect(resolveModel(contextFor({ m: { checkpoint: 'lora.safetensors' } }), 'm')).rejects.toThrow('is a LoRA, not a base model');
  });

  it('refuses pickles unless allow_pickle, and never reads them to decide', async () => {
    writeFileSync(join(tmp.dir, 'old.ckpt'), Buffer.from([0x80, 0x02, 0x7d]));
    const err = await resolveModel(contextFor({ m: { checkpoint: 'old.ckpt' } }), 'm').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toContain('old.ckpt is a pickled checkpoint (.ckpt); loading it can run arbitrary code');
    expect((err as Error).message).toContain('allow_pickle: true');
    expect((await resolveModel(contextFor({ m: { checkpoint: 'old.ckpt', allow_pickle: true } }), 'm')).arch).toBe('sd15');
  });

  it('names a missing checkpoint and a damaged file', async () => {
    await expect(resolveModel(contextFor({ m: { checkpoint: 'gone.safetensors' } }), 'm')).rejects.toThrow(`checkpoint gone.safetensors does not exist (looked at ${join(tmp.dir, 'gone.safetensors')})`);
    writeFileSync(join(tmp.dir, 'cut.safetensors'), Buffer.from([1, 2, 3]));
    await expect(resolveModel(contextFor({ m: { checkpoint: 'cut.safetensors' } }), 'm')).rejects.toThrow(/cut\.safetensors: too short to be a safetensors file/);
  });
});
