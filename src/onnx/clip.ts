// CLIP as two ONNX encoders (text_model.onnx + vision_model.onnx, the layout of the common exports of
// openai/clip-vit-base-patch32), used to score renders: CLIP-T (prompt alignment) and CLIP-I
// (similarity to the training images). Token ids come from lorabuild's own CLIP tokenizer.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { checkSignature, OnnxModelError } from './signature.js';
import { clipPixels } from './preprocess.js';

const CONTEXT = 77;

function locate(dir: string, file: string): string | undefined {
  return [join(dir, file), join(dir, 'onnx', file)].find((f) => existsSync(f));
}

export class ClipScorer {
  private constructor(
    readonly dir: string,
    private readonly text: ort.InferenceSession,
    private readonly textIo: { inputs: string[]; outputs: string[]; mask?: string },
    private readonly vision: ort.InferenceSession,
    private readonly visionIo: { inputs: string[]; outputs: string[] },
    readonly imageSize: number,
  ) {}

  static async load(dir: string): Promise<ClipScorer> {
    const textFile = locate(dir, 'text_model.onnx');
    const visionFile = locate(dir, 'vision_model.onnx');
    if (!textFile || !visionFile) {
      throw new OnnxModelError(`${dir}: a CLIP model folder needs text_model.onnx and vision_model.onnx (or onnx/text_model.onnx, onnx/vision_model.onnx); missing ${[!textFile && 'text_model.onnx', !visionFile && 'vision_model.onnx'].filter(Boolean).join(' and ')}`);
    }
    const text = await ort.InferenceSession.create(textFile);
    const textIo = checkSignature(text, textFile, 'CLIP text encoder', [{ names: ['input_ids'], type: 'int64', shape: [null, CONTEXT] }], [
      { names: ['text_embeds'], type: 'float32', shape: [null, null] },
    ]);
    const mask = text.inputNames.find((n) => n === 'attention_mask');
    const vision = await ort.InferenceSession.create(visionFile);
    const imageSize = 224;
    const visionIo = checkSignature(vision, visionFile, 'CLIP vision encoder', [{ names: ['pixel_values'], type: 'float32', shape: [null, 3, imageSize, imageSize] }], [
      { names: ['image_embeds'], type: 'float32', shape: [null, null] },
    ]);
    return new ClipScorer(dir, text, { ...textIo, mask }, vision, visionIo, imageSize);
  }

  /** Unit-length text embeddings for padded token-id rows (77 ids each). */
  async embedTexts(rows: number[][]): Promise<Float32Array[]> {
    if (rows.length === 0) return [];
    const ids = new BigInt64Array(rows.length * CONTEXT);
    const mask = new BigInt64Array(rows.length * CONTEXT);
    rows.forEach((row, r) => {
      if (row.length !== CONTEXT) throw new Error(`token row ${r} has ${row.length} ids, expected ${CONTEXT}`);
      const eos = row.indexOf(Math.max(...row));
      row.forEach((id, i) => {
        ids[r * CONTEXT + i] = BigInt(id);
        mask[r * CONTEXT + i] = i <= eos ? 1n : 0n;
      });
    });
    const feeds: Record<string, ort.Tensor> = { [this.textIo.inputs[0]]: new ort.Tensor('int64', ids, [rows.length, CONTEXT]) };
    if (this.textIo.mask) feeds[this.textIo.mask] = new ort.Tensor('int64', mask, [rows.length, CONTEXT]);
    const out = await this.text.run(feeds);
    return splitRows(out[this.textIo.outputs[0]], rows.length).map(normalize);
  }

  /** Unit-length image embeddings (batched). */
  async embedImages(images: (Buffer | string)[], batchSize = 16): Promise<Float32Array[]> {
    const result: Float32Array[] = [];
    const plane = 3 * this.imageSize * this.imageSize;
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize);
      const input = new Float32Array(batch.length * plane);
      for (const [i, img] of batch.entries()) input.set(await clipPixels(img, this.imageSize), i * plane);
      const out = await this.vision.run({ [this.visionIo.inputs[0]]: new ort.Tensor('float32', input, [batch.length, 3, this.imageSize, this.imageSize]) });
      result.push(...splitRows(out[this.visionIo.outputs[0]], batch.length).map(normalize));
    }
    return result;
  }
}

function splitRows(tensor: ort.Tensor, n: number): Float32Array[] {
  const data = tensor.data as Float32Array;
  const dim = data.length / n;
  return Array.from({ length: n }, (_, i) => data.slice(i * dim, (i + 1) * dim));
}

export function normalize(v: Float32Array): Float32Array {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  return v.map((x) => x / norm);
}

/** Cosine similarity of two unit vectors. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`embedding sizes differ: ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}
