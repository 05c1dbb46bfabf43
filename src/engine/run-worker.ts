// The Python worker of one run (or check): started on the first stage that asks for it, with its
// hello remembered in the run's cache, and closed at the end. The worker modules load only then,
// so a run whose stages are all fresh never imports them.
import type { ClusterSpec, Config } from '../config/schema.js';
import type { ComputeWorker, WorkerClient } from '../worker/client.js';

export interface RunWorker {
  get(): Promise<WorkerClient>;
  close(): Promise<void>;
}

/**
 * The Slurm side of a run (cluster/slurm-worker.ts): train and sample requests become jobs, other
 * ops go to `local`. Loaded only when the run has a cluster.
 */
export function clusterWorker(config: Config, cacheDir: string, cluster: ClusterSpec, local: () => Promise<ComputeWorker>): { get(): Promise<ComputeWorker> } {
  let worker: Promise<ComputeWorker> | undefined;
  return {
    get() {
      worker ??= (async () => {
        const { SlurmWorker } = await import('../cluster/slurm-worker.js');
        const { expandUserPath, modelPathsOf } = await import('../worker/selection.js');
        const { findPython } = await import('../worker/python.js');
        const python = async () =>
          cluster.python ? expandUserPath(config.root, cluster.python) : (await findPython({ configured: config.python ? expandUserPath(config.root, config.python) : undefined, modelPaths: modelPathsOf(config) })).path;
        return new SlurmWorker({ cluster, cacheDir, python, local });
      })();
      return worker;
    },
  };
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
