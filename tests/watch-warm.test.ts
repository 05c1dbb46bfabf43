// lorabuild watch's warm-up (watch/warm.ts) reruns validate after the first build, and validate in a
// process that builds again parses its tokenizer's vocabulary then, though every caption is
// memoized, so that the first caption save does not (the plan's report, not built, stays stale). A fresh process (as a watch is) trusts the
// tokenizer identity memo without parsing the vocabulary.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyPng } from '../bench/lab-dataset.js';
import { makeTempDir, REPO_ROOT, runCli, writeFiles } from './helpers/cli.js';

const tmp = makeTempDir('lorabuild-warm-');
afterAll(() => tmp.cleanup());

/** in a fresh process: whether validate's tokenizer is parsed before and after a warm-up run of the dataset stages */
function warmIn(project: string, remember: boolean): { before: boolean; after: boolean; outcomes: string[] } {
  const dist = (p: string) => JSON.stringify(join(REPO_ROOT, 'dist', p));
  const script = `
    const { openProject } = await import(${dist('engine/project.js')});
    const { execute } = await import(${dist('engine/executor.js')});
    const { stageRegistry } = await import(${dist('stages/index.js')});
    const { Cas } = await import(${dist('cache/cas.js')});
    const { ItemMemo } = await import(${dist('cache/item-memo.js')});
    const { tokenizerForDataset } = await import(${dist('text/resolve.js')});
    const project = await openProject(${JSON.stringify(join(project, 'lorafile.yaml'))}, []);
    const { tokenizer } = await tokenizerForDataset(project.config, 'd', { cacheDir: project.cacheDir });
    const before = tokenizer.vocabLoaded;
    const cas = new Cas(project.cacheDir, { rememberPresence: ${remember} });
    const result = await execute({ config: project.config, plan: project.plan, registry: stageRegistry, cacheDir: project.cacheDir, lockFile: project.lockFile,
      mode: 'warm', warm: new Set(['fetch:d', 'prepare:d', 'validate:d']), cas, items: new ItemMemo(project.cacheDir, cas, { remember: ${remember} }) });
    console.log(JSON.stringify({ before, after: tokenizer.vocabLoaded, outcomes: [...result.reports.values()].map((r) => r.outcome) }));`;
  const env = { ...process.env, LORABUILD_CACHE: join(project, 'cache') };
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, env, encoding: 'utf8' })) as { before: boolean; after: boolean; outcomes: string[] };
}

describe('watch warm-up', () => {
  const project = join(tmp.dir, 'p');
  const files: Record<string, string | Buffer> = { 'lorafile.yaml': 'version: 1\ndatasets:\n  d:\n    folder: d\n    rules: { too_small: off }\n' };
  for (let i = 0; i < 3; i++) {
    files[`d/image/${i}.png`] = tinyPng(i) as Buffer;
    files[`d/text/${i}.txt`] = `one-line-art, shape ${i}\n`;
  }
  writeFiles(project, files);

  it('validate parses the vocabulary in a process that builds again, every caption memoized', async () => {
    const built = await runCli(['run', 'validate:d', '--json'], { cwd: project });
    expect(built.code, built.stderr).toBe(0);
    expect(warmIn(project, true)).toEqual({ before: false, after: true, outcomes: ['ran', 'ran', 'ran', 'stale'] });
  }, 60_000);

  it('and not in one that builds once', () => {
    expect(warmIn(project, false)).toEqual({ before: false, after: false, outcomes: ['ran', 'ran', 'ran', 'stale'] });
  }, 60_000);
});
