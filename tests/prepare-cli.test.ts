// `lorabuild run prepare:ds` through the built CLI on each local layout, in temp folders.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Manifest } from '../src/datasets/manifest.js';
import { readLockfile } from '../src/engine/lockfile.js';
import { Cas } from '../src/cache/cas.js';
import { makeTempDir, runCli, writeFiles } from './helpers/cli.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('lorabuild-prepare-cli-'));
});
afterEach(() => cleanup());

const png = (shade: number) => sharp({ create: { width: 24, height: 20, channels: 3, background: { r: shade, g: 64, b: 128 } } }).png().toBuffer();

function manifest(): Manifest {
  const entry = readLockfile(join(dir, 'lorafile.lock'), join(dir, 'cache')).lock.stages['prepare:ds'];
  return JSON.parse(readFileSync(new Cas(join(dir, 'cache')).path(entry.outputs['manifest.json'].sha256), 'utf8')) as Manifest;
}

function stageEvent(events: Record<string, unknown>[], stage: string): Record<string, unknown> {
  const final = events.filter((e) => e.stage === stage && typeof e.outcome === 'string' && !e.item && e.outcome !== 'started');
  expect(final).toHaveLength(1);
  return final[0];
}

const layouts = {
  lab: async () => ({
    files: { 'ds/image/0.png': await png(0), 'ds/image/1.png': await png(80), 'ds/image/2.png': await png(160), 'ds/text/0.txt': 'one-line-art, a', 'ds/text/1.txt': 'one-line-art, b', 'ds/text/2.txt': 'one-line-art, c' },
    edit: ['ds/text/1.txt', 'one-line-art, b edited'] as const,
    extra: '',
  }),
  kohya: async () => ({
    files: { 'ds/10_x/a.png': await png(0), 'ds/10_x/a.txt': 'one-line-art, a', 'ds/10_x/b.png': await png(80), 'ds/10_x/b.txt': 'one-line-art, b', 'ds/10_x/c.png': await png(160), 'ds/10_x/c.caption': 'one-line-art, c' },
    edit: ['ds/10_x/b.txt', 'one-line-art, b edited'] as const,
    extra: '',
  }),
  imagefolder: async () => ({
    files: {
      'ds/0.png': await png(0),
      'ds/1.png': await png(80),
      'ds/2.png': await png(160),
      'ds/metadata.csv': 'file_name,caption\n0.png,"one-line-art, a"\n1.png,"one-line-art, b"\n2.png,"one-line-art, c"\n',
    },
    edit: ['ds/metadata.csv', 'file_name,caption\n0.png,"one-line-art, a"\n1.png,"one-line-art, b edited"\n2.png,"one-line-art, c"\n'] as const,
    extra: '    caption_column: caption\n',
  }),
};

describe('lorabuild run prepare:ds', () => {
  for (const [layout, make] of Object.entries(layouts)) {
    it(`builds a ${layout} dataset, then re-prepares one item after one caption edit`, async () => {
      const { files, edit, extra } = await make();
      writeFiles(dir, { ...files, 'lorafile.yaml': `version: 1\ndatasets:\n  ds:\n    folder: ds\n    resolution: 16\n${extra}` });
      const first = await runCli(['run', 'prepare:ds', '--json'], { cwd: dir });
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(stageEvent(first.events, 'fetch:ds').outcome).toBe('ran');
      expect(stageEvent(first.events, 'prepare:ds')).toMatchObject({ outcome: 'ran', items: { ran: 3, cached: 0 } });
      const built = manifest();
      expect(built.layout).toBe(layout);
      expect(built.items.map((i) => [i.image?.width, i.image?.height, i.prepared?.width, i.caption?.clean])).toEqual([
        [24, 20, 16, 'one-line-art, a'],
        [24, 20, 16, 'one-line-art, b'],
        [24, 20, 16, 'one-line-art, c'],
      ]);

      const again = await runCli(['run', 'prepare:ds', '--json'], { cwd: dir });
      expect(again.code).toBe(0);
      expect([stageEvent(again.events, 'fetch:ds').outcome, stageEvent(again.events, 'prepare:ds').outcome]).toEqual(['fresh', 'fresh']);

      writeFileSync(join(dir, edit[0]), edit[1]);
      const status = await runCli(['status', 'prepare:ds', '--json'], { cwd: dir });
      expect(stageEvent(status.events, 'fetch:ds')).toMatchObject({ outcome: 'stale', reason: expect.stringContaining(edit[0]) });
      const edited = await runCli(['run', 'prepare:ds', '--json'], { cwd: dir });
      expect(edited.code).toBe(0);
      expect(stageEvent(edited.events, 'prepare:ds')).toMatchObject({ outcome: 'ran', items: { ran: 1, cached: 2 } });
      expect(manifest().items[1].caption?.clean).toBe('one-line-art, b edited');
    });
  }

  it('fails with the file, line and hint when metadata escapes the folder, and writes nothing', async () => {
    writeFiles(dir, {
      'ds/0.png': await png(0),
      'ds/metadata.jsonl': '{"file_name": "0.png", "text": "ok"}\n{"file_name": "../../secret.png", "text": "x"}\n',
      'lorafile.yaml': 'version: 1\ndatasets:\n  ds:\n    folder: ds\n',
    });
    const result = await runCli(['run', 'prepare:ds'], { cwd: dir });
    expect(result.code).not.toBe(0);
    const output = result.stdout + result.stderr;
    expect(output).toContain('ds/metadata.jsonl:2:1: file_name "../../secret.png" points outside the dataset folder');
    expect(output).toContain('hint: file_name is a path relative to the metadata file');
    expect(readLockfile(join(dir, 'lorafile.lock'), join(dir, 'cache')).lock.stages['fetch:ds']).toBeUndefined();
  });
});
