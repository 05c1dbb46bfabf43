// `lorabuild watch` through the real CLI (--json) with real chokidar on temp folders: a caption
// save re-validates that item and prints the dataset's new diagnostics (the old ones marked stale
// first); an invalid lorafile keeps the last good plan until it is fixed; a burst of saves is one
// rebuild; changes during a (held) stage queue exactly one rerun; --through bounds the plan; Ctrl-C
// exits 130 leaving no staging folder behind.
import { existsSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTempDir, runCli, startCli, waitForLine, writeFiles } from './helpers/cli.js';
import { isStage, isWatch, WatchProcess, type WatchLine } from './watch-stream.js';
// @ts-expect-error the bench helpers are plain JavaScript
import { tinyPng } from '../bench/lab-dataset.js';

const ENV = { LORABUILD_PYTHON: '/usr/bin/python3', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1', LORABUILD_THREADS: '1' };
const tmp = makeTempDir('lorabuild-watch-cli-');
afterAll(tmp.cleanup);

const LORAFILE = `version: 1
models:
  tiny: { builtin: tiny }
datasets:
  ds: { folder: data, rules: { too_small: off } }
loras:
  ds_lora: { model: tiny, dataset: ds, steps: 10, checkpoint_every: 5, resolution: 64 }
`;

function makeProject(name: string, items: number): string {
  const dir = join(tmp.dir, name);
  const files: Record<string, string | Buffer> = { 'lorafile.yaml': LORAFILE };
  for (let i = 0; i < items; i++) {
    files[`data/image/${i}.png`] = tinyPng(i) as Buffer;
    files[`data/text/${i}.txt`] = `one-line-art, shape ${i}, side view\n`;
  }
  writeFiles(dir, files);
  return dir;
}

const diagnosticsOf = (e: WatchLine) => (e.diagnostics as { code: string; file: string }[]).map((d) => `${d.file} ${d.code}`);

async function stopAndCheck(w: WatchProcess, dir: string): Promise<WatchLine[]> {
  const result = await w.interrupt();
  expect(result.code).toBe(130);
  expect(w.events.at(-1)).toEqual({ watch: 'stopped' });
  // the engine's abort path leaves no staging folder
  const tmpDir = join(dir, 'cache', 'tmp');
  expect(existsSync(tmpDir) ? readdirSync(tmpDir) : []).toEqual([]);
  return w.events;
}

describe('lorabuild watch --through validate', { timeout: 240_000 }, () => {
  it('re-validates an edited caption, marking the old diagnostics stale first, and never trains', async () => {
    const dir = makeProject('caption', 6);
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    const planned = await w.next(isWatch('replanned'), 'the plan');
    expect(planned.stages).toEqual(['fetch:ds', 'prepare:ds', 'validate:ds']);
    await w.next(isWatch('ready'), 'ready');
    const first = await w.next(isWatch('diagnostics'), 'the first diagnostics');
    expect(first).toMatchObject({ dataset: 'ds', errors: 0, warnings: 0, diagnostics: [] });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');

    writeFileSync(join(dir, 'data/text/3.txt'), '   \n');
    expect(await w.next(isWatch('change'), 'the change')).toMatchObject({ path: 'data/text/3.txt', affects: ['dataset:ds'] });
    await w.next(isWatch('stale', (e) => e.dataset === 'ds'), 'the stale mark');
    const item = await w.next((e) => e.stage === 'validate:ds' && e.item !== undefined, 'a validate item event');
    expect(item).toMatchObject({ item: '3', outcome: 'ran' });
    const broken = await w.next(isWatch('diagnostics'), 'the new diagnostics');
    expect(broken).toMatchObject({ dataset: 'ds', errors: 1 });
    expect(diagnosticsOf(broken)).toEqual(['data/text/3.txt empty_caption']);
    await w.next(isWatch('idle', (e) => e.build === 2 && e.verdict === 'failed'), 'the end of build 2');

    writeFileSync(join(dir, 'data/text/3.txt'), 'one-line-art, a face, side view\n');
    await w.next(isWatch('stale'), 'the stale mark');
    expect(await w.next((e) => e.stage === 'validate:ds' && e.item !== undefined, 'a validate item event')).toMatchObject({ item: '3', outcome: 'ran' });
    expect(await w.next(isWatch('diagnostics'), 'the fixed diagnostics')).toMatchObject({ errors: 0, diagnostics: [] });
    await w.next(isWatch('idle', (e) => e.build === 3 && e.verdict === 'done'), 'the end of build 3');

    // a new caption file in the folder counts too (the whole folder is watched)
    writeFileSync(join(dir, 'data/text/9.txt'), 'one-line-art, nothing\n');
    const orphan = await w.next(isWatch('diagnostics'), 'diagnostics for the new file');
    expect(diagnosticsOf(orphan)).toContain('data/text/9.txt missing_image');

    const events = await stopAndCheck(w, dir);
    expect(events.filter((e) => typeof e.stage === 'string' && e.stage.startsWith('train:'))).toEqual([]);
  });

  it('on a built cache, reruns the dataset stages before the first save without recording anything, then answers saves as usual', async () => {
    const dir = makeProject('warm', 6);
    const built = await runCli(['run', 'validate:ds', '--json'], { cwd: dir, env: ENV });
    expect(built.code, built.stderr).toBe(0);
    const recorded = () => Object.fromEntries(['lorafile.lock', 'out/datasets/ds/validation.md', 'cache/actions', 'cache/runs'].map((p) => [p, statSync(join(dir, p)).mtimeMs]));
    const before = recorded();
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    expect(await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1')).toMatchObject({ verdict: 'done', counts: { fresh: 3, ran: 0 } });
    expect(await w.next(isWatch('warm'), 'the warm-up')).toMatchObject({ stages: ['fetch:ds', 'prepare:ds', 'validate:ds'], interrupted: false });
    expect(recorded()).toEqual(before);
    // it showed nothing: no stage event between the first build and the warm-up's end
    const idleAt = w.events.findIndex((e) => e.watch === 'idle');
    expect(w.events.slice(idleAt + 1, w.events.findIndex((e) => e.watch === 'warm')).filter((e) => e.stage !== undefined)).toEqual([]);

    writeFileSync(join(dir, 'data/text/2.txt'), '  \n');
    const broken = await w.next(isWatch('diagnostics', (e) => e.errors === 1), 'the new diagnostics');
    expect(diagnosticsOf(broken)).toEqual(['data/text/2.txt empty_caption']);
    await w.next(isWatch('idle', (e) => e.build === 2 && e.verdict === 'failed'), 'the end of build 2');
    writeFileSync(join(dir, 'data/text/2.txt'), 'one-line-art, shape 2, side view\n');
    expect(await w.next(isWatch('diagnostics'), 'the fixed diagnostics')).toMatchObject({ errors: 0, diagnostics: [] });
    await w.next(isWatch('idle', (e) => e.build === 3 && e.verdict === 'done'), 'the end of build 3');
    await stopAndCheck(w, dir);
    // the warm-up comes once, after the first build
    expect(w.events.filter((e) => e.watch === 'warm')).toHaveLength(1);
  });

  it('keeps the last good plan while the lorafile is invalid, and rebuilds once it is fixed', async () => {
    const dir = makeProject('lorafile', 3);
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');

    writeFileSync(join(dir, 'lorafile.yaml'), LORAFILE.replace('rules: { too_small: off }', 'rules: { too_small: off, max_tokens: many }'));
    expect(await w.next(isWatch('change'), 'the change')).toMatchObject({ path: 'lorafile.yaml', affects: ['lorafile'] });
    const error = await w.next(isWatch('config-error'), 'the lorafile diagnostics');
    expect(error.keeping).toBe(true);
    const [d] = error.diagnostics as { file: string; line: number; message: string }[];
    expect(d).toMatchObject({ file: 'lorafile.yaml', line: 5 });
    expect(d.message).toMatch(/max_tokens/);
    // still watching with the last good plan: a caption edit is still validated
    await w.next(isWatch('idle', (e) => e.build === 2), 'the end of build 2');
    writeFileSync(join(dir, 'data/text/1.txt'), '\n');
    expect(diagnosticsOf(await w.next(isWatch('diagnostics'), 'caption diagnostics'))).toEqual(['data/text/1.txt empty_caption']);
    await w.next(isWatch('idle', (e) => e.build === 3), 'the end of build 3');

    writeFileSync(join(dir, 'data/text/1.txt'), 'shape 1\n');
    writeFileSync(join(dir, 'lorafile.yaml'), LORAFILE.replace('rules: { too_small: off }', 'trigger: one-line-art, rules: { too_small: off }'));
    await w.next(isWatch('replanned'), 'the new plan');
    const validate = await w.next(isStage('validate:ds', 'ran'), 'validate with the new rules');
    expect(validate.reason).toMatch(/trigger/);
    const fixed = await w.next(isWatch('diagnostics'), 'diagnostics under the new rules');
    expect(diagnosticsOf(fixed)).toEqual(['data/text/1.txt trigger_missing']);
    await stopAndCheck(w, dir);
  });

  it('answers one save with one build, and sees a deleted caption through the polled folder', async () => {
    const dir = makeProject('one-save', 4);
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
    writeFileSync(join(dir, 'data/text/2.txt'), '\n');
    expect(diagnosticsOf(await w.next(isWatch('diagnostics'), 'the diagnostics of the save'))).toEqual(['data/text/2.txt empty_caption']);
    await w.next(isWatch('idle', (e) => e.build === 2), 'the end of build 2');
    // a save can reach chokidar twice (truncate, then write) and is stat'ed again 60 ms later:
    // notices for content the build already read start no build
    await new Promise((r) => setTimeout(r, 500));
    expect(w.events.filter((e) => e.watch === 'build')).toHaveLength(2);
    // files are watched one by one; their folder is polled for entries that come or go
    rmSync(join(dir, 'data/text/1.txt'));
    const deleted = await w.next(isWatch('diagnostics'), 'the diagnostics after the delete');
    expect(diagnosticsOf(deleted)).toContain('data/text/2.txt empty_caption');
    expect((deleted.diagnostics as { code: string; file: string }[]).some((d) => d.code === 'missing_caption' && d.file.includes('1.png'))).toBe(true);
    // and the files of the folder are watched again after the listing changed
    writeFileSync(join(dir, 'data/text/2.txt'), 'one-line-art, shape 2, fixed\n');
    const fixed = await w.next(isWatch('diagnostics', (e) => !(e.diagnostics as { file: string }[]).some((d) => d.file === 'data/text/2.txt')), 'the fix of 2.txt');
    expect(fixed.stale).toBeUndefined();
    await stopAndCheck(w, dir);
  });

  it('short of file watches (ENOSPC), says so once and still sees saves, by walking the folders every few seconds', async () => {
    const dir = makeProject('no-watches', 4);
    // the system lets it watch one file (the lorafile) and refuses the dataset's
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: { ...ENV, LORABUILD_TEST_MAX_FILE_WATCHES: '1' } });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
    const saved = Date.now();
    writeFileSync(join(dir, 'data/text/2.txt'), '\n');
    const seen = await w.next(isWatch('diagnostics', (e) => (e.errors as number) > 0), 'the save, found by a walk');
    expect(diagnosticsOf(seen)).toEqual(['data/text/2.txt empty_caption']);
    expect(Date.now() - saved).toBeLessThan(20_000);
    const errors = w.events.filter((e) => e.watch === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toContain('fs.inotify.max_user_watches');
    await stopAndCheck(w, dir);
  });

  it("answers a second save of a caption made right after the first (inside chokidar's 50 ms throttle) with a build of its own, and no more", async () => {
    const dir = makeProject('save-twice', 4);
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
    writeFileSync(join(dir, 'data/text/2.txt'), '\n');
    expect(diagnosticsOf(await w.next(isWatch('diagnostics'), 'the diagnostics of the first save'))).toEqual(['data/text/2.txt empty_caption']);
    // at once: chokidar drops its notice of this write; the OS's own notice is followed up
    writeFileSync(join(dir, 'data/text/2.txt'), 'one-line-art, shape 2, fixed\n');
    const fixed = await w.next(isWatch('diagnostics', (e) => e.errors === 0), 'the diagnostics of the second save');
    expect(fixed.stale).toBeUndefined();
    await w.next(isWatch('idle', (e) => e.build === 3), 'the end of build 3');
    // past every recheck: the two saves made two builds
    await new Promise((r) => setTimeout(r, 500));
    expect(w.events.filter((e) => e.watch === 'build').map((e) => e.changes)).toEqual([[], ['data/text/2.txt'], ['data/text/2.txt']]);
    await stopAndCheck(w, dir);
  });

  it('rebuilds once for a burst of 50 saves', async () => {
    const dir = makeProject('burst', 50);
    const w = new WatchProcess(['--through', 'validate', '--debounce', '300'], { cwd: dir, env: ENV });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
    for (let i = 0; i < 50; i++) writeFileSync(join(dir, `data/text/${i}.txt`), `one-line-art, shape ${i}, front view\n`);
    const build = await w.next(isWatch('build'), 'the rebuild');
    expect(build.build).toBe(2);
    expect((build.changes as string[]).length).toBe(50);
    const validate = await w.next(isStage('validate:ds', 'ran'), 'validation');
    expect(validate.items).toEqual({ ran: 50, cached: 0 });
    await w.next(isWatch('idle', (e) => e.build === 2), 'the end of build 2');
    // a save that arrives later is a build of its own: it shows the watcher is still listening
    writeFileSync(join(dir, 'data/text/0.txt'), 'one-line-art, shape 0\n');
    await w.next(isWatch('idle', (e) => e.build === 3), 'the end of build 3');
    const events = await stopAndCheck(w, dir);
    expect(events.filter((e) => e.watch === 'build').map((e) => e.build)).toEqual([1, 2, 3]);
    expect(events.filter((e) => e.watch === 'queued')).toEqual([]);
  });

  it('queues exactly one rerun for changes during a running stage', async () => {
    const dir = makeProject('queued', 4);
    const hold = join(tmp.dir, 'queued.hold');
    const env = { ...ENV, LORABUILD_TEST_HOLD_STAGE: 'validate:ds', LORABUILD_TEST_HOLD_FILE: hold };
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');

    writeFileSync(hold, 'validate waits while this file exists');
    writeFileSync(join(dir, 'data/text/0.txt'), '\n');
    await w.next(isWatch('build', (e) => e.build === 2), 'build 2');
    await w.next(isStage('validate:ds', 'started'), 'validate (held) to start');
    writeFileSync(join(dir, 'data/text/1.txt'), '\n');
    expect(await w.next(isWatch('queued'), 'the queued rerun')).toEqual({ watch: 'queued', build: 2 });
    for (const i of [2, 3, 1]) {
      writeFileSync(join(dir, `data/text/${i}.txt`), i === 1 ? 'one-line-art, shape 1 again\n' : '\n');
      await w.next(isWatch('change', (e) => e.path === `data/text/${i}.txt`), `the change of ${i}.txt`);
    }
    rmSync(hold);
    const held = await w.next(isWatch('diagnostics'), 'build 2 diagnostics');
    expect(diagnosticsOf(held)).toEqual(['data/text/0.txt empty_caption']);
    // its captions changed while it ran: shown, but never as current
    expect(held.stale).toBe(true);
    await w.next(isWatch('idle', (e) => e.build === 2), 'the end of build 2');
    const rerun = await w.next(isWatch('build'), 'the rerun');
    expect(rerun.build).toBe(3);
    expect(new Set(rerun.changes as string[])).toEqual(new Set(['data/text/1.txt', 'data/text/2.txt', 'data/text/3.txt']));
    const latest = await w.next(isWatch('diagnostics'), 'the rerun diagnostics');
    expect(diagnosticsOf(latest)).toEqual(['data/text/0.txt empty_caption', 'data/text/2.txt empty_caption', 'data/text/3.txt empty_caption']);
    expect(latest.stale).toBeUndefined();
    await w.next(isWatch('idle', (e) => e.build === 3), 'the end of build 3');
    const events = await stopAndCheck(w, dir);
    expect(events.filter((e) => e.watch === 'queued')).toHaveLength(1);
    expect(events.filter((e) => e.watch === 'build').map((e) => e.build)).toEqual([1, 2, 3]);
  });

  it('starts with an invalid lorafile, waits, and builds once it is fixed', async () => {
    const dir = makeProject('invalid-start', 2);
    writeFileSync(join(dir, 'lorafile.yaml'), LORAFILE.replace('folder: data', 'folder: data, colour: blue'));
    const w = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    const error = await w.next(isWatch('config-error'), 'the lorafile diagnostics');
    expect(error.keeping).toBe(false);
    expect(JSON.stringify(error.diagnostics)).toContain('colour');
    expect(await w.next(isWatch('ready'), 'ready')).toMatchObject({ paths: 1 });
    writeFileSync(join(dir, 'lorafile.yaml'), LORAFILE);
    expect(await w.next(isWatch('replanned'), 'the plan')).toMatchObject({ stages: ['fetch:ds', 'prepare:ds', 'validate:ds'], paths: 2 });
    expect(await w.next(isWatch('diagnostics'), 'diagnostics')).toMatchObject({ dataset: 'ds', errors: 0 });
    await w.next(isWatch('idle', (e) => e.build === 1), 'the end of build 1');
    // the dataset folder is watched from now on
    writeFileSync(join(dir, 'data/text/0.txt'), '\n');
    expect(diagnosticsOf(await w.next(isWatch('diagnostics'), 'caption diagnostics'))).toEqual(['data/text/0.txt empty_caption']);
    await stopAndCheck(w, dir);
  });

  it('prints plain event lines without --json', async () => {
    const dir = makeProject('plain', 2);
    const child = startCli(['watch', '--through', 'validate'], { cwd: dir, env: ENV, timeoutMs: 120_000 });
    await waitForLine(child, (l) => l.startsWith('-- build 1 done'));
    writeFileSync(join(dir, 'data/text/1.txt'), '  \n');
    await waitForLine(child, (l) => l.startsWith('-- build 2 failed'));
    child.kill('SIGINT');
    const result = await child.result;
    expect(result.code).toBe(130);
    expect(result.stdout).toContain('watching lorafile.yaml and 1 input path (through validate); Ctrl-C stops');
    expect(result.stdout).toContain('changed   data/text/1.txt\nstale     ds: diagnostics are out of date, rebuilding…');
    expect(result.stdout).toContain('ds: 1 error, 0 warnings\ndata/text/1.txt:1:1: error: caption is only whitespace\n  1 |   \n    | ^\n');
    expect(result.stdout).toMatch(/FAILED\s+validate:ds .*: 1 error in captions/);
  });

  it('waits for another lorabuild process that holds the cache, then builds', async () => {
    const dir = makeProject('waiting', 2);
    const hold = join(tmp.dir, 'waiting.hold');
    writeFileSync(hold, 'validate waits while this file exists');
    const first = new WatchProcess(['--through', 'validate'], { cwd: dir, env: { ...ENV, LORABUILD_TEST_HOLD_STAGE: 'validate:ds', LORABUILD_TEST_HOLD_FILE: hold } });
    await first.next(isStage('validate:ds', 'started'), 'the held validation');
    const second = new WatchProcess(['--through', 'validate'], { cwd: dir, env: ENV });
    const waiting = await second.next(isWatch('waiting'), 'the wait for the cache');
    expect(waiting.holder).toMatch(/^lorabuild watch \(pid \d+\)$/);
    rmSync(hold);
    await first.next(isWatch('idle', (e) => e.build === 1), 'the first watch to finish');
    // the second one finds everything built by the first
    expect(await second.next(isStage('validate:ds'), 'validation')).toMatchObject({ outcome: 'fresh' });
    expect(await second.next(isWatch('diagnostics'), 'diagnostics')).toMatchObject({ errors: 0 });
    await stopAndCheck(second, dir);
    await stopAndCheck(first, dir);
  });

  it('stops as on Ctrl-C when the reader of its output goes away (watch --json | head), and so does run', async () => {
    const dir = makeProject('epipe', 2);
    const child = startCli(['watch', '--through', 'validate', '--json'], { cwd: dir, env: ENV, timeoutMs: 120_000 });
    await waitForLine(child, (l) => l.includes('"watch":"idle"'));
    child.stdout!.destroy();
    // the save's events now go to a closed pipe
    writeFileSync(join(dir, 'data/text/1.txt'), '  \n');
    const result = await child.result;
    expect(result.code).toBe(130);
    expect(result.stderr).not.toMatch(/EPIPE|Unhandled|internal error/);
    const tmpDir = join(dir, 'cache', 'tmp');
    expect(existsSync(tmpDir) ? readdirSync(tmpDir) : []).toEqual([]);
    // the cache is free: a run neither waits nor finds anything half-written
    writeFileSync(join(dir, 'data/text/1.txt'), 'one-line-art, shape 1, side view\n');
    const run = startCli(['run', '--json', 'ds'], { cwd: dir, env: ENV, timeoutMs: 60_000 });
    await waitForLine(run, (l) => l.startsWith('{'));
    run.stdout!.destroy();
    const ran = await run.result;
    expect([0, 130]).toContain(ran.code);
    expect(ran.stderr).not.toMatch(/EPIPE|Unhandled|internal error/);
    // and the next run builds the dataset without waiting for a lock or tripping on a leftover
    const next = await runCli(['run', 'ds'], { cwd: dir, env: ENV, timeoutMs: 60_000 });
    expect(next.code).toBe(0);
    expect(next.stderr).not.toMatch(/waiting|damaged|internal error/);
  });

  it('refuses an unknown --through stage with exit code 2', async () => {
    const dir = makeProject('usage', 1);
    const w = new WatchProcess(['--through', 'valdate'], { cwd: dir, env: ENV });
    const result = await w.child.result;
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--through 'valdate' is not a stage; use one of fetch, prepare, validate, train, render, report");
  });
});
