// The parse memo: an unchanged lorafile is not parsed again; any edit, an invalid file or a damaged
// memo falls back to the real loader.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigCached } from '../src/config/memo.js';
import { loadConfig } from '../src/config/load.js';
import { ConfigError } from '../src/config/errors.js';

const VALID = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'config', 'valid.lorafile.yaml');

let dir: string;
let lorafile: string;
let memoDir: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lorabuild-memo-'));
  lorafile = path.join(dir, 'lorafile.yaml');
  memoDir = path.join(dir, 'cache', 'config');
  copyFileSync(VALID, lorafile);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function memoFile(): string {
  const files = readdirSync(memoDir);
  expect(files).toHaveLength(1);
  return path.join(memoDir, files[0]);
}

describe('loadConfigCached', () => {
  it('gives the same Config as loadConfig, from the parser and then from the memo', async () => {
    const parsed = await loadConfig(lorafile);
    const first = await loadConfigCached(lorafile, memoDir);
    expect(first).toEqual(parsed);
    const second = await loadConfigCached(lorafile, memoDir);
    expect(second).toEqual(parsed);
    expect(second.loras.pokemon_lora.learning_rate).toBe(1e-4);
  });

  it('serves an unchanged lorafile from the memo and re-parses an edited one', async () => {
    await loadConfigCached(lorafile, memoDir);
    // mark the memo so a hit is visible
    const saved = JSON.parse(readFileSync(memoFile(), 'utf8'));
    saved.spec.out = 'from-memo';
    writeFileSync(memoFile(), JSON.stringify(saved));
    expect((await loadConfigCached(lorafile, memoDir)).out).toBe('from-memo');

    writeFileSync(lorafile, readFileSync(lorafile, 'utf8') + '\nout: build\n');
    expect((await loadConfigCached(lorafile, memoDir)).out).toBe('build');
    expect(JSON.parse(readFileSync(memoFile(), 'utf8')).spec.out).toBe('build');
  });

  it('never memoises an invalid lorafile and reports it like loadConfig', async () => {
    await loadConfigCached(lorafile, memoDir);
    writeFileSync(lorafile, readFileSync(lorafile, 'utf8').replace('rank: 4', 'rank: 0'));
    const err = (await loadConfigCached(lorafile, memoDir).catch((e: unknown) => e)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.diagnostics.map((d) => d.message)).toEqual(["lora 'pokemon_lora': rank must be at least 1, got 0"]);
    // the memo still holds the last valid parse, which does not match the new text
    await expect(loadConfigCached(lorafile, memoDir)).rejects.toBeInstanceOf(ConfigError);
  });

  it('re-parses over a damaged memo, and reports a missing lorafile', async () => {
    await loadConfigCached(lorafile, memoDir);
    writeFileSync(memoFile(), '{"key": "x", "spe');
    expect((await loadConfigCached(lorafile, memoDir)).loras.line_art_more.init_from).toBe('line_art_lora');
    const missing = await loadConfigCached(path.join(dir, 'nope.yaml'), memoDir).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as ConfigError).diagnostics[0].code).toBe('unreadable-lorafile');
  });

  it('works without a writable memo folder', async () => {
    writeFileSync(path.join(dir, 'cache'), 'a file where the cache folder should be');
    const config = await loadConfigCached(lorafile, memoDir);
    expect(Object.keys(config.renders)).toEqual(['pokemon_ab', 'line_art_grid']);
    expect(existsSync(memoDir)).toBe(false);
  });
});
