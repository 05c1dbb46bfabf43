// lorabuild watch loads the tokenizer vocabulary of each validated dataset while it waits for the
// first save (src/watch/warm.ts). A fresh process (as a watch is) trusts the tokenizer identity
// memo without parsing the vocabulary; warming parses it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SHIPPED_CLIP_BPE } from '../src/text/resolve.js';
import { loadClipTokenizer } from '../src/text/load.js';
import { makeTempDir, REPO_ROOT } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-warm-');
afterAll(() => tmp.cleanup());

/** in a fresh process: whether the dataset's tokenizer is parsed before and after warmTokenizers */
function warmIn(project: string, through: string): { before: boolean; after: boolean } {
  const dist = (p: string) => JSON.stringify(join(REPO_ROOT, 'dist', p));
  const script = `
    const { openProject } = await import(${dist('engine/project.js')});
    const { boundPlan } = await import(${dist('watch/through.js')});
    const { warmTokenizers } = await import(${dist('watch/warm.js')});
    const { tokenizerForDataset } = await import(${dist('text/resolve.js')});
    const project = await openProject(${JSON.stringify(join(project, 'lorafile.yaml'))}, []);
    const { tokenizer } = await tokenizerForDataset(project.config, 'd', { cacheDir: project.cacheDir });
    const before = tokenizer.vocabLoaded;
    await warmTokenizers(project.config, boundPlan(project.plan, ${JSON.stringify(through)}), project.cacheDir);
    console.log(JSON.stringify({ before, after: tokenizer.vocabLoaded }));`;
  const env = { ...process.env, LORABUILD_CACHE: join(project, 'cache') };
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, env, encoding: 'utf8' })) as { before: boolean; after: boolean };
}

describe('watch warm-up', () => {
  const project = join(tmp.dir, 'p');
  mkdirSync(join(project, 'd', 'image'), { recursive: true });
  mkdirSync(join(project, 'd', 'text'), { recursive: true });
  writeFileSync(join(project, 'lorafile.yaml'), 'version: 1\ndatasets:\n  d:\n    folder: d\n');

  it('parses the vocabulary of a validated dataset before any save', async () => {
    // the identity memo a first run leaves in the cache
    mkdirSync(join(project, 'cache'), { recursive: true });
    await loadClipTokenizer({ kind: 'openai', bpe: SHIPPED_CLIP_BPE }, join(project, 'cache'));
    expect(warmIn(project, 'validate')).toEqual({ before: false, after: true });
  }, 60_000);

  it('parses nothing when the watch stops before validation', () => {
    expect(warmIn(project, 'fetch')).toEqual({ before: false, after: false });
  }, 60_000);
});
