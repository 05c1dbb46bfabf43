// The racy rule of every stat-keyed memo (the stat memo, the folder memo, the listing snapshot): a
// file or folder changed within RACY_MS of being read could change again within the same
// timestamp tick without its stat changing, so what was read then is used but not remembered.
const RACY_MS = 100;

/** whether something last changed at `changedMs` was still racy at `at` (both epoch ms) */
export function racy(changedMs: number, at: number): boolean {
  const age = at - changedMs;
  if (age < RACY_MS) return true;
  // file systems with whole-second (FAT: two-second) timestamps
  return Number.isInteger(changedMs / 1000) && age < 2000;
}
