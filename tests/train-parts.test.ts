// The train stage's parts that need no worker: which items train, kohya metadata, the sshs hash
// stamp, publish's overwrite rules, and the resume index's choices.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { trainingItems } from '../src/stages/train.js';
import { loraMetadata, stampLoraFile, tagFrequency } from '../src/safetensors/lora-metadata.js';
import { publishLora, PublishError } from '../src/safetensors/publish.js';
import { ResumeIndex } from '../src/worker/train-resume.js';
import { readSafetensorsHeader, writeSafetensors, float32Tensor } from '../src/safetensors/io.js';
import { LoraSchema } from '../src/config/schema.js';
import type { Manifest } from '../src/datasets/manifest.js';
import { makeTempDir } from './helpers/cli.js';

let tmp: { dir: string; cleanup: () => void };
beforeAll(() => {
  tmp = makeTempDir('lorabuild-trainparts-');
});
afterAll(() => tmp.cleanup());

const sha = (c: string) => c.repeat(64);

describe('trainingItems', () => {
  it('keeps items with an image and a caption, prefers the prepared image, and uses clean captions', () => {
    const image = (s: string, origin: string) => ({ sha256: sha(s), width: 64, height: 64, format: 'png', origin });
    const caption = (text: string, origin: string, line = 1) => ({ text: `\uFEFF${text} \r\n`, clean: text, sha256: sha('c'), origin, line });
    const manifest: Manifest = {
      dataset: 'd', source: 'folder', layout: 'lab', stray: [], skipped: [],
      items: [
        { id: '0', image: image('a', 'd/image/0.png'), caption: caption('lineart, a face', 'd/text/0.txt'), prepared: { sha256: sha('p'), width: 64, height: 64 } },
        { id: '1', image: image('b', 'd/image/1.png'), caption: null },
        { id: '2', image: null, caption: caption('orphan', 'd/text/2.txt') },
        { id: '3', image: image('e', 'd/image/3.png'), caption: caption('broken', 'd/text/3.txt'), error: { code: 'undecodable', message: 'bad' } },
        { id: '4', image: image('f', 'd/image/4.png'), caption: caption('from jsonl', 'd/metadata.jsonl', 5) },
      ],
    };
    expect(trainingItems(manifest)).toEqual([
      { id: '0', image: sha('p'), caption: 'lineart, a face', imageOrigin: 'd/image/0.png', captionOrigin: 'd/text/0.txt' },
      { id: '4', image: sha('f'), caption: 'from jsonl', imageOrigin: 'd/image/4.png', captionOrigin: 'd/metadata.jsonl:5' },
    ]);
  });
});

describe('LoRA metadata', () => {
  it('counts comma-separated tags like kohya', () => {
    expect(tagFrequency(['one-line-art, a face, side view', 'one-line-art,a face', ' , '])).toEqual({ 'one-line-art': 2, 'a face': 2, 'side view': 1 });
  });

  it("carries the lab's training settings in ss_* and modelspec keys", () => {
    const spec = LoraSchema.parse({ model: 'm', dataset: 'd' });
    const meta = loraMetadata({ loraName: 'pokemon_lora', datasetName: 'pokemon', spec, modelSha256: sha('9'), modelName: 'dreamshaper8', arch: 'sd15', captions: ['a, b', 'b'], datasetHash: sha('1') });
    expect(meta).toMatchObject({
      ss_network_dim: '4', ss_network_alpha: '4', ss_learning_rate: '0.0001', ss_seed: '0', ss_resolution: '(512, 512)',
      ss_lr_scheduler: 'constant', ss_num_train_images: '2', ss_new_sd_model_hash: sha('9'), ss_dataset_hash: sha('1'),
      ss_base_model_version: 'sd_v1', 'modelspec.architecture': 'stable-diffusion-v1/lora', 'lorabuild.lora': 'pokemon_lora',
    });
    expect(JSON.parse(meta.ss_tag_frequency)).toEqual({ pokemon: { a: 1, b: 2 } });
    expect(Object.values(meta).every((v) => typeof v === 'string')).toBe(true);
  });

  it('stamps sshs_model_hash = sha256 of the tensor bytes, unchanged by metadata', async () => {
    const file = join(tmp.dir, 'stamp.safetensors');
    await writeSafetensors(file, { b: float32Tensor([2], [1, 2]), a: float32Tensor([1], [3]) }, { ss_seed: '0' });
    const hash = await stampLoraFile(file, { ss_steps: '20' });
    const header = await readSafetensorsHeader(file);
    const bytes = readFileSync(file);
    expect(hash).toBe(createHash('sha256').update(bytes.subarray(header.dataStart)).digest('hex'));
    expect(header.metadata).toEqual({ ss_seed: '0', ss_steps: '20', sshs_model_hash: hash });
    expect(await stampLoraFile(file, { other: 'x' })).toBe(hash);
  });
});

describe('publishLora', () => {
  const make = async (name: string, lora: string | null, value: number) => {
    const file = join(tmp.dir, name);
    await writeSafetensors(file, { w: float32Tensor([1], [value]) }, lora ? { 'lorabuild.lora': lora } : {});
    return file;
  };
  const noLog = () => undefined;

  it('copies to a new place and replaces an earlier version of the same lora', async () => {
    const v1 = await make('v1.safetensors', 'mine', 1);
    const v2 = await make('v2.safetensors', 'mine', 2);
    const target = join(tmp.dir, 'ComfyUI', 'models', 'loras', 'mine.safetensors');
    // no ComfyUI there: nothing is created
    const refused = await publishLora({ loraName: 'mine', source: v1, target, shown: '~/ComfyUI/models/loras/mine.safetensors', log: noLog }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PublishError);
    expect((refused as Error).message).toBe(
      'publish: the folder ~/ComfyUI/models/loras does not exist; nothing was written.\n' +
        '  hint: lorabuild creates no folders there, except loras/ inside an existing ComfyUI models/ folder: check the ComfyUI path in `publish:`, or create ~/ComfyUI/models/loras first',
    );
    expect(existsSync(join(tmp.dir, 'ComfyUI'))).toBe(false);
    // a ComfyUI models/ folder without loras/: that one folder is made
    mkdirSync(join(tmp.dir, 'ComfyUI', 'models'), { recursive: true });
    const first: string[] = [];
    await publishLora({ loraName: 'mine', source: v1, target, shown: '~/ComfyUI/models/loras/mine.safetensors', log: (l) => first.push(l) });
    expect(readFileSync(target).equals(readFileSync(v1))).toBe(true);
    expect(first).toEqual(['publish: created ~/ComfyUI/models/loras/', 'publish: wrote ~/ComfyUI/models/loras/mine.safetensors']);
    const lines: string[] = [];
    await publishLora({ loraName: 'mine', source: v2, target, log: (l) => lines.push(l) });
    expect(readFileSync(target).equals(readFileSync(v2))).toBe(true);
    expect(lines[0]).toContain('replacing the earlier version of mine');
  });

  it('refuses a name that is not .safetensors and a folder that is a file', async () => {
    const v1 = await make('v3.safetensors', 'mine', 1);
    const notLora = await publishLora({ loraName: 'mine', source: v1, target: join(tmp.dir, 'mine.ckpt'), log: noLog }).catch((e: unknown) => e);
    expect((notLora as Error).message).toContain('does not end in .safetensors');
    writeFileSync(join(tmp.dir, 'plainfile'), 'x');
    const inFile = await publishLora({ loraName: 'mine', source: v1, target: join(tmp.dir, 'plainfile', 'mine.safetensors'), log: noLog }).catch((e: unknown) => e);
    expect((inFile as Error).message).toContain('is a file, not a folder');
  });

  it("never overwrites someone else's file", async () => {
    const ours = await make('ours.safetensors', 'mine', 3);
    const target = join(tmp.dir, 'theirs.safetensors');
    writeFileSync(target, 'a file the user cares about');
    const err = await publishLora({ loraName: 'mine', source: ours, target, log: noLog }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PublishError);
    expect((err as Error).message).toContain(`${target} already exists and is not an earlier version of lora 'mine'`);
    expect(readFileSync(target, 'utf8')).toBe('a file the user cares about');
    const other = await make('other.safetensors', 'another', 4);
    const err2 = await publishLora({ loraName: 'mine', source: ours, target: other, log: noLog }).catch((e: unknown) => e);
    expect((err2 as Error).message).toContain("(it was trained for 'another')");
  });
});

describe('ResumeIndex', () => {
  it('finds exact complete runs and the longest shorter start, skipping records whose blobs are gone', () => {
    const index = new ResumeIndex(tmp.dir, 'ab'.repeat(32));
    const present = new Set(['s40', 'f40', 'c20', 's25']);
    const has = (s: string) => present.has(s);
    index.add({ steps: 40, complete: true, state: 's40', final: 'f40', checkpoints: { 20: 'c20' }, lossCurve: [[40, 0.1]] });
    index.add({ steps: 25, complete: false, state: 's25', checkpoints: { 20: 'c20' }, lossCurve: [] });
    index.add({ steps: 50, complete: false, state: 'gone', checkpoints: {}, lossCurve: [] });
    expect(index.exact(40, has)?.final).toBe('f40');
    expect(index.exact(60, has)).toBeUndefined();
    expect(index.bestStart(60, has)?.steps).toBe(40);
    expect(index.bestStart(40, has)?.steps).toBe(25);
    expect(index.bestStart(20, has)).toBeUndefined();
    // a complete record replaces an interrupted one at the same step, not the other way round
    index.add({ steps: 25, complete: true, state: 's25', final: 'f40', checkpoints: {}, lossCurve: [] });
    index.add({ steps: 25, complete: false, state: 's25', checkpoints: {}, lossCurve: [] });
    expect(index.records().filter((r) => r.steps === 25).map((r) => r.complete).sort()).toEqual([false, true]);
  });
});
