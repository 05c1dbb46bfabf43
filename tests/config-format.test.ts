// The shared diagnostic printer: location forms, markers, tabs, colours, counts, and the
// command helper that maps config errors to exit code 2.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { countLine, formatDiagnostic, formatDiagnostics, reportConfigError } from '../src/config/format.js';
import { ConfigError } from '../src/config/errors.js';
import type { Diagnostic } from '../src/config/diagnostic.js';

const caption: Diagnostic = {
  severity: 'warning',
  code: 'too_long',
  message: 'caption is 81 tokens; CLIP reads only the first 75',
  hint: 'shorten the caption',
  file: 'datasets/one-line-art/text/3.txt',
  line: 1,
  col: 10,
  endCol: 14,
};

describe('formatDiagnostic', () => {
  it('prints location, source line, a marker over [col, endCol) and the hint', () => {
    const source = 'one-line-art, a face, side view\n';
    expect(formatDiagnostic(caption, source)).toBe(
      [
        'datasets/one-line-art/text/3.txt:1:10: warning: caption is 81 tokens; CLIP reads only the first 75',
        '  1 | one-line-art, a face, side view',
        '    |          ^~~~',
        '  hint: shorten the caption',
      ].join('\n'),
    );
  });

  it('keeps tabs before the marker so it lines up under the text', () => {
    const d: Diagnostic = { severity: 'error', code: 'x', message: 'bad', file: 'a.txt', line: 1, col: 3, endCol: 5 };
    expect(formatDiagnostic(d, '\tx\tyz')).toBe('a.txt:1:3: error: bad\n  1 | \tx\tyz\n    | \t ^~');
  });

  it('clips a marker that runs past the end of the line', () => {
    const d: Diagnostic = { severity: 'error', code: 'x', message: 'bad', file: 'a', line: 2, col: 3, endCol: 99 };
    expect(formatDiagnostic(d, 'first\nabcd\n')).toBe('a:2:3: error: bad\n  2 | abcd\n    |   ^~');
  });

  it('names the item when there is no file position, and prints no source without a line', () => {
    const row: Diagnostic = { severity: 'error', code: 'undecodable', message: 'image does not decode', item: 'row 17', hint: "set bad_images: skip to drop such rows" };
    expect(formatDiagnostic(row, 'some source')).toBe("row 17: error: image does not decode\n  hint: set bad_images: skip to drop such rows");
    const inFile: Diagnostic = { ...row, file: 'train-00000.parquet' };
    expect(formatDiagnostic(inFile)).toBe("train-00000.parquet (row 17): error: image does not decode\n  hint: set bad_images: skip to drop such rows");
  });

  it('uses ANSI colours only when asked', () => {
    const plain = formatDiagnostic(caption, 'one-line-art, a face, side view');
    expect(plain).not.toContain('\x1b[');
    const coloured = formatDiagnostic(caption, 'one-line-art, a face, side view', { color: true });
    expect(coloured).toContain('\x1b[33mwarning:\x1b[0m');
    expect(coloured).toContain('\x1b[32m^~~~\x1b[0m');
    expect(coloured.replace(/\x1b\[\d+m/g, '')).toBe(plain);
  });
});

describe('formatDiagnostics', () => {
  it('separates diagnostics by blank lines and ends with the counts', () => {
    const error: Diagnostic = { severity: 'error', code: 'e', message: 'broken', file: 'f' };
    expect(formatDiagnostics([error, caption, caption])).toBe(
      'f: error: broken\n\n' +
        'datasets/one-line-art/text/3.txt:1:10: warning: caption is 81 tokens; CLIP reads only the first 75\n  hint: shorten the caption\n\n' +
        'datasets/one-line-art/text/3.txt:1:10: warning: caption is 81 tokens; CLIP reads only the first 75\n  hint: shorten the caption\n\n' +
        '1 error, 2 warnings\n',
    );
    expect(formatDiagnostics([])).toBe('');
    expect(countLine([{ severity: 'info', code: 'i', message: 'm' }])).toBe('1 note');
  });
});

describe('reportConfigError', () => {
  afterEach(() => vi.restoreAllMocks());

  it('prints the diagnostics with their source lines to stderr and returns exit code 2', () => {
    const written: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    const d: Diagnostic = { severity: 'error', code: 'x', message: 'rank must be at least 1, got 0', file: 'lorafile.yaml', line: 2, col: 7, hint: 'use 4' };
    const code = reportConfigError(new ConfigError([d], 'version: 1\nrank: 0\n'));
    expect(code).toBe(2);
    expect(written.join('').replace(/\x1b\[\d+m/g, '')).toBe(
      'lorafile.yaml:2:7: error: rank must be at least 1, got 0\n  2 | rank: 0\n    |       ^\n  hint: use 4\n\n1 error\n',
    );
  });

  it('rethrows anything that is not a config error', () => {
    const boom = new TypeError('not a config problem');
    expect(() => reportConfigError(boom)).toThrow(boom);
  });
});
