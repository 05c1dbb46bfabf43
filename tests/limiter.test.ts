// The executor's queue (src/engine/limiter.ts): never more than `concurrency` tasks at once, tasks
// started in the order they were added (a task added while a slot is being handed over waits its
// turn), a failing task frees its slot, and results and errors reach the caller.
import { describe, expect, it } from 'vitest';
import { Limiter } from '../src/engine/limiter.js';

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('Limiter', () => {
  it('runs at most `concurrency` tasks, in the order they were added', async () => {
    const limiter = new Limiter(2);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const finishers: (() => void)[] = [];
    const results = Array.from({ length: 6 }, (_, i) =>
      limiter.add(async () => {
        started.push(i);
        most = Math.max(most, ++running);
        await new Promise<void>((r) => finishers.push(r));
        running--;
        return i * 10;
      }),
    );
    await tick();
    expect(started).toEqual([0, 1]);
    // the first task ends; tasks added at each microtask while its slot is handed over must not
    // overtake the four waiting, nor run beside them
    finishers.shift()!();
    const late: Promise<number>[] = [];
    for (let k = 0; k < 6; k++) {
      late.push(
        limiter.add(async () => {
          started.push(100 + k);
          most = Math.max(most, ++running);
          await new Promise<void>((r) => finishers.push(r));
          running--;
          return k;
        }),
      );
      await null;
    }
    await tick();
    expect(started).toEqual([0, 1, 2]);
    while (finishers.length) {
      finishers.shift()!();
      await tick();
    }
    expect(await Promise.all(results)).toEqual([0, 10, 20, 30, 40, 50]);
    expect(await Promise.all(late)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105]);
    expect(most).toBe(2);
  });

  it('frees the slot of a task that fails, and hands the error to its caller', async () => {
    const limiter = new Limiter(1);
    const failing = limiter.add(async () => {
      throw new Error('boom');
    });
    const next = limiter.add(async () => 'after');
    await expect(failing).rejects.toThrow('boom');
    expect(await next).toBe('after');
  });

  it('refuses a concurrency below 1', () => {
    expect(() => new Limiter(0)).toThrow(/concurrency of 1 or more/);
  });
});
