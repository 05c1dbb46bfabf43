// User text (captions, file names, LoRA metadata, lorafile values) shown to a person must not drive
// their terminal: an ESC in a caption could clear the screen or retitle the window, a bidi override
// could make a line read differently than it is. Control characters are shown as visible escapes
// instead (\x1b, \u202e), everywhere lorabuild prints user text: diagnostics, progress lines, check
// and grade output, inspect, validation.md, report.md.

/**
 * C0 controls but tab and line feed, DEL, C1 controls, and the bidi embedding / override /
 * isolate characters. Carriage return is escaped too: it rewrites the start of the line.
 */
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** the same, and line breaks and tabs as well (for text that must stay on one line) */
const CONTROL_OR_BREAK = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const escapeOne = (c: string): string => {
  const code = c.charCodeAt(0);
  if (c === '\n') return '\\n';
  if (c === '\t') return '\\t';
  if (c === '\r') return '\\r';
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/** `text` with control characters shown as escapes; line feeds and tabs are kept. */
export function printable(text: string): string {
  return text.replace(CONTROL, escapeOne);
}

/** `text` on one line: control characters, line feeds and tabs all shown as escapes. */
export function printableLine(text: string): string {
  return text.replace(CONTROL_OR_BREAK, escapeOne);
}

/** The first control character of `text` (as printable() would escape it), with its offset. */
export function firstControl(text: string, allowBreaks = true): { offset: number; char: string } | undefined {
  const re = allowBreaks ? new RegExp(CONTROL.source) : new RegExp(CONTROL_OR_BREAK.source);
  const m = re.exec(text);
  return m ? { offset: m.index, char: m[0] } : undefined;
}

const NAMES: Record<number, string> = { 0: 'NUL', 7: 'BEL', 8: 'BS', 0x0b: 'VT', 0x0c: 'FF', 0x0d: 'CR', 0x1b: 'ESC', 0x7f: 'DEL', 0x9b: 'CSI', 0x202e: 'RIGHT-TO-LEFT OVERRIDE' };

/** "U+001B (ESC)" */
export function describeChar(c: string): string {
  const code = c.codePointAt(0)!;
  const name = NAMES[code];
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}${name ? ` (${name})` : ''}`;
}
