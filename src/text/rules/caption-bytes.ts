// Rules on the raw bytes of a caption: valid UTF-8, no control characters (NUL, ESC ...), BOM, CRLF
// line ends, stray whitespace, empty.
import type { ManifestItem } from '../../datasets/manifest.js';
import type { Findings } from './findings.js';
import { captionPlace, lineCol } from './location.js';
import { describeChar } from '../printable.js';

/** Offset of the first byte that is not part of a well-formed UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    if (i + need >= bytes.length) return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

const TRAILING_SPACE = /[ \t\u00a0\u3000]+(?=\r?\n|$)/g;
/** control characters but tab, line feed and carriage return (CR has its own message), and bidi overrides */
const CONTROL_CHARS = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

export function checkCaptionBytes(findings: Findings, item: ManifestItem, bytes: Uint8Array): void {
  const caption = item.caption!;
  const text = caption.text;
  const bad = firstInvalidUtf8(bytes);
  if (bad !== -1) {
    const before = new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes.subarray(0, bad));
    const at = lineCol(before, before.length);
    const byte = bytes[bad].toString(16).toUpperCase().padStart(2, '0');
    findings.add('encoding', {
      ...captionPlace(item),
      ...(captionPlace(item).col !== undefined ? { line: at.line, col: at.col } : {}),
      message: `caption is not valid UTF-8: byte 0x${byte} at byte offset ${bad} (the file is probably in a legacy encoding such as Windows-1252)`,
      hint: 'save the caption as UTF-8',
    });
  }
  CONTROL_CHARS.lastIndex = 0;
  const control = CONTROL_CHARS.exec(text);
  if (control) {
    const count = text.match(CONTROL_CHARS)?.length ?? 1;
    findings.add('encoding', {
      ...captionPlace(item, [control.index, control.index + 1]),
      message: `caption contains the control character ${describeChar(control[0])}${count > 1 ? ` (and ${count - 1} more)` : ''}: it is not text a person typed, and would reach the tokenizer`,
      hint: control[0] === '\u0000' ? 'remove it (a NUL byte usually means the file is not a plain text file, or was cut off while being written)' : 'remove it',
    });
  }
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    findings.add('whitespace', { ...captionPlace(item, [0, 1]), message: 'caption starts with a byte order mark (BOM)', hint: 'save the file as UTF-8 without BOM' });
  }
  const cr = text.indexOf('\r');
  if (cr !== -1) {
    findings.add('whitespace', {
      ...captionPlace(item, [cr, cr + 1]),
      message: text[cr + 1] === '\n' ? 'caption has Windows line endings (CRLF)' : 'caption has a carriage return (CR) line ending',
      hint: 'save the file with LF line endings',
    });
  }
  if (caption.clean === '') {
    findings.add('empty_caption', {
      ...captionPlace(item),
      message: text.length === 0 || text === '\ufeff' ? 'caption is empty' : 'caption is only whitespace',
      hint: 'describe the image in the caption, or remove the image and its caption',
    });
    return;
  }
  const leading = /^\ufeff?([ \t\r\n\u00a0\u3000]+)/.exec(text);
  if (leading) {
    const start = leading[0].length - leading[1].length;
    findings.add('whitespace', { ...captionPlace(item, [start, leading[0].length]), message: 'caption starts with whitespace', hint: 'remove the leading spaces or blank lines' });
  }
  TRAILING_SPACE.lastIndex = 0;
  for (let m = TRAILING_SPACE.exec(text); m !== null; m = TRAILING_SPACE.exec(text)) {
    findings.add('whitespace', { ...captionPlace(item, [m.index, m.index + m[0].length]), message: 'trailing whitespace', hint: 'remove the spaces at the end of the line' });
  }
  const blankTail = /\r?\n(?:[ \t]*\r?\n)+[ \t]*$/.exec(text);
  if (blankTail) {
    findings.add('whitespace', { ...captionPlace(item, [blankTail.index, text.length]), message: 'caption ends with blank lines', hint: 'end the file with at most one line break' });
  }
}
