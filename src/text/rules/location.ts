// Where a diagnostic about an item points: a caption file and line/column, a metadata file line,
// or a parquet row (as `item`, since a row has no line).
import type { Diagnostic } from '../../config/diagnostic.js';
import type { ManifestItem } from '../../datasets/manifest.js';

export type Place = Pick<Diagnostic, 'file' | 'line' | 'col' | 'endCol' | 'item'>;

/** 1-based line and column (UTF-16 units) of `offset` in `text`; a leading BOM takes no column. */
export function lineCol(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  const bom = line === 1 && text.charCodeAt(0) === 0xfeff ? 1 : 0;
  return { line, col: Math.max(1, offset - lineStart - bom + 1) };
}

function isCaptionFile(item: ManifestItem): boolean {
  return item.row === undefined && item.caption !== null && /\.(txt|caption)$/i.test(item.caption.origin);
}

/** The caption as a whole, or the range [start, end) of its text when it lives in its own file. */
export function captionPlace(item: ManifestItem, range?: [number, number]): Place {
  const caption = item.caption!;
  if (item.row !== undefined) return { item: caption.origin };
  if (!isCaptionFile(item)) return { file: caption.origin, line: caption.line, item: item.id };
  if (!range) return { file: caption.origin, line: 1, col: 1 };
  const start = lineCol(caption.text, range[0]);
  const end = lineCol(caption.text, range[1]);
  return { file: caption.origin, line: start.line, col: start.col, ...(end.line === start.line && end.col > start.col ? { endCol: end.col } : {}) };
}

export function imagePlace(item: ManifestItem): Place {
  const origin = item.image?.origin ?? item.error?.origin;
  if (item.row !== undefined) return { item: origin ?? `row ${item.row}` };
  return origin ? { file: origin } : { item: item.id };
}

/** Quote a piece of caption text for a message, shortened when long. */
export function quote(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > max ? `${flat.slice(0, max - 1)}…` : flat);
}
