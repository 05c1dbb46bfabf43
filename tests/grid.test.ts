import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { renderGrid, wrapText, escapeXml } from '../src/images/grid.js';

async function solid(width: number, height: number, r: number, g: number, b: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } }).png().toBuffer();
}

/** Count of pixels darker than `threshold` (sum of RGB) in a region: labels drawn there make some. */
async function darkPixels(png: Buffer, left: number, top: number, width: number, height: number, threshold = 300): Promise<number> {
  const { data, info } = await sharp(png).extract({ left, top, width, height }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let dark = 0;
  for (let i = 0; i < data.length; i += info.channels) if (data[i] + data[i + 1] + data[i + 2] < threshold) dark++;
  return dark;
}

async function pixel(png: Buffer, x: number, y: number): Promise<number[]> {
  const { data } = await sharp(png).extract({ left: x, top: y, width: 1, height: 1 }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return [data[0], data[1], data[2]];
}

describe('wrapText', () => {
  it('wraps on word boundaries, splits over-long words and ellipsises past the line limit', () => {
    expect(wrapText('a pokemon that looks like a mouse', 12, 5)).toEqual(['a pokemon', 'that looks', 'like a mouse']);
    expect(wrapText('abcdefghijkl', 5, 5)).toEqual(['abcde', 'fghij', 'kl']);
    expect(wrapText('one two three four five six', 7, 2)).toEqual(['one two', 'three…']);
    expect(wrapText('', 10, 3)).toEqual([]);
  });

  it('escapes XML in labels', () => {
    expect(escapeXml(`<b> & "x" 'y'`)).toBe('&lt;b&gt; &amp; &quot;x&quot; &apos;y&apos;');
  });
});

describe('renderGrid', () => {
  it('lays out rows × columns with cells at their origins and labels in the margins', async () => {
    const colours: [number, number, number][][] = [
      [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
      [[255, 255, 0], [0, 255, 255], [255, 0, 255]],
    ];
    const cells = await Promise.all(colours.map((row) => Promise.all(row.map(([r, g, b]) => solid(64, 64, r, g, b)))));
    const grid = await renderGrid({
      columns: ['strength 0', 'strength 0.5', 'strength 1'],
      rows: ['a pokemon that looks like a mouse & <friends>\nseed 0', 'a pokemon that looks like a mouse & <friends>\nseed 1'],
      cells,
      cellWidth: 128,
      cellHeight: 128,
    });
    const meta = await sharp(grid.png).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBe(grid.layout.width);
    expect(meta.height).toBe(grid.layout.height);
    expect(grid.layout.width).toBe(grid.layout.labelWidth + 3 * (128 + grid.layout.gap));
    expect(grid.layout.height).toBe(grid.layout.headerHeight + 2 * (128 + grid.layout.gap));

    // every cell is where the layout says, scaled to 128×128
    for (let r = 0; r < 2; r++) {
      for (let c = 0; c < 3; c++) {
        const { left, top } = grid.layout.cellOrigin(r, c);
        expect(await pixel(grid.png, left + 2, top + 2)).toEqual(colours[r][c]);
        expect(await pixel(grid.png, left + 125, top + 125)).toEqual(colours[r][c]);
      }
    }
    // labels were laid out as given (wrapped prompt, then the seed line) ...
    expect(grid.labels.columns).toEqual([['strength 0'], ['strength 0.5'], ['strength 1']]);
    expect(grid.labels.rows[1].at(-1)).toBe('seed 1');
    expect(grid.labels.rows[0].join(' ')).toContain('a pokemon that looks like a mouse');
    // ... and actually drawn: dark text pixels in each header cell and each row label
    for (let c = 0; c < 3; c++) {
      const { left } = grid.layout.cellOrigin(0, c);
      expect(await darkPixels(grid.png, left, 0, 128, grid.layout.headerHeight)).toBeGreaterThan(20);
    }
    for (let r = 0; r < 2; r++) {
      const { top } = grid.layout.cellOrigin(r, 0);
      expect(await darkPixels(grid.png, 0, top, grid.layout.labelWidth, 128)).toBeGreaterThan(50);
    }
    // the top-left corner (no label) stays white
    expect(await darkPixels(grid.png, 0, 0, grid.layout.labelWidth, grid.layout.headerHeight)).toBe(0);
  });

  it('draws a missing cell as grey and rejects a ragged cell matrix', async () => {
    const red = await solid(32, 32, 255, 0, 0);
    const grid = await renderGrid({ columns: ['a', 'b'], rows: ['p\nseed 0'], cells: [[red, null]], cellWidth: 64, cellHeight: 64 });
    const { left, top } = grid.layout.cellOrigin(0, 1);
    expect(await pixel(grid.png, left + 10, top + 10)).toEqual([200, 200, 200]);
    await expect(renderGrid({ columns: ['a', 'b'], rows: ['p'], cells: [[red]], cellWidth: 64, cellHeight: 64 })).rejects.toThrow(
      /1 rows × 2 columns/,
    );
  });
});
