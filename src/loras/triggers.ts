// Trigger words of a LoRA file from its metadata: modelspec.trigger_phrase, the trigger fields some
// trainers and Civitai downloads carry (trigger_words, activation text, trainedWords), and kohya's
// ss_tag_frequency, whose most frequent tags are the words every training caption had.

const FIELDS = ['modelspec.trigger_phrase', 'trigger_words', 'trigger_word', 'trigger_phrase', 'ss_trigger_words', 'activation_text', 'activation text', 'trainedWords', 'civitai.trainedWords'];

/** How many tags may tie for "most frequent" and still read as triggers (more is a caption style, not a trigger). */
const MAX_TIED_TAGS = 3;

function phrases(value: string): string[] {
  const text = value.trim();
  if (text.startsWith('[')) {
    try {
      const list: unknown = JSON.parse(text);
      if (Array.isArray(list)) return list.filter((x): x is string => typeof x === 'string').flatMap(phrases);
    } catch {
      // not JSON: read it as a comma list
    }
  }
  return text.split(',').map((p) => p.trim()).filter(Boolean);
}

/** The tags that appear in the most captions, when a few stand out (counted over every dataset folder). */
function frequentTags(raw: string | undefined): string[] {
  if (!raw) return [];
  let folders: unknown;
  try {
    folders = JSON.parse(raw);
  } catch {
    return [];
  }
  if (!folders || typeof folders !== 'object') return [];
  const counts = new Map<string, number>();
  for (const tags of Object.values(folders as Record<string, unknown>)) {
    if (!tags || typeof tags !== 'object') continue;
    for (const [tag, n] of Object.entries(tags as Record<string, unknown>)) {
      const word = tag.trim();
      if (word && typeof n === 'number' && Number.isFinite(n)) counts.set(word, (counts.get(word) ?? 0) + n);
    }
  }
  const max = Math.max(0, ...counts.values());
  if (max < 2) return [];
  const top = [...counts].filter(([, n]) => n === max).map(([tag]) => tag);
  return top.length <= MAX_TIED_TAGS ? top : [];
}

export function triggerWords(metadata: Record<string, string>): string[] {
  const found: string[] = [];
  for (const key of FIELDS) if (metadata[key]) found.push(...phrases(metadata[key]));
  found.push(...frequentTags(metadata.ss_tag_frequency));
  const seen = new Set<string>();
  return found.filter((w) => {
    const k = w.toLowerCase();
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Whether a prompt uses a trigger (case-insensitive, as a whole word or phrase). */
export function promptUses(prompt: string, trigger: string): boolean {
  const escaped = trigger.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(^|[^\\p{L}\\p{N}])${escaped}($|[^\\p{L}\\p{N}])`, 'u').test(prompt.toLowerCase());
}
