// Simple measures of a picture, independent of the model code: the background color (median of the
// border), the pixels that differ from it (the shape), the dominant hue of those, and the share of
// near-white and dark pixels. Used by the toy-model and demo tests to check what the pictures show.
import sharp from 'sharp';

export interface Rgb {
  width: number;
  height: number;
  /** RGB bytes, row-major */
  data: Buffer;
}

export async function readRgb(file: string | Buffer, size?: number): Promise<Rgb> {
  let img = sharp(file).removeAlpha().toColorspace('srgb');
  if (size) img = img.resize(size, size, { fit: 'cover' });
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

/** Hue in degrees [0, 360), saturation and value in [0, 1] of an sRGB byte triple. */
export function hsv(r: number, g: number, b: number): { h: number; s: number; v: number } {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const d = max - min;
  let h = 0;
  if (d > 0) {
    if (max === r) h = ((g - b) / d) % 6;
    else if (max === g) h = (b - r) / d + 2;
    else h = (r - g) / d + 4;
  }
  return { h: (h * 60 + 360) % 360, s: max === 0 ? 0 : d / max, v: max / 255 };
}

export const hueDistance = (a: number, b: number) => Math.min(Math.abs(a - b), 360 - Math.abs(a - b));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export interface PictureStats {
  /** median color of the 2-pixel border */
  background: [number, number, number];
  /** share of pixels farther than 60 (RGB distance) from the background */
  shapeFraction: number;
  /** peak of the 10°-bin hue histogram of the shape's colored pixels (saturation and value >= 0.25); null without any */
  dominantHue: number | null;
  /** share of pixels with every channel >= 200 */
  nearWhite: number;
  /** share of pixels with every channel <= 80 */
  dark: number;
}

export function pictureStats({ width, height, data }: Rgb): PictureStats {
  const at = (x: number, y: number) => {
    const i = (y * width + x) * 3;
    return [data[i], data[i + 1], data[i + 2]] as const;
  };
  const border: (readonly [number, number, number])[] = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) if (x < 2 || y < 2 || x >= width - 2 || y >= height - 2) border.push(at(x, y));
  }
  const background = [0, 1, 2].map((c) => median(border.map((p) => p[c]))) as [number, number, number];
  const hist = new Array<number>(36).fill(0);
  let shape = 0;
  let nearWhite = 0;
  let dark = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = at(x, y);
      if (r >= 200 && g >= 200 && b >= 200) nearWhite++;
      if (r <= 80 && g <= 80 && b <= 80) dark++;
      if (Math.hypot(r - background[0], g - background[1], b - background[2]) <= 60) continue;
      shape++;
      const { h, s, v } = hsv(r, g, b);
      if (s >= 0.25 && v >= 0.25) hist[Math.floor(h / 10) % 36]++;
    }
  }
  const peak = hist.indexOf(Math.max(...hist));
  const n = width * height;
  return { background, shapeFraction: shape / n, dominantHue: hist[peak] > 0 ? peak * 10 + 5 : null, nearWhite: nearWhite / n, dark: dark / n };
}
