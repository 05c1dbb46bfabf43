// Paths written in the lorafile: relative, ~, and Windows spellings.
import { describe, expect, it } from 'vitest';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../src/config/load.js';
import { ConfigError } from '../src/config/errors.js';
import { formatDiagnostics } from '../src/config/format.js';
import { displayPath, resolveUserPath } from '../src/config/paths.js';

const root = '/home/student/lab';
const config = { root };

describe('resolveUserPath on POSIX', () => {
  it('resolves relative paths against the lorafile folder', () => {
    expect(resolveUserPath(config, 'datasets/one-line-art', 'linux')).toBe('/home/student/lab/datasets/one-line-art');
    expect(resolveUserPath(config, '../shared/ds8.safetensors', 'linux')).toBe('/home/student/shared/ds8.safetensors');
    expect(resolveUserPath(config, '/data/pokemon', 'linux')).toBe('/data/pokemon');
  });

  it('treats backslashes as separators', () => {
    expect(resolveUserPath(config, 'datasets\\one-line-art', 'linux')).toBe('/home/student/lab/datasets/one-line-art');
    expect(resolveUserPath(config, '..\\models\\ds8.safetensors', 'linux')).toBe('/home/student/models/ds8.safetensors');
  });

  it('expands ~ and ~/ to the home folder', () => {
    expect(resolveUserPath(config, '~', 'linux')).toBe(os.homedir());
    expect(resolveUserPath(config, '~/ComfyUI/models/loras/x.safetensors', 'linux')).toBe(path.join(os.homedir(), 'ComfyUI/models/loras/x.safetensors'));
    expect(resolveUserPath(config, '~\\ComfyUI\\models', 'linux')).toBe(path.join(os.homedir(), 'ComfyUI/models'));
    // not a home folder reference: a file literally named ~foo next to the lorafile
    expect(resolveUserPath(config, '~foo', 'linux')).toBe('/home/student/lab/~foo');
  });

  it('rejects a drive-letter path, pointing at it in the lorafile and suggesting a POSIX path', () => {
    const source = 'version: 1\ndatasets:\n  one-line-art:\n    folder: D:\\one-line-art\n';
    const loaded = parseConfig(source, 'lorafile.yaml');
    const err = (() => {
      try {
        resolveUserPath(loaded, loaded.datasets['one-line-art'].folder!, 'linux');
      } catch (e) {
        return e;
      }
      throw new Error('expected an error');
    })() as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(formatDiagnostics(err.diagnostics, err.source)).toBe(`lorafile.yaml:4:13: error: 'D:\\one-line-art' is a Windows drive path, which does not exist on this ${process.platform} system
  4 |     folder: D:\\one-line-art
    |             ^~~~~~~~~~~~~~~
  hint: write a POSIX path instead: relative to the lorafile (e.g. one-line-art), or absolute (under WSL drive D: is /mnt/d/one-line-art)

1 error
`);
  });

  it('rejects UNC paths and bare drive letters too', () => {
    expect(() => resolveUserPath(config, '\\\\server\\share\\data', 'linux')).toThrow(/Windows network path/);
    expect(() => resolveUserPath(config, 'C:', 'linux')).toThrow(/Windows drive path/);
  });
});

describe('resolveUserPath on Windows', () => {
  const winConfig = { root: 'C:\\Users\\student\\lab' };
  it('resolves drive, relative and forward-slash paths with Windows rules', () => {
    expect(resolveUserPath(winConfig, 'D:\\one-line-art', 'win32')).toBe('D:\\one-line-art');
    expect(resolveUserPath(winConfig, 'datasets\\one-line-art', 'win32')).toBe('C:\\Users\\student\\lab\\datasets\\one-line-art');
    expect(resolveUserPath(winConfig, 'datasets/one-line-art', 'win32')).toBe('C:\\Users\\student\\lab\\datasets\\one-line-art');
  });
});

describe('displayPath', () => {
  it('shows paths relative to the lorafile folder with / separators', () => {
    expect(displayPath(config, '/home/student/lab/datasets/one-line-art/text/3.txt')).toBe('datasets/one-line-art/text/3.txt');
    expect(displayPath(config, '/home/student/lab')).toBe('.');
    expect(displayPath(config, '/home/student/models/ds8.safetensors')).toBe('../models/ds8.safetensors');
  });
});
