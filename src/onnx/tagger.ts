// WD14-layout image taggers (model.onnx + selected_tags.csv), run in-process with onnxruntime-node.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { checkSignature, OnnxModelError } from './signature.js';
import { wd14Pixels } from './preprocess.js';

export type TagCategory = 'general' | 'character' | 'rating';
export interface Tag {
  name: string;
  category: TagCategory;
  score: number;
}
export interface Thresholds {
  general: number;
  character: number;
}
export const DEFAULT_THRESHOLDS: Thresholds = { general: 0.35, character: 0.85 };

const CATEGORY: Record<string, TagCategory> = { '0': 'general', '4': 'character', '9': 'rating' };
// tags that are drawings of faces: their underscores are part of the tag
const KAOMOJI = new Set(['0_0', '(o)_(o)', '+_+', '+_-', '._.', '<o>_<o>', '<|>_<|>', '=_=', '>_<', '3_3', '6_9', '>_o', '@_@', '^_^', 'o_o', 'u_u', 'x_x', '|_|', '||_||']);

export function parseSelectedTags(text: string, file: string): { name: string; category: TagCategory }[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const header = (lines.shift() ?? '').split(',').map((h) => h.trim());
  const nameCol = header.indexOf('name');
  const catCol = header.indexOf('category');
  if (nameCol < 0 || catCol < 0) throw new OnnxModelError(`${file}: expected a header with "name" and "category" columns, found "${header.join(',')}"`);
  return lines.map((line, i) => {
    const cells = line.split(',');
    const category = CATEGORY[cells[catCol]?.trim() ?? ''];
    if (!category) throw new OnnxModelError(`${file}:${i + 2}: unknown tag category "${cells[catCol]}" (WD14 uses 0 general, 4 character, 9 rating)`);
    return { name: cells[nameCol], category };
  });
}

export class Tagger {
  private constructor(
    readonly dir: string,
    private readonly session: ort.InferenceSession,
    private readonly io: { inputs: string[]; outputs: string[] },
    readonly tags: { name: string; category: TagCategory }[],
    readonly size: number,
  ) {}

  static async load(dir: string): Promise<Tagger> {
    const modelFile = join(dir, 'model.onnx');
    const tagsFile = join(dir, 'selected_tags.csv');
    for (const f of [modelFile, tagsFile]) if (!existsSync(f)) throw new OnnxModelError(`${dir}: missing ${f.slice(dir.length + 1)} (a WD14 tagger folder has model.onnx and selected_tags.csv)`);
    const tags = parseSelectedTags(readFileSync(tagsFile, 'utf8'), tagsFile);
    const session = await ort.InferenceSession.create(modelFile, { graphOptimizationLevel: 'all' });
    const size = 448;
    const io = checkSignature(session, modelFile, 'WD14 tagger', [{ names: ['input_1', 'input', 'images'], type: 'float32', shape: [null, size, size, 3] }], [
      { names: ['predictions_sigmoid', 'output', 'output0'], type: 'float32', shape: [null, tags.length] },
    ]);
    return new Tagger(dir, session, io, tags, size);
  }

  /** Scores every tag for each image (batched). */
  async score(images: (Buffer | string)[], batchSize = 8): Promise<Float32Array[]> {
    const results: Float32Array[] = [];
    const plane = this.size * this.size * 3;
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize);
      const input = new Float32Array(batch.length * plane);
      for (const [i, img] of batch.entries()) input.set(await wd14Pixels(img, this.size), i * plane);
      const output = await this.session.run({ [this.io.inputs[0]]: new ort.Tensor('float32', input, [batch.length, this.size, this.size, 3]) });
      const probs = output[this.io.outputs[0]].data as Float32Array;
      for (let i = 0; i < batch.length; i++) results.push(probs.slice(i * this.tags.length, (i + 1) * this.tags.length));
    }
    return results;
  }

  /** Tags above their category's threshold (ratings excluded), most confident first. */
  select(scores: Float32Array, thresholds: Thresholds = DEFAULT_THRESHOLDS): Tag[] {
    const picked: Tag[] = [];
    this.tags.forEach((tag, i) => {
      if (tag.category === 'rating') return;
      if (scores[i] >= thresholds[tag.category]) picked.push({ ...tag, score: scores[i] });
    });
    return picked.sort((a, b) => b.score - a.score || a.name.localeCompare(b.name));
  }
}

export function tagText(name: string): string {
  return KAOMOJI.has(name) ? name : name.replace(/_/g, ' ');
}

/** "trigger, tag1, tag2": the trigger first (once), then tags by confidence. */
export function draftCaption(tags: Tag[], trigger?: string): string {
  const words = tags.map((t) => tagText(t.name));
  const parts = trigger ? [trigger, ...words.filter((w) => w !== trigger)] : words;
  return parts.join(', ');
}
