// Units of `lorabuild watch`: the state machine (with hand-driven timers and builds), --through
// plan bounds, and which lorafile input a changed path belongs to.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WatchLoop, type Change, type WatchState } from '../src/watch/state.js';
import { boundPlan } from '../src/watch/through.js';
import { classifyChange, isIgnored, watchedPaths, watchSetFor } from '../src/watch/files.js';
import { planStages } from '../src/graph/plan.js';
import type { Config } from '../src/config/schema.js';
import { dropItemRecords } from './helpers/item-records.js';

/** timers fired by hand, builds resolved by hand */
function harness(options: { cancel?: (c: Change) => boolean } = {}) {
  const timers: { fn: () => void; ms: number }[] = [];
  const builds: { changes: string[]; signal: AbortSignal; finish: () => void }[] = [];
  const states: WatchState[] = [];
  const cancels: string[] = [];
  const clock = { ms: 0 };
  const loop = new WatchLoop({
    now: () => clock.ms,
    debounceMs: 25,
    run: (signal, changes) =>
      new Promise<void>((finish) => builds.push({ changes: changes.map((c) => c.path), signal, finish })),
    shouldCancel: options.cancel,
    onCancel: (c) => cancels.push(c.path),
    onState: (s) => states.push(s),
    timers: {
      set: (fn, ms) => {
        const t = { fn, ms };
        timers.push(t);
        return t;
      },
      clear: (h) => {
        const i = timers.indexOf(h as (typeof timers)[number]);
        if (i >= 0) timers.splice(i, 1);
      },
    },
  });
  const fire = () => {
    const pending = timers.splice(0);
    for (const t of pending) t.fn();
  };
  const settle = () => new Promise((r) => setTimeout(r, 0));
  return { loop, timers, builds, states, cancels, fire, settle, clock };
}

const change = (path: string): Change => ({ path, event: 'change' });

describe('WatchLoop', () => {
  it('builds first, then debounces a burst of changes into one build', async () => {
    const h = harness();
    h.loop.start();
    expect(h.loop.current).toBe('running');
    h.builds[0].finish();
    await h.settle();
    expect(h.loop.current).toBe('watching');
    for (let i = 0; i < 50; i++) h.loop.change(change(`c${i}`));
    expect(h.loop.current).toBe('debouncing');
    expect(h.timers).toHaveLength(1); // each change re-armed the one timer
    expect(h.builds).toHaveLength(1);
    h.fire();
    expect(h.builds).toHaveLength(2);
    expect(h.builds[1].changes).toHaveLength(50);
  });

  it('starts a lone change after a quiet spell at once; a change soon after another waits for quiet', async () => {
    const h = harness();
    h.loop.start();
    h.builds[0].finish();
    await h.settle();
    h.clock.ms = 1000;
    h.loop.change(change('a'));
    expect(h.timers.map((t) => t.ms)).toEqual([0]);
    h.fire();
    expect(h.builds[1].changes).toEqual(['a']);
    h.builds[1].finish();
    await h.settle();
    // 10 ms after the last change (debounce 25): a burst may be under way, so wait for quiet
    h.clock.ms = 1010;
    h.loop.change(change('b'));
    expect(h.timers.map((t) => t.ms)).toEqual([25]);
    h.fire();
    h.builds[2].finish();
    await h.settle();
    // a second change before the lone one's turn: the burst rule again
    h.clock.ms = 2000;
    h.loop.change(change('c'));
    h.loop.change(change('d'));
    expect(h.timers.map((t) => t.ms)).toEqual([25]);
    h.fire();
    expect(h.builds[3].changes).toEqual(['c', 'd']);
    h.builds[3].finish();
    await h.settle();
    // the same file noticed twice before the lone change's turn (one save, two notices): still at once
    h.clock.ms = 3000;
    h.loop.change(change('e'));
    h.loop.change(change('e'));
    expect(h.timers.map((t) => t.ms)).toEqual([0]);
    // ...but another file after them is a burst
    h.loop.change(change('f'));
    expect(h.timers.map((t) => t.ms)).toEqual([25]);
    h.loop.change(change('f'));
    expect(h.timers.map((t) => t.ms)).toEqual([25]);
    h.fire();
    expect(h.builds[4].changes).toEqual(['e', 'e', 'f', 'f']);
  });

  it('queues one rerun for any number of changes during a build', async () => {
    const h = harness();
    h.loop.start();
    for (let i = 0; i < 5; i++) h.loop.change(change(`c${i}`));
    expect(h.loop.current).toBe('queued');
    expect(h.states.filter((s) => s === 'queued')).toHaveLength(1);
    h.builds[0].finish();
    await h.settle();
    expect(h.loop.current).toBe('debouncing');
    h.fire();
    expect(h.builds).toHaveLength(2);
    expect(h.builds[1].changes).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
    h.builds[1].finish();
    await h.settle();
    expect(h.loop.current).toBe('watching');
    expect(h.timers).toHaveLength(0);
  });

  it('aborts a build once when a change should cancel it, and reruns after', async () => {
    const h = harness({ cancel: (c) => c.path.startsWith('data/') });
    h.loop.start();
    h.loop.change(change('lorafile-unrelated'));
    expect(h.builds[0].signal.aborted).toBe(false);
    h.loop.change(change('data/1.txt'));
    h.loop.change(change('data/2.txt'));
    expect(h.builds[0].signal.aborted).toBe(true);
    expect(h.cancels).toEqual(['data/1.txt']);
    h.builds[0].finish();
    await h.settle();
    h.fire();
    expect(h.builds).toHaveLength(2);
    expect(h.builds[1].signal.aborted).toBe(false);
  });

  it('stop() aborts the running build and resolves when it has ended', async () => {
    const h = harness();
    h.loop.start();
    let stopped = false;
    void h.loop.stop().then(() => (stopped = true));
    expect(h.builds[0].signal.aborted).toBe(true);
    h.loop.change(change('late'));
    await h.settle();
    expect(stopped).toBe(false);
    h.builds[0].finish();
    await h.settle();
    expect(stopped).toBe(true);
    expect(h.loop.current).toBe('stopped');
    expect(h.builds).toHaveLength(1);
  });

  it('goes on watching after a build throws', async () => {
    const errors: unknown[] = [];
    const loop = new WatchLoop({ debounceMs: 0, run: () => Promise.reject(new Error('boom')), onError: (e) => errors.push(e) });
    loop.start();
    await new Promise((r) => setTimeout(r, 0));
    expect(loop.current).toBe('watching');
    expect(String(errors[0])).toContain('boom');
  });
});

const ROOT = '/project';
const config = {
  file: `${ROOT}/lorafile.yaml`,
  root: ROOT,
  out: 'out',
  models: { base: { checkpoint: 'models/base.safetensors' }, tiny: { builtin: 'tiny' } },
  datasets: { faces: { folder: 'data/faces', rules: {} }, cats: { folder: 'D:\\sets\\cats', rules: {} } },
  loras: { faces_lora: { model: 'base', dataset: 'faces' }, cats_lora: { model: 'tiny', dataset: 'cats' } },
  renders: { faces_grid: { lora: 'faces_lora' } },
} as unknown as Config;

describe('--through', () => {
  it('keeps the stages up to the named kind', () => {
    const plan = planStages(config, ['faces_grid']);
    expect(boundPlan(plan, 'validate').order).toEqual(['fetch:faces', 'prepare:faces', 'validate:faces']);
    expect(boundPlan(plan, 'train').order).toEqual(['fetch:faces', 'prepare:faces', 'validate:faces', 'train:faces_lora']);
    expect(boundPlan(plan, 'report').order).toEqual(plan.order);
    expect(boundPlan(plan, undefined)).toBe(plan);
  });
});

describe('watch set', () => {
  it('watches the lorafile, the dataset folders and the local model files of the selected targets', () => {
    const plan = planStages(config, ['faces_lora']);
    const set = watchSetFor(config, plan, `${ROOT}/cache`, `${ROOT}/lorafile.lock`);
    expect(watchedPaths(set)).toEqual([`${ROOT}/lorafile.yaml`, `${ROOT}/data/faces`, `${ROOT}/models/base.safetensors`]);
    expect(classifyChange(set, join(ROOT, 'data/faces/text/3.txt'))).toEqual({ kind: 'dataset', names: ['faces'] });
    expect(classifyChange(set, join(ROOT, 'data/faces-old/text/3.txt'))).toEqual({ kind: 'other' });
    expect(classifyChange(set, `${ROOT}/models/base.safetensors`)).toEqual({ kind: 'model', names: ['base'] });
    expect(classifyChange(set, `${ROOT}/lorafile.yaml`)).toEqual({ kind: 'lorafile' });
    // --through validate: no training, so the model file is not an input
    const bounded = watchSetFor(config, boundPlan(plan, 'validate'), `${ROOT}/cache`, `${ROOT}/lorafile.lock`);
    expect(watchedPaths(bounded)).toEqual([`${ROOT}/lorafile.yaml`, `${ROOT}/data/faces`]);
  });

  it("watches the LoRA files a render applies, under names that say which render reads them", () => {
    const withFiles = {
      ...config,
      renders: { eighties: { model: 'base', loras: [{ file: 'loras/80s.safetensors', strength_model: 1, strength_clip: 1 }, { lora: 'faces_lora', strength_model: 1, strength_clip: 1 }] } },
    } as unknown as Config;
    const set = watchSetFor(withFiles, planStages(withFiles, ['eighties']), `${ROOT}/cache`, `${ROOT}/lorafile.lock`);
    expect(watchedPaths(set)).toEqual([`${ROOT}/lorafile.yaml`, `${ROOT}/data/faces`, `${ROOT}/models/base.safetensors`, `${ROOT}/loras/80s.safetensors`]);
    expect(classifyChange(set, `${ROOT}/loras/80s.safetensors`)).toEqual({ kind: 'model', names: ['lora file loras/80s.safetensors'] });
  });

  it('ignores what lorabuild writes itself, even inside a watched folder', () => {
    const inside = { ...config, datasets: { all: { folder: '.', rules: {} } }, loras: {}, renders: {} } as unknown as Config;
    const set = watchSetFor(inside, planStages(inside, ['all']), `${ROOT}/cache`, `${ROOT}/lorafile.lock`);
    expect(isIgnored(set, `${ROOT}/cache/stat-memo.json`)).toBe(true);
    expect(isIgnored(set, `${ROOT}/out/datasets/all/validation.json`)).toBe(true);
    expect(isIgnored(set, `${ROOT}/lorafile.lock`)).toBe(true);
    expect(isIgnored(set, `${ROOT}/.git/index`)).toBe(true);
    expect(isIgnored(set, `${ROOT}/image/1.png`)).toBe(false);
    expect(isIgnored(set, `${ROOT}/outline/1.png`)).toBe(false);
  });
});

describe('ItemMemo { remember: true } (kept across watch builds)', () => {
  it('serves records from memory but still checks that their blobs exist', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { Cas } = await import('../src/cache/cas.js');
    const { ItemMemo } = await import('../src/cache/item-memo.js');
    const dir = mkdtempSync(join(tmpdir(), 'lorabuild-itemmemo-'));
    try {
      const cas = new Cas(dir);
      const blob = cas.putBuffer(Buffer.from('prepared image'));
      const memo = new ItemMemo(dir, cas, { remember: true });
      const key = memo.keyHash({ item: '3', caption: 'a face' });
      memo.put('prepare', key, '3', { image: blob.sha256 });
      // the record on disk goes away (another process's gc): the remembered one still answers
      dropItemRecords(dir, 'prepare', [key]);
      expect(memo.get('prepare', key)).toEqual({ label: '3', value: { image: blob.sha256 }, refs: [blob.sha256] });
      // a fresh memo reads only the disk
      expect(new ItemMemo(dir, cas).get('prepare', key)).toBeUndefined();
      // the blob goes away: the remembered record is no longer served
      rmSync(cas.path(blob.sha256));
      expect(memo.get('prepare', key)).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
