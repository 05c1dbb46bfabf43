// Image preprocessing exactly as each ONNX model family expects it.
import sharp from 'sharp';

const MAX_PIXELS = 64 * 1024 * 1024;

/**
 * WD14 taggers: alpha flattened onto white, padded to a centred white square, resized to size×size
 * (bicubic), channels in BGR order, float32 0..255, NHWC.
 */
export async function wd14Pixels(image: Buffer | string, size = 448): Promise<Float32Array> {
  const decoded = await sharp(image, { limitInputPixels: MAX_PIXELS })
    .rotate()
    .flatten({ background: '#ffffff' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const { width, height } = decoded.info;
  // pad in memory: sharp applies extend() after resize(), whatever the call order
  const side = Math.max(width, height);
  const left = Math.floor((side - width) / 2);
  const top = Math.floor((side - height) / 2);
  const square = Buffer.alloc(side * side * 3, 255);
  for (let y = 0; y < height; y++) {
    decoded.data.copy(square, ((top + y) * side + left) * 3, y * width * 3, (y + 1) * width * 3);
  }
  const data =
    side === size
      ? square
      : await sharp(square, { raw: { width: side, height: side, channels: 3 } }).resize(size, size, { kernel: 'cubic', fit: 'fill' }).raw().toBuffer();
  const out = new Float32Array(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    out[i * 3] = data[i * 3 + 2];
    out[i * 3 + 1] = data[i * 3 + 1];
    out[i * 3 + 2] = data[i * 3];
  }
  return out;
}

export const CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD = [0.26862954, 0.26130258, 0.27577711];

/**
 * CLIP image encoders: shorter side resized to size (bicubic), centre crop size×size, RGB scaled to
 * 0..1 and normalised with CLIP's mean/std, float32 NCHW.
 */
export async function clipPixels(image: Buffer | string, size = 224): Promise<Float32Array> {
  const { data } = await sharp(image, { limitInputPixels: MAX_PIXELS })
    .rotate()
    .flatten({ background: '#ffffff' })
    .resize(size, size, { kernel: 'cubic', fit: 'cover', position: 'centre' })
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) out[c * plane + i] = (data[i * 3 + c] / 255 - CLIP_MEAN[c]) / CLIP_STD[c];
  }
  return out;
}
