// Rules on what CLIP sees of a caption: the token limit (with the exact words cut off) and the
// trigger word, matched as a token sequence so that "cat" does not count inside "cats".
import type { ManifestItem } from '../../datasets/manifest.js';
import type { Encoded, Tokenizer } from '../tokenizer.js';
import type { Findings } from './findings.js';
import { captionPlace, quote } from './location.js';

export type TriggerState = 'present' | 'missing' | 'cut';

function indexOfSequence(haystack: number[], needle: number[], from = 0): number {
  if (needle.length === 0) return -1;
  outer: for (let i = from; i + needle.length <= haystack.length; i++) {
    for (let k = 0; k < needle.length; k++) if (haystack[i + k] !== needle[k]) continue outer;
    return i;
  }
  return -1;
}

export function checkTokenLimit(findings: Findings, item: ManifestItem, encoded: Encoded, maxTokens: number): void {
  const { ids, spans, tokens } = encoded;
  if (ids.length <= maxTokens) return;
  const text = item.caption!.text;
  const firstCut = spans[maxTokens];
  const lastKept = spans[maxTokens - 1];
  const splitsWord = lastKept[1] >= firstCut[0] && !tokens[maxTokens - 1].endsWith('</w>');
  const cut = text.slice(firstCut[0]).trimEnd();
  let message = `caption is ${ids.length} tokens, ${ids.length - maxTokens} over the limit of ${maxTokens}`;
  if (splitsWord) {
    let wordStart = maxTokens - 1;
    while (wordStart > 0 && !tokens[wordStart - 1].endsWith('</w>') && spans[wordStart - 1][1] >= spans[wordStart][0]) wordStart--;
    let wordEnd = maxTokens;
    while (wordEnd < tokens.length - 1 && !tokens[wordEnd].endsWith('</w>')) wordEnd++;
    message += `; the word ${quote(text.slice(spans[wordStart][0], spans[wordEnd][1]))} is split and this is cut off: ${quote(cut)}`;
  } else {
    message += `; these words are cut off: ${quote(cut)}`;
  }
  findings.add('too_long', {
    ...captionPlace(item, [firstCut[0], text.trimEnd().length]),
    message,
    hint: `shorten the caption to ${maxTokens} tokens (check with \`lorabuild tokenize\`); put the important words first`,
  });
}

/** `encoded()` gives the caption's full encoding (with spans), computed only when a message needs it */
export function checkTrigger(
  findings: Findings,
  item: ManifestItem,
  tokenizer: Tokenizer,
  ids: number[],
  encoded: () => Encoded,
  trigger: string,
  kept: number,
): TriggerState {
  const needle = tokenizer.encode(trigger).ids;
  const at = indexOfSequence(ids, needle);
  if (at !== -1 && at + needle.length <= kept) return 'present';
  if (at !== -1) {
    const spans = encoded().spans;
    findings.add('trigger_missing', {
      ...captionPlace(item, spans[at] ? [spans[at][0], spans[Math.min(at + needle.length, spans.length) - 1][1]] : undefined),
      message: `the trigger ${quote(trigger)} comes after token ${kept} and is cut off, so training never sees it`,
      hint: `move ${quote(trigger)} to the start of the caption`,
    });
    return 'cut';
  }
  findings.add('trigger_missing', {
    ...captionPlace(item),
    message: `caption does not contain the trigger ${quote(trigger)}`,
    hint: `start the caption with ${quote(`${trigger}, `)}`,
  });
  return 'missing';
}
