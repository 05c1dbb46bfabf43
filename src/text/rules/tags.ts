// Tag-style captions ("one-line-art, a face, side view"): comma-separated tags, counted like
// kohya's ss_tag_frequency (split on ',', trimmed, case kept).

export function captionTags(clean: string): string[] {
  if (!clean.includes(',')) return [];
  return clean
    .split(',')
    .map((t) => t.replace(/\s+/g, ' ').trim())
    .filter((t) => t !== '');
}

/** True when at least half of the captions hold a comma-separated list. */
export function isTagStyle(tagLists: string[][], captions: number): boolean {
  return captions > 0 && tagLists.filter((t) => t.length >= 2).length * 2 >= captions;
}

/** [tag, number of occurrences] (as kohya counts), most frequent first (ties in order of first use). */
export function tagCounts(tagLists: string[][]): [string, number][] {
  const counts = new Map<string, number>();
  for (const tags of tagLists) for (const tag of tags) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  // a stable sort on the counts alone: no string comparisons, deterministic for a given item order
  const entries = [...counts];
  entries.sort((a, b) => b[1] - a[1]);
  return entries;
}

/** tag -> number of occurrences, as an object (tagCounts) */
export function tagFrequency(tagLists: string[][]): Record<string, number> {
  return Object.fromEntries(tagCounts(tagLists));
}
