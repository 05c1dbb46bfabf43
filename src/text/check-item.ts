// Every per-item rule for one manifest item. The result is plain JSON so the validate stage can
// memoize it per item (an edited caption re-checks that item only).
import { createHash } from 'node:crypto';
import type { Diagnostic } from '../config/diagnostic.js';
import type { RulesSpec } from '../config/schema.js';
import type { ManifestItem } from '../datasets/manifest.js';
import type { Encoded, Tokenizer } from './tokenizer.js';
import { checkCaptionBytes } from './rules/caption-bytes.js';
import { checkTokenLimit, checkTrigger, type TriggerState } from './rules/caption-tokens.js';
import { Findings } from './rules/findings.js';
import { checkImage, checkPairing } from './rules/image.js';
import { captionTags } from './rules/tags.js';

export interface ValidationSettings {
  rules: RulesSpec;
  trigger: string | null;
  /** smallest image side (rules.min_size, else the training resolution, else 512) */
  minSize: number;
  layout: string;
}

export interface ItemCheck {
  diagnostics: Diagnostic[];
  /** content tokens CLIP sees (before truncation), null without a caption */
  tokens: number | null;
  trigger: TriggerState | null;
  /** identity of the caption as the text encoder reads it (duplicate captions) */
  captionKey: string | null;
  tags: string[];
}

export function checkItem(item: ManifestItem, captionBytes: Uint8Array | null, tokenizer: Tokenizer, settings: ValidationSettings): ItemCheck {
  const findings = new Findings(settings.rules);
  checkPairing(findings, item, settings.layout);
  checkImage(findings, item, { minSize: settings.minSize, maxAspect: settings.rules.max_aspect });
  const result: ItemCheck = { diagnostics: findings.diagnostics, tokens: null, trigger: null, captionKey: null, tags: [] };
  const caption = item.caption;
  if (!caption) return result;
  checkCaptionBytes(findings, item, captionBytes ?? Buffer.from(caption.text, 'utf8'));
  if (caption.clean === '') return result;
  const ids = tokenizer.encodeIds ? tokenizer.encodeIds(caption.text) : tokenizer.encode(caption.text).ids;
  let full: Encoded | null = null;
  const encoded = () => (full ??= tokenizer.encode(caption.text));
  result.tokens = ids.length;
  // 32 hex digits: not mistaken for a CAS blob hash by the item memo
  result.captionKey = createHash('sha256').update(Int32Array.from(ids)).digest('hex').slice(0, 32);
  result.tags = captionTags(caption.clean);
  const limit = settings.rules.max_tokens;
  if (ids.length > limit) checkTokenLimit(findings, item, encoded(), limit);
  if (settings.trigger !== null) {
    result.trigger = checkTrigger(findings, item, tokenizer, ids, encoded, settings.trigger, Math.min(limit, tokenizer.contextLength - 2));
  }
  return result;
}
