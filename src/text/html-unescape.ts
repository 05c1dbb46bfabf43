// HTML character-reference unescaping with the rules of Python's html.unescape (which CLIP applies
// to every caption): numeric references with the HTML5 replacement table, named references with
// or without ';' for the legacy names, longest legacy prefix when the name runs on.
import { LEGACY_ENTITIES, NAMED_ENTITIES } from './html-entities.js';
import type { MappedText } from './mapped-text.js';

export const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Windows-1252 meanings of C1 code points 0x80..0x9f (undefined ones map to themselves). */
export const CP1252_C1 =
  '\u20ac\x81\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\x8d\u017d\x8f' +
  '\x90\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\x9d\u017e\u0178';

function isRemovedCodePoint(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) ||
    cp === 0xb ||
    (cp >= 0xe && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe
  );
}

function numericReference(body: string): string {
  const digits = body.replace(/;$/, '');
  const cp = digits[1] === 'x' || digits[1] === 'X' ? parseInt(digits.slice(2), 16) : parseInt(digits.slice(1), 10);
  if (cp === 0) return '\ufffd';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return CP1252_C1[cp - 0x80];
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || !Number.isFinite(cp)) return '\ufffd';
  if (isRemovedCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

function namedReference(body: string): string {
  if (body.endsWith(';')) {
    const value = NAMED_ENTITIES.get(body.slice(0, -1));
    if (value !== undefined) return value;
  } else if (LEGACY_ENTITIES.has(body)) {
    return NAMED_ENTITIES.get(body)!;
  }
  for (let len = body.length - 1; len > 1; len--) {
    const prefix = body.slice(0, len);
    if (LEGACY_ENTITIES.has(prefix)) return NAMED_ENTITIES.get(prefix)! + body.slice(len);
  }
  return '&' + body;
}

export function unescapeHtml(text: MappedText): MappedText {
  if (!text.text.includes('&')) return text;
  return text.rewrite(CHARREF, (m) => (m[1][0] === '#' ? numericReference(m[1]) : namedReference(m[1])));
}
