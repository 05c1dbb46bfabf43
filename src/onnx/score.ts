// Score arithmetic for A/B renders: per cell CLIP-T and CLIP-I, per arm the mean, and the LoRA's
// effect as the difference between each LoRA arm and the strength-0 ("without") arm.
import { dot } from './clip.js';

export interface CellEmbedding {
  cell: string;
  /** column label of the arm, e.g. "strength 1" or "step 200 · strength 1" */
  arm: string;
  strength: number;
  image: ArrayLike<number>;
  prompt: ArrayLike<number>;
}

export interface CellScore {
  cell: string;
  arm: string;
  strength: number;
  clipT: number;
  clipI: number;
}

export interface ArmScore {
  arm: string;
  strength: number;
  cells: number;
  clipT: number;
  clipI: number;
}

export interface ScoreSummary {
  cells: CellScore[];
  arms: ArmScore[];
  /** per LoRA arm: mean minus the strength-0 arm's mean (absent when there is no strength-0 arm) */
  effect: { arm: string; clipT: number; clipI: number }[];
}

export function scoreCells(cells: CellEmbedding[], trainingImages: ArrayLike<number>[]): ScoreSummary {
  if (trainingImages.length === 0) throw new Error('CLIP-I needs at least one training image');
  const scored = cells.map((c) => ({
    cell: c.cell,
    arm: c.arm,
    strength: c.strength,
    clipT: dot(c.image, c.prompt),
    clipI: trainingImages.reduce((s, t) => s + dot(c.image, t), 0) / trainingImages.length,
  }));
  const byArm = new Map<string, CellScore[]>();
  for (const s of scored) byArm.set(s.arm, [...(byArm.get(s.arm) ?? []), s]);
  const arms = [...byArm.entries()].map(([arm, list]) => ({
    arm,
    strength: list[0].strength,
    cells: list.length,
    clipT: mean(list.map((s) => s.clipT)),
    clipI: mean(list.map((s) => s.clipI)),
  }));
  const base = arms.find((a) => a.strength === 0);
  const effect = base ? arms.filter((a) => a !== base).map((a) => ({ arm: a.arm, clipT: a.clipT - base.clipT, clipI: a.clipI - base.clipI })) : [];
  return { cells: scored, arms, effect };
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
