// Rules on an item's image: it decodes, it is big enough for the training resolution, its aspect
// ratio survives the square center crop, and its extension says what it really is.
import type { ManifestItem } from '../../datasets/manifest.js';
import { formatFromExtension } from '../../images/formats.js';
import type { Findings } from './findings.js';
import { imagePlace } from './location.js';

export interface ImageLimits {
  minSize: number;
  maxAspect: number;
}

const EXTENSION_OF: Record<string, string> = { jpeg: '.jpg', png: '.png', webp: '.webp', bmp: '.bmp' };

export function checkImage(findings: Findings, item: ManifestItem, limits: ImageLimits): void {
  if (item.error) {
    findings.add('undecodable', {
      ...imagePlace(item),
      message: `image does not decode: ${item.error.message}`,
      hint: 'replace the file with a working PNG/JPEG/WebP, or remove it (bad_images: skip drops such images)',
    });
    return;
  }
  const image = item.image;
  if (!image) return;
  const { width, height } = image;
  const short = Math.min(width, height);
  if (short < limits.minSize) {
    findings.add('too_small', {
      ...imagePlace(item),
      message: `image is ${width}×${height}, smaller than ${limits.minSize} px on its shorter side: training upscales it and learns the blur`,
      hint: `use an image at least ${limits.minSize} px on each side, or lower rules.min_size`,
    });
  }
  const aspect = Math.max(width, height) / short;
  if (aspect > limits.maxAspect) {
    findings.add('aspect', {
      ...imagePlace(item),
      message: `image is ${width}×${height} (aspect ${aspect.toFixed(2)}, limit ${limits.maxAspect}): the square center crop keeps only ${Math.round(100 / aspect)}% of it`,
      hint: 'crop the image around the subject yourself, or raise rules.max_aspect',
    });
  }
  if (item.row === undefined) {
    const named = formatFromExtension(image.origin);
    if (named !== null && named !== image.format) {
      const dot = image.origin.lastIndexOf('.');
      findings.add('extension', {
        ...imagePlace(item),
        message: `file is named ${image.origin.slice(dot)} but holds a ${image.format.toUpperCase()} image`,
        hint: `rename it to ${image.origin.slice(image.origin.lastIndexOf('/') + 1, dot)}${EXTENSION_OF[image.format] ?? `.${image.format}`}`,
      });
    }
  }
}

export function checkPairing(findings: Findings, item: ManifestItem, layout: string): void {
  if ((item.image || item.error) && !item.caption) {
    const origin = item.image?.origin ?? item.error?.origin ?? item.id;
    const hint =
      layout === 'lab'
        ? `write its caption in ${origin.replace(/(^|\/)image\/([^/]*?)(\.[^./]*)?$/, '$1text/$2.txt')}, or remove the image`
        : layout === 'kohya'
          ? `write its caption in ${origin.replace(/\.[^./]*$/, '')}.txt next to it, or remove the image`
          : layout === 'imagefolder'
            ? 'add a caption for it to the metadata file, or remove the image'
            : 'fill the caption column for this row, or choose another caption_column';
    findings.add('missing_caption', { ...imagePlace(item), message: 'image has no caption', hint });
  }
  if (item.caption && !item.image && !item.error) {
    findings.add('missing_image', {
      file: item.caption.origin,
      line: item.caption.line,
      ...(item.row !== undefined ? { item: item.caption.origin } : {}),
      message: 'caption has no image',
      hint:
        layout === 'lab'
          ? `add ${item.caption.origin.replace(/(^|\/)text\/([^/]*)\.txt$/, '$1image/$2.png')} (or .jpg/.webp), or delete the caption`
          : 'add the image it describes, or delete the caption',
    });
  }
}
