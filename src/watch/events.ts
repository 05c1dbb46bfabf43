// What the watch session tells its screen, besides the engine's own stage events. With --json
// every one is printed as a line {"watch": kind, ...}.
import type { Json } from '../engine/types.js';

export type WatchEvent =
  | { watch: 'ready'; lorafile: string; paths: number; through: string | null; targets: string[] }
  | { watch: 'change'; path: string; event: string; affects: string[] }
  /** diagnostics shown for this dataset no longer describe the files on disk */
  | { watch: 'stale'; dataset: string }
  | { watch: 'build'; build: number; changes: string[] }
  /** changes arrived during a build: one rerun follows it */
  | { watch: 'queued'; build: number }
  /** a train/render was stopped because its inputs changed (it resumes in the rerun) */
  | { watch: 'cancel'; build: number; stages: string[]; path: string }
  | { watch: 'replanned'; stages: string[]; paths: number }
  /** the lorafile is invalid: the last good plan stays in use */
  | { watch: 'config-error'; diagnostics: Json[]; keeping: boolean }
  /**
   * a dataset's diagnostics, after its validation (re)ran or was found fresh. `stale`: its files
   * changed while the build ran, so these describe the files as they were; the queued rerun follows.
   */
  | { watch: 'diagnostics'; dataset: string; errors: number; warnings: number; diagnostics: Json[]; stale?: true }
  /** validation could not run (an upstream stage failed): no current diagnostics */
  | { watch: 'unvalidated'; dataset: string; reason: string }
  /**
   * after the first build: the dataset stages were rerun without recording anything, to fill the
   * memos a save needs (watch/warm.ts); `interrupted`: a save came first and stopped it
   */
  | { watch: 'warm'; stages: string[]; interrupted: boolean; durationMs: number }
  | { watch: 'idle'; build: number; verdict: 'done' | 'failed' | 'interrupted'; counts: Record<string, number>; durationMs: number }
  /** another lorabuild process holds the cache: the build starts when it is done */
  | { watch: 'waiting'; holder: string; cache: string; /** who holds the cache and how to break a stale lock by hand */ message: string }
  | { watch: 'error'; message: string }
  | { watch: 'stopped' };
