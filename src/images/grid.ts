// A/B grids: cell images laid out in rows and columns with readable labels (column headers on
// top, row headers on the left), composed with sharp; labels are SVG text rasterised by sharp.
import sharp, { type OverlayOptions } from 'sharp';

export interface GridInput {
  /** column header labels (e.g. 'strength 0', 'step 600 · strength 1') */
  columns: string[];
  /** row header labels; the first line (the prompt) is word-wrapped, later lines are kept whole */
  rows: string[];
  /** [row][column]: a PNG file path or PNG bytes, or null for a missing cell (drawn as grey) */
  cells: (string | Buffer | null)[][];
  /** size every cell image is drawn at */
  cellWidth: number;
  cellHeight: number;
}

export interface GridLayout {
  width: number;
  height: number;
  /** width of the row-label column on the left */
  labelWidth: number;
  /** height of the column-header band on top */
  headerHeight: number;
  gap: number;
  /** the top-left corner of cell [row][col] */
  cellOrigin(row: number, col: number): { left: number; top: number };
}

export interface GridResult {
  png: Buffer;
  layout: GridLayout;
  /** the label text as laid out: header lines per column, wrapped lines per row */
  labels: { columns: string[][]; rows: string[][] };
}

const FONT_FAMILY = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';
const BACKGROUND = { r: 255, g: 255, b: 255, alpha: 1 };
const MISSING = { r: 200, g: 200, b: 200, alpha: 1 };

/** Pixel metrics derived from the cell size so labels stay readable on small and large cells. */
function metrics(cellWidth: number) {
  const fontSize = Math.max(11, Math.min(28, Math.round(cellWidth / 12)));
  return {
    fontSize,
    lineHeight: Math.round(fontSize * 1.25),
    // DejaVu Sans averages about 0.55 em per character; wrap on a slightly wider estimate
    charWidth: fontSize * 0.58,
    padding: Math.round(fontSize * 0.6),
    gap: Math.max(2, Math.round(cellWidth / 64)),
  };
}

export function computeLayout(input: Pick<GridInput, 'columns' | 'rows' | 'cellWidth' | 'cellHeight'>, headerLines: number): GridLayout {
  const m = metrics(input.cellWidth);
  const labelWidth = Math.max(160, Math.round(input.cellWidth * 0.9));
  const headerHeight = headerLines * m.lineHeight + 2 * m.padding;
  const cols = input.columns.length;
  const rows = input.rows.length;
  const width = labelWidth + cols * (input.cellWidth + m.gap);
  const height = headerHeight + rows * (input.cellHeight + m.gap);
  return {
    width,
    height,
    labelWidth,
    headerHeight,
    gap: m.gap,
    cellOrigin: (row, col) => ({
      left: labelWidth + col * (input.cellWidth + m.gap),
      top: headerHeight + row * (input.cellHeight + m.gap),
    }),
  };
}

/** Greedy word wrap to `maxChars` per line; over-long words are split; at most `maxLines` lines (the last gets '…'). */
export function wrapText(text: string, maxChars: number, maxLines: number): string[] {
  const width = Math.max(1, Math.floor(maxChars));
  const lines: string[] = [];
  let current = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    let rest = word;
    while (rest.length > width) {
      if (current) {
        lines.push(current);
        current = '';
      }
      lines.push(rest.slice(0, width));
      rest = rest.slice(width);
    }
    if (!current) current = rest;
    else if (current.length + 1 + rest.length <= width) current += ` ${rest}`;
    else {
      lines.push(current);
      current = rest;
    }
  }
  if (current) lines.push(current);
  if (lines.length > maxLines) {
    const kept = lines.slice(0, Math.max(1, maxLines));
    const last = kept[kept.length - 1];
    kept[kept.length - 1] = `${last.slice(0, Math.max(0, width - 1))}…`;
    return kept;
  }
  return lines;
}

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** SVG text lines; lines from index `mutedFrom` on are grey (the seed under a prompt). */
function textBlock(lines: string[], x: number, y: number, fontSize: number, anchor: 'start' | 'middle', mutedFrom = lines.length): string {
  const lineHeight = Math.round(fontSize * 1.25);
  return lines
    .map((line, i) => {
      const tone = i < mutedFrom ? '' : ' fill="#555"';
      return `<text x="${x}" y="${y + i * lineHeight}" font-size="${fontSize}" text-anchor="${anchor}"${tone}>${escapeXml(line)}</text>`;
    })
    .join('');
}

/** Lays out the labels; returns the SVG overlay and the wrapped lines. */
function labelOverlay(input: GridInput, layout: GridLayout, columnLines: string[][]): { svg: Buffer; rows: string[][] } {
  const m = metrics(input.cellWidth);
  const parts: string[] = [];
  columnLines.forEach((lines, col) => {
    const { left } = layout.cellOrigin(0, col);
    parts.push(textBlock(lines, left + input.cellWidth / 2, m.padding + m.fontSize, m.fontSize, 'middle'));
  });
  const maxChars = (layout.labelWidth - 2 * m.padding) / m.charWidth;
  const maxLines = Math.max(1, Math.floor((input.cellHeight - m.padding) / m.lineHeight));
  const rowLines = input.rows.map((label) => {
    const [first = '', ...extra] = label.split('\n');
    const extraLines = extra.flatMap((l) => wrapText(l, maxChars, 2));
    const promptLines = wrapText(first, maxChars, Math.max(1, maxLines - extraLines.length));
    return { lines: [...promptLines, ...extraLines], mutedFrom: promptLines.length };
  });
  rowLines.forEach(({ lines, mutedFrom }, row) => {
    const { top } = layout.cellOrigin(row, 0);
    parts.push(textBlock(lines, m.padding, top + m.padding + m.fontSize, m.fontSize, 'start', mutedFrom));
  });
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width}" height="${layout.height}">` +
    `<g font-family="${FONT_FAMILY}" fill="#111">${parts.join('')}</g></svg>`;
  return { svg: Buffer.from(svg), rows: rowLines.map((r) => r.lines) };
}

export async function renderGrid(input: GridInput): Promise<GridResult> {
  if (input.columns.length === 0 || input.rows.length === 0) throw new Error('a grid needs at least one row and one column');
  if (input.cells.length !== input.rows.length || input.cells.some((r) => r.length !== input.columns.length)) {
    throw new Error(`grid cells must be ${input.rows.length} rows × ${input.columns.length} columns`);
  }
  const m = metrics(input.cellWidth);
  const columnLines = input.columns.map((c) => wrapText(c, input.cellWidth / m.charWidth, 2));
  const headerLines = Math.max(1, ...columnLines.map((l) => l.length));
  const layout = computeLayout(input, headerLines);
  const { svg, rows } = labelOverlay(input, layout, columnLines);

  const composites: OverlayOptions[] = [];
  for (let r = 0; r < input.rows.length; r++) {
    for (let c = 0; c < input.columns.length; c++) {
      const { left, top } = layout.cellOrigin(r, c);
      const src = input.cells[r][c];
      const tile =
        src === null
          ? await sharp({ create: { width: input.cellWidth, height: input.cellHeight, channels: 4, background: MISSING } }).png().toBuffer()
          : await sharp(src).resize(input.cellWidth, input.cellHeight, { fit: 'fill' }).png().toBuffer();
      composites.push({ input: tile, left, top });
    }
  }
  composites.push({ input: svg, left: 0, top: 0 });
  const png = await sharp({ create: { width: layout.width, height: layout.height, channels: 3, background: BACKGROUND } })
    .composite(composites)
    .png()
    .toBuffer();
  return { png, layout, labels: { columns: columnLines, rows } };
}
