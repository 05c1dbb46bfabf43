// "did you mean" for column names: the closest candidate by edit distance, or one that contains
// the wanted name (`text` -> `en_text`).

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

export function closestName(wanted: string, candidates: readonly string[]): string | undefined {
  const w = wanted.toLowerCase();
  let best: { name: string; score: number } | undefined;
  for (const name of candidates) {
    const n = name.toLowerCase();
    const distance = editDistance(w, n);
    const score = n.includes(w) || w.includes(n) ? Math.min(distance, 1) : distance;
    if (!best || score < best.score) best = { name, score };
  }
  if (!best) return undefined;
  return best.score <= Math.max(2, Math.floor(wanted.length / 3)) ? best.name : undefined;
}
