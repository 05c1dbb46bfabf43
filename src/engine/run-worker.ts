// The Python worker of one run (or check): started on the first stage that asks for it, with its
// hello remembered in the run's cache, and closed at the end. The worker modules load only then,
// so a run whose stages are all fresh never imports them.
import type { Config } from '../config/schema.js';
import type { WorkerClient } from '../worker/client.js';

export interface RunWorker {
  get(): Promise<WorkerClient>;
  close(): Promise<void>;
}

export function runWorker(config: Config, cacheDir: string): RunWorker {
  let shared: RunWorker | undefined;
  return {
    async get() {
      if (!shared) {
        const { sharedWorkerFor } = await import('../worker/start.js');
        shared = sharedWorkerFor(config, { cacheDir });
      }
      return shared.get();
    },
    async close() {
      await shared?.close();
    },
  };
}
