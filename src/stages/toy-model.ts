// The pretrained `builtin: toy` model ships with lorabuild: assets/toy/toy.safetensors (fp16, LDM key
// names, made by scripts/pretrain_toy.py) and its card assets/toy/toy.json (the sha256 of the weights,
// the palette and shapes it was trained on, the training record). The weights are checked against the
// card's sha256 before use, so a Git LFS pointer or a damaged checkout is named rather than loaded.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';

export const TOY_DIR = join(PACKAGE_ROOT, 'assets', 'toy');
export const TOY_MODEL_FILE = join(TOY_DIR, 'toy.safetensors');
export const TOY_CARD_FILE = join(TOY_DIR, 'toy.json');

export interface ToyCard {
  sha256: string;
  /** picture size the model was trained at */
  size: number;
  /** color name -> sRGB */
  palette: Record<string, [number, number, number]>;
  shapes: string[];
  /** fraction of the picture a filled shape covered in the pretraining set */
  filled_area: Record<string, { min: number; mean: number; max: number }>;
  pretraining: Record<string, unknown>;
}

export class ToyCardError extends Error {}

/** The card of the shipped toy model; throws ToyCardError naming the file when it is missing or bad. */
export function readToyCard(file = TOY_CARD_FILE): ToyCard {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ToyCardError(`${file}: ${(err as Error).message}`);
  }
  const card = raw as Partial<ToyCard>;
  if (typeof card.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(card.sha256)) throw new ToyCardError(`${file}: "sha256" must be 64 hex digits`);
  if (typeof card.palette !== 'object' || !Array.isArray(card.shapes) || typeof card.filled_area !== 'object') {
    throw new ToyCardError(`${file}: needs "palette", "shapes" and "filled_area"`);
  }
  return card as ToyCard;
}

export const TOY_HINT = 'restore it with `git checkout -- assets/toy` (a Git LFS pointer or an interrupted download does not load), or rebuild it with scripts/pretrain_toy.py';

/** What is wrong with the shipped toy model before hashing it (a missing file, an unreadable card), or null. */
export function toyModelProblem(modelFile = TOY_MODEL_FILE, cardFile = TOY_CARD_FILE): string | null {
  try {
    readToyCard(cardFile);
  } catch (err) {
    if (err instanceof ToyCardError) return `the card of the shipped toy model is unreadable: ${err.message}`;
    throw err;
  }
  return existsSync(modelFile) ? null : `the shipped toy model ${modelFile} is missing`;
}
