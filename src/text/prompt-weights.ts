// Prompt weighting as ComfyUI parses it (comfy/sd1_clip.py): `(words)` multiplies the weight by
// 1.1 per level of nesting, `(words:1.3)` sets it (the number after the last colon, read as Python's
// float() reads it; not a number: the colon stays text and the 1.1 applies), `\(` and `\)` are
// literal parentheses, and a parenthesis without a partner is kept as text. Render prompts are
// weighted; training captions are not (SimpleLoRA feeds them to the tokenizer as they are).

export interface WeightedText {
  /** the text of the segment, escapes resolved */
  text: string;
  weight: number;
  /** offset of the segment in the prompt (UTF-16 code units) */
  start: number;
}

// ComfyUI swaps escaped parentheses for two control characters before parsing (same length, so
// offsets into the escaped text are offsets into the prompt) and back after.
const ESCAPED_CLOSE = '\0\u0001';
const ESCAPED_OPEN = '\0\u0002';

function escapeParentheses(text: string): string {
  return text.replaceAll('\\)', ESCAPED_CLOSE).replaceAll('\\(', ESCAPED_OPEN);
}

function unescapeParentheses(text: string): string {
  return text.replaceAll(ESCAPED_CLOSE, ')').replaceAll(ESCAPED_OPEN, '(');
}

interface Piece {
  text: string;
  start: number;
}

/** Top-level pieces: runs of text and balanced `(...)` groups (ComfyUI's parse_parentheses). */
function splitParentheses(text: string, offset: number): Piece[] {
  const pieces: Piece[] = [];
  let current = '';
  let start = offset;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '(') {
      if (depth === 0) {
        if (current) pieces.push({ text: current, start });
        current = '(';
        start = offset + i;
      } else {
        current += ch;
      }
      depth++;
    } else if (ch === ')') {
      depth--;
      if (depth === 0) {
        pieces.push({ text: `${current})`, start });
        current = '';
        start = offset + i + 1;
      } else {
        current += ch;
      }
    } else {
      current += ch;
    }
  }
  if (current) pieces.push({ text: current, start });
  return pieces;
}

const PY_DIGITS = '\\d(?:_?\\d)*';
const PY_FLOAT = new RegExp(`^[+-]?(?:(?:${PY_DIGITS})?\\.${PY_DIGITS}(?:[eE][+-]?${PY_DIGITS})?|${PY_DIGITS}\\.?(?:[eE][+-]?${PY_DIGITS})?|inf(?:inity)?|nan)$`, 'i');

/** Python's float(text) for the forms a prompt can hold, or null where Python raises ValueError. */
export function parsePythonFloat(text: string): number | null {
  const s = text.trim();
  if (!PY_FLOAT.test(s)) return null;
  const lower = s.toLowerCase().replaceAll('_', '');
  if (lower.endsWith('nan')) return NaN;
  if (lower.endsWith('inf') || lower.endsWith('infinity')) return lower.startsWith('-') ? -Infinity : Infinity;
  return Number(lower);
}

function weigh(text: string, offset: number, weight: number, out: WeightedText[]): void {
  for (const piece of splitParentheses(text, offset)) {
    const t = piece.text;
    if (t.length >= 2 && t.startsWith('(') && t.endsWith(')')) {
      let inner = t.slice(1, -1);
      let innerWeight = weight * 1.1;
      const colon = inner.lastIndexOf(':');
      if (colon > 0) {
        const value = parsePythonFloat(inner.slice(colon + 1));
        if (value !== null) {
          innerWeight = value;
          inner = inner.slice(0, colon);
        }
      }
      weigh(inner, piece.start + 1, innerWeight, out);
    } else {
      out.push({ text: t, weight, start: piece.start });
    }
  }
}

/** The segments of a prompt with their weights, in order (empty segments left out). */
export function parsePromptWeights(prompt: string): WeightedText[] {
  const out: WeightedText[] = [];
  weigh(escapeParentheses(prompt), 0, 1.0, out);
  return out.map((s) => ({ ...s, text: unescapeParentheses(s.text) })).filter((s) => s.text !== '');
}
