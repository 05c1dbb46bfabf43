// A full garbage collection, asked for at a moment the watch chose: right after its warm-up. The
// warm-up leaves ~100 MB of garbage at 10,000 items, and V8 otherwise collects it a few saves
// later, marking bit by bit during one of them (~40-50 ms added to that save). Node has no API for
// this but `gc`, which only the --expose-gc flag defines: set here, it exists in new contexts. The
// flag is unset again once `gc` is had (it keeps working): V8 rejects a code cache made under other
// flags than the process that reads it, so `lorabuild watch` would otherwise never keep one
// (bin/code-cache.js).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null | undefined;

/** runs a full collection; false when this Node cannot (then nothing happened) */
export function fullGc(): boolean {
  if (gc === undefined) {
    try {
      const had = typeof (globalThis as { gc?: unknown }).gc === 'function';
      setFlagsFromString('--expose-gc');
      const found: unknown = runInNewContext('typeof gc === "function" ? gc : null');
      if (!had) setFlagsFromString('--no-expose-gc');
      gc = typeof found === 'function' ? (found as () => void) : null;
    } catch {
      gc = null;
    }
  }
  if (gc === null) return false;
  gc();
  return true;
}
