// watch/full-gc.ts collects the garbage the watch's warm-up leaves, at once, in a fresh process
// (as a watch is) that was started without --expose-gc: the memory garbage held is given back,
// and what is still referenced is kept.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.js';

describe('fullGc', () => {
  it('collects unreferenced memory in a process started without --expose-gc, and keeps what is referenced', () => {
    const script = `
      const { fullGc } = await import(${JSON.stringify(join(REPO_ROOT, 'dist', 'watch', 'full-gc.js'))});
      const used = () => process.memoryUsage().heapUsed / 2 ** 20;
      const hadGc = typeof globalThis.gc === 'function';
      // ~80 MB of small objects, 30 MB of them kept
      let garbage = Array.from({ length: 500_000 }, (_, i) => ({ i, s: 'x' + i }));
      const kept = Array.from({ length: 300_000 }, (_, i) => ({ i, s: 'k' + i }));
      const before = used();
      garbage = null;
      const collected = fullGc();
      const after = used();
      console.log(JSON.stringify({ hadGc, collected, again: fullGc(), freedMb: before - after, keptLength: kept.length, keptLast: kept[kept.length - 1].s }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })) as Record<string, unknown>;
    expect(out.hadGc).toBe(false);
    expect(out.collected).toBe(true);
    expect(out.again).toBe(true);
    expect(out.freedMb as number).toBeGreaterThan(20);
    expect(out.keptLength).toBe(300_000);
    expect(out.keptLast).toBe('k299999');
  });
});
