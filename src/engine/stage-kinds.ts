import type { StageKind } from './types.js';

/**
 * Stages that take seconds on a CPU and read only the clone's own files: `check` re-runs them, and
 * the remote cache leaves them out (rebuilding them is faster than a download).
 */
export const CHEAP_KINDS: ReadonlySet<StageKind> = new Set(['fetch', 'prepare', 'validate']);
