// CLIP's caption cleaning: whitespace_clean(basic_clean(text)).lower(), where basic_clean is
// ftfy.fix_text + html.unescape twice + strip. The ftfy part covers the fixes that matter for
// hand-written and web captions (HTML entities, terminal escapes, C1 controls, ligatures,
// full-width forms, curly quotes, control characters, NFC); it does not repair mojibake.
// This follows openai/CLIP (with ftfy). Hugging Face's CLIPTokenizer without ftfy installed falls
// back to BERT's BasicTokenizer, which also splits CJK characters into separate words; for
// Latin-script captions both agree.
import { MappedText } from './mapped-text.js';
import { CP1252_C1, unescapeHtml } from './html-unescape.js';

/** Python's str.isspace(), which is what CLIP's `\s+` matches. */
export const WHITESPACE_CLASS = '\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const RUNS_OF_WHITESPACE = new RegExp(`[${WHITESPACE_CLASS}]+`, 'g');
const EDGE_WHITESPACE = new RegExp(`^[${WHITESPACE_CLASS}]+|[${WHITESPACE_CLASS}]+$`, 'g');

/** Printable ASCII words separated by single spaces, no '&': cleaning is just lower-casing. */
const PLAIN = /^[\x21-\x25\x27-\x7e]+(?: [\x21-\x25\x27-\x7e]+)*$/;

const TERMINAL_ESCAPE = /\x1b\[[\d;]*[a-zA-Z]/g;
const C1_CONTROL = /[\x80-\x9f]/g;
const LIGATURE = /[\u0132\u0133\u0149\u01c4-\u01cc\u01f1-\u01f3\ufb00-\ufb06]/g;
const WIDE_OR_NARROW = /[\u3000\uff01-\uffef]/g;
const CURLY_SINGLE = /[\u02bc\u2018-\u201b]/g;
const CURLY_DOUBLE = /[\u201c-\u201f]/g;
const CONTROL = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]|\ud834[\udd73-\udd7a]|\udb40[\udc00-\udc7f]/g;
const CLUSTER = /\P{M}[\p{M}\u1160-\u11ff]*/gu;
const FINAL_SIGMA = /(?<=\p{L}\p{M}*)\u03a3(?!\p{M}*\p{L})/gu;
const CODE_POINT = /[^]/gu;

function ftfyLike(text: MappedText): MappedText {
  let t = text;
  if (!t.text.includes('<')) t = unescapeHtml(t);
  t = t.rewrite(TERMINAL_ESCAPE, () => '');
  t = t.rewrite(C1_CONTROL, (m) => CP1252_C1[m[0].charCodeAt(0) - 0x80]);
  t = t.rewrite(LIGATURE, (m) => m[0].normalize('NFKC'));
  t = t.rewrite(WIDE_OR_NARROW, (m) => {
    const narrow = m[0].normalize('NFKC');
    return narrow.length === 1 ? narrow : null;
  });
  t = t.rewrite(CURLY_SINGLE, () => "'");
  t = t.rewrite(CURLY_DOUBLE, () => '"');
  t = t.rewrite(CONTROL, () => '');
  if (t.text.normalize('NFC') !== t.text) {
    t = t.rewrite(CLUSTER, (m) => {
      const composed = m[0].normalize('NFC');
      return composed === m[0] ? null : composed;
    });
  }
  return t;
}

function lowerCase(text: MappedText): MappedText {
  const lower = text.text.toLowerCase();
  if (lower.length === text.text.length) return text.withSameLength(lower);
  // A few characters grow when lower-cased (U+0130): map code point by code point.
  return text.rewrite(FINAL_SIGMA, () => '\u03c2').rewrite(CODE_POINT, (m) => m[0].toLowerCase());
}

/** Clean a caption as CLIP does, keeping the map back to the original offsets. */
export function cleanForClip(original: string): MappedText {
  const text = MappedText.of(original);
  if (PLAIN.test(original)) return text.withSameLength(original.toLowerCase());
  let t = ftfyLike(text);
  t = unescapeHtml(unescapeHtml(t));
  t = t.rewrite(EDGE_WHITESPACE, () => '');
  t = t.rewrite(RUNS_OF_WHITESPACE, (m) => (m[0] === ' ' ? null : ' '));
  return lowerCase(t);
}
