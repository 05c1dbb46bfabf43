// Issue 20's "must show": a one-caption edit writes a bounded number of bytes to the cache, the
// same at 10,000 items as at 1,000 (listings, manifests, item lists and file maps are chunk trees;
// the stat memo appends). Measured through the real CLI on real PNGs and captions.
import { readdirSync, readFileSync, statSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyPng } from '../bench/lab-dataset.js';
import { makeTempDir, runCli } from './helpers/cli.js';

const temps: (() => void)[] = [];
afterAll(() => temps.forEach((c) => c()));

const JOURNAL = /^items\/[^/]+\/[0-9a-f]{2}\.log$/;

/** path -> size:mtime of every file under the cache, and the bytes of each item journal */
function snapshot(root: string): { sigs: Map<string, string>; journals: Map<string, Buffer> } {
  const sigs = new Map<string, string>();
  const journals = new Map<string, Buffer>();
  const visit = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const abs = join(dir, entry.name);
      if (entry.isDirectory()) visit(abs);
      else if (entry.isFile()) {
        const st = statSync(abs);
        const rel = relative(root, abs);
        sigs.set(rel, `${st.size}:${st.mtimeMs}`);
        if (JOURNAL.test(rel)) journals.set(rel, readFileSync(abs));
      }
    }
  };
  visit(root);
  return { sigs, journals };
}

/**
 * bytes written between two snapshots, biggest first: a new or rewritten file counts whole; an item
 * journal, append-only, counts what was appended (and must still begin with what it held)
 */
function written(before: ReturnType<typeof snapshot>, after: ReturnType<typeof snapshot>): { bytes: number; files: [string, number][] } {
  const files: [string, number][] = [];
  for (const [path, sig] of after.sigs) {
    if (before.sigs.get(path) === sig) continue;
    const size = Number(sig.split(':')[0]);
    const old = before.journals.get(path);
    if (old && JOURNAL.test(path)) {
      expect(after.journals.get(path)!.subarray(0, old.length).equals(old), `${path} was rewritten, not appended to`).toBe(true);
      files.push([path, size - old.length]);
    } else files.push([path, size]);
  }
  files.sort((a, b) => b[1] - a[1]);
  return { bytes: files.reduce((s, f) => s + f[1], 0), files };
}

async function oneEditBytes(items: number): Promise<{ bytes: number; files: [string, number][]; lockBytes: number }> {
  const { dir, cleanup } = makeTempDir('lorabuild-scale-');
  temps.push(cleanup);
  mkdirSync(join(dir, 'data', 'image'), { recursive: true });
  mkdirSync(join(dir, 'data', 'text'), { recursive: true });
  const old = new Date('2024-01-01T00:00:00Z');
  for (let i = 0; i < items; i++) {
    // a lab's captions: every one different, from a small tag vocabulary (40 tags: the tag table
    // in validation.json stays small, and there are no duplicate-caption warnings)
    const [a, b, c, d] = String(i).padStart(4, '0').slice(-4);
    const caption = `one-line-art, a face, angle ${a}, line ${b}, light ${c}, pose ${d}\n`;
    for (const [rel, body] of [[`image/${i}.png`, tinyPng(i)], [`text/${i}.txt`, caption]] as const) {
      writeFileSync(join(dir, 'data', rel), body);
      utimesSync(join(dir, 'data', rel), old, old); // not "racy" for the stat memo
    }
  }
  writeFileSync(join(dir, 'lorafile.yaml'), 'version: 1\ndatasets:\n  ds:\n    folder: data\n    rules: { too_small: off }\n');
  const cold = await runCli(['run', 'ds', '--json'], { cwd: dir, timeoutMs: 600_000 });
  expect(cold.code, cold.stderr).toBe(0);
  const settle = await runCli(['run', 'ds', '--json'], { cwd: dir, timeoutMs: 600_000 });
  expect(settle.code, settle.stderr).toBe(0);
  const before = snapshot(join(dir, 'cache'));
  const edited = join(dir, 'data', 'text', `${Math.floor(items / 2)}.txt`);
  writeFileSync(edited, 'one-line-art, a face, angle 9, line 9, light 9, pose 8, smiling\n');
  utimesSync(edited, old, new Date('2024-01-02T00:00:00Z'));
  const edit = await runCli(['run', 'ds', '--json'], { cwd: dir, timeoutMs: 600_000 });
  expect(edit.code, edit.stderr).toBe(0);
  const summary = edit.events.find((e) => 'summary' in e)!.summary as { ran: number; hashing: { filesHashed: number } };
  expect(summary.ran).toBe(3); // fetch, prepare and validate all re-ran ...
  expect(summary.hashing.filesHashed).toBe(1); // ... reading one file
  return { ...written(before, snapshot(join(dir, 'cache'))), lockBytes: statSync(join(dir, 'lorafile.lock')).size };
}

describe('a one-caption edit', () => {
  it('writes as many bytes to the cache at 10,000 items as at 1,000 (bounded, not proportional)', async () => {
    const small = await oneEditBytes(1000);
    const large = await oneEditBytes(10_000);
    const show = (r: typeof small) => r.files.slice(0, 6).map(([p, b]) => `${p} ${b}`).join(', ');
    // ten times the items: not ten times the bytes (a tree path is one level deeper at most)
    expect(large.bytes, `1k: ${small.bytes} B (${show(small)}); 10k: ${large.bytes} B (${show(large)})`).toBeLessThan(small.bytes * 2 + 32_768);
    expect(large.bytes, show(large)).toBeLessThan(400_000);
    // no single file rewritten whole: the biggest write is a tree leaf or a report
    expect(large.files[0][1], show(large)).toBeLessThan(100_000);
    // the lock holds the file list's tree root, not 20,000 lines
    expect(large.lockBytes).toBeLessThan(8_192);
  }, 900_000);
});
